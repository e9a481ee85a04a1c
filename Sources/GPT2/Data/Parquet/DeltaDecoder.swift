// Parquet's DELTA encodings of BYTE_ARRAY values (apache/parquet-format Encodings.md). parquet-mr's
// v2 writer falls back to DELTA_BYTE_ARRAY for strings; pyarrow writes both on request.
// - DELTA_BINARY_PACKED integers: a header (block size, miniblocks per block, value count, first
//   value), then blocks of a zigzag min delta, one bit width per miniblock, and the miniblocks'
//   (delta − min delta) bit-packed LSB first; a miniblock is always padded to its full size.
// - DELTA_LENGTH_BYTE_ARRAY: the lengths so encoded, then every value's bytes back to back.
// - DELTA_BYTE_ARRAY (front coding): the length of the prefix each value shares with the one before
//   it (per page), then the suffixes as DELTA_LENGTH_BYTE_ARRAY.
// Every read is bounds-checked; counts are bounded by the page's value count.

enum DeltaDecoder {
    /// Decodes the DELTA_BINARY_PACKED int32 values at the start of `bytes` (wrapping arithmetic, as
    /// the writers use). Returns the values and the bytes they took.
    static func binaryPacked(_ bytes: UnsafeRawBufferPointer, maxCount: Int) throws(ThriftError) -> (values: [Int32], end: Int) {
        // The header's varints and zigzag varints are Thrift compact's.
        var reader = ThriftCompactReader(bytes)
        let blockSize = try reader.readVarint()
        let miniblocks = try reader.readVarint()
        let total = try reader.readVarint()
        let first = try reader.readI64()
        guard blockSize > 0, blockSize % 128 == 0, blockSize <= 1 << 20 else { throw ThriftError("DELTA block size \(blockSize) is not a multiple of 128") }
        guard miniblocks > 0, blockSize % miniblocks == 0, (blockSize / miniblocks) % 32 == 0 else {
            throw ThriftError("DELTA block of \(blockSize) values cannot hold \(miniblocks) miniblocks of a multiple of 32")
        }
        guard total <= UInt64(maxCount) else { throw ThriftError("DELTA header says \(total) values, the page holds \(maxCount)") }
        let count = Int(total), perMiniblock = Int(blockSize / miniblocks)
        var values: [Int32] = []
        values.reserveCapacity(count)
        guard count > 0 else { return (values, reader.position) }
        var last = UInt32(truncatingIfNeeded: first)
        values.append(Int32(bitPattern: last))
        while values.count < count {
            let minDelta = UInt32(truncatingIfNeeded: try reader.readI64())
            let widthsAt = reader.position
            try skip(&reader, Int(miniblocks))
            for m in 0..<Int(miniblocks) where values.count < count {
                let width = Int(bytes[widthsAt + m])
                guard width <= 32 else { throw ThriftError("DELTA miniblock bit width \(width) above 32") }
                let start = reader.position
                try skip(&reader, perMiniblock * width / 8)  // padded to a whole miniblock
                for i in 0..<min(perMiniblock, count - values.count) {
                    last = last &+ minDelta &+ bits(bytes, at: start * 8 + i * width, width: width)
                    values.append(Int32(bitPattern: last))
                }
            }
        }
        return (values, reader.position)
    }

    private static func skip(_ reader: inout ThriftCompactReader, _ n: Int) throws(ThriftError) {
        guard n <= reader.remaining else { throw ThriftError("DELTA data ends \(n - reader.remaining) bytes early") }
        reader.position += n
    }

    /// `width` (≤ 32) bits of `bytes` from bit `bit`, LSB first; the caller has checked they lie inside.
    private static func bits(_ bytes: UnsafeRawBufferPointer, at bit: Int, width: Int) -> UInt32 {
        var value: UInt64 = 0, got = 0, at = bit
        while got < width {
            let offset = at & 7, n = min(8 - offset, width - got)
            value |= UInt64((bytes[at >> 3] >> UInt8(offset)) & UInt8((1 << n) - 1)) << UInt64(got)
            got += n
            at += n
        }
        return UInt32(truncatingIfNeeded: value)
    }
}

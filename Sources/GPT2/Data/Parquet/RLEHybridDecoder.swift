// Parquet's RLE / bit-packed hybrid encoding, used for definition levels and dictionary indices.
// A run starts with a varint header h: h & 1 == 0 is an RLE run of h >> 1 copies of one value stored
// in ceil(bitWidth / 8) little-endian bytes; h & 1 == 1 is (h >> 1) groups of 8 values bit-packed
// LSB first, bitWidth bits each. Spec: apache/parquet-format Encodings.md ("Run Length Encoding /
// Bit-Packing Hybrid"). Every read is bounds-checked; running out of data throws.

/// Decodes `count` values of `bitWidth` bits (0...32) from `bytes`.
struct RLEHybridDecoder {
    let bytes: UnsafeRawBufferPointer
    let bitWidth: Int
    private(set) var position = 0

    init(_ bytes: UnsafeRawBufferPointer, bitWidth: Int) {
        precondition(bitWidth >= 0 && bitWidth <= 32, "bit width \(bitWidth) out of 0...32")
        self.bytes = bytes
        self.bitWidth = bitWidth
    }

    /// Fills `out` entirely; throws when the data ends first.
    mutating func decode(into out: UnsafeMutableBufferPointer<UInt32>) throws(ThriftError) {
        var filled = 0
        let n = out.count
        while filled < n {
            let header = try readVarint()
            if header & 1 == 0 {
                // RLE run.
                let runLength = header >> 1
                let valueBytes = (bitWidth + 7) / 8
                guard valueBytes <= bytes.count - position else { throw ThriftError("RLE run value past the end of its data") }
                var value: UInt32 = 0
                for k in 0..<valueBytes { value |= UInt32(bytes[position + k]) << (8 * UInt32(k)) }
                position += valueBytes
                guard runLength > 0 else { continue }
                let take = Int(min(runLength, UInt64(n - filled)))
                (out.baseAddress! + filled).initialize(repeating: value, count: take)
                filled += take
            } else {
                // Bit-packed groups of 8; a last group cut short by the end of the data is read as far as it goes.
                let groups = header >> 1
                guard groups <= UInt64(Int.max / 64) else { throw ThriftError("bit-packed run too long") }
                let runBytes = min(Int(groups) * bitWidth, bytes.count - position)
                let available = bitWidth == 0 ? Int(groups) * 8 : min(Int(groups) * 8, runBytes * 8 / bitWidth)
                let take = min(available, n - filled)
                guard take > 0 || groups == 0 else { throw ThriftError("bit-packed run past the end of its data") }
                unpack(from: position, count: take, into: out.baseAddress! + filled)
                filled += take
                position += runBytes
            }
        }
    }

    /// Unpacks `count` values starting at byte `start`; the caller checked that they lie inside `bytes`.
    private func unpack(from start: Int, count: Int, into out: UnsafeMutablePointer<UInt32>) {
        guard bitWidth > 0 else {
            out.initialize(repeating: 0, count: count)
            return
        }
        let mask: UInt64 = (1 << UInt64(bitWidth)) - 1
        let base = bytes.baseAddress!
        let end = bytes.count
        var bit = start * 8
        for i in 0..<count {
            let byte = bit >> 3
            let shift = UInt64(bit & 7)
            var word: UInt64
            if byte + 8 <= end {
                word = base.loadUnaligned(fromByteOffset: byte, as: UInt64.self).littleEndian
            } else {
                word = 0
                for k in 0..<(end - byte) { word |= UInt64(base.load(fromByteOffset: byte + k, as: UInt8.self)) << (8 * UInt64(k)) }
            }
            out[i] = UInt32(truncatingIfNeeded: (word >> shift) & mask)
            bit += bitWidth
        }
    }

    private mutating func readVarint() throws(ThriftError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < bytes.count else { throw ThriftError("RLE/bit-packed data ends before all values are read") }
            let b = bytes[position]
            position += 1
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            guard shift <= 35 else { throw ThriftError("RLE run header longer than 5 bytes") }
        }
    }

    /// Bits needed for values 0...maxValue (Parquet's level bit width).
    static func bitWidth(forMaxValue maxValue: Int) -> Int {
        maxValue <= 0 ? 0 : Int.bitWidth - maxValue.leadingZeroBitCount
    }
}

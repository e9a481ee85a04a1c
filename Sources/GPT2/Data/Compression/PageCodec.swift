// Parquet's CompressionCodec values and the decompressor for each one the reader supports.

/// A Parquet compression codec (parquet.thrift `CompressionCodec`).
struct PageCodec: Equatable {
    let raw: Int32

    static let uncompressed = PageCodec(raw: 0)
    static let snappy = PageCodec(raw: 1)
    static let gzip = PageCodec(raw: 2)
    static let zstd = PageCodec(raw: 6)

    /// The name used in parquet.thrift (and by pyarrow's `compression=`, upper-cased).
    var name: String {
        switch raw {
        case 0: return "UNCOMPRESSED"
        case 1: return "SNAPPY"
        case 2: return "GZIP"
        case 3: return "LZO"
        case 4: return "BROTLI"
        case 5: return "LZ4"
        case 6: return "ZSTD"
        case 7: return "LZ4_RAW"
        default: return "codec \(raw)"
        }
    }

    var isSupported: Bool { [0, 1, 2, 6].contains(raw) }

    /// Decompresses a page body into exactly `size` bytes.
    func decompress(_ input: UnsafeRawBufferPointer, size: Int) throws(CodecError) -> [UInt8] {
        switch raw {
        case 0:
            guard input.count == size else { throw .corrupt("uncompressed page of \(input.count) bytes, the header says \(size)") }
            return Array(input)
        case 1:
            return try Snappy.decompress(input, size: size)
        case 2:
            return try Zlib.shared.get().gunzip(input, size: size)
        case 6:
            return try Zstd.shared.get().decompress(input, size: size)
        default:
            preconditionFailure("unsupported codec \(name) must be rejected before decompression")
        }
    }
}

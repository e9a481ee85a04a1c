// SNAPPY pages (pyarrow's default codec): libsnappy's C API (libsnappy.so.1, Debian libsnappy1v5)
// when installed, else our own decoder of the Snappy block format. A block is a varint of the
// uncompressed length, then elements: a literal (tag & 3 == 0) or a copy of earlier output with a
// 1-, 2- or 4-byte offset (tag & 3 == 1, 2, 3). Every offset and length is checked.
// Format: https://github.com/google/snappy/blob/main/format_description.txt

/// Snappy block decompression.
enum Snappy {
    /// Use libsnappy when it loads (tests turn this off to run the built-in decoder through the reader).
    nonisolated(unsafe) static var useSystemLibrary = true

    /// Decompresses a Snappy block into exactly `size` bytes.
    static func decompress(_ input: UnsafeRawBufferPointer, size: Int) throws(CodecError) -> [UInt8] {
        if useSystemLibrary, let lib = SnappyLibrary.shared {
            return try lib.decompress(input, size: size)
        }
        return try decode(input, size: size)
    }

    /// The built-in decoder.
    static func decode(_ input: UnsafeRawBufferPointer, size: Int) throws(CodecError) -> [UInt8] {
        let (declared, _) = try preamble(input)
        guard declared == UInt64(size) else { throw .corrupt("Snappy block holds \(declared) bytes, the page header says \(size)") }
        var failure: CodecError?
        let out = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, initialized in
            do throws(CodecError) {
                initialized = try decode(input, into: UnsafeMutableBufferPointer(rebasing: buffer[..<size]))
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return out
    }

    /// The uncompressed length (a varint of at most 5 bytes) and the offset of the first element.
    private static func preamble(_ input: UnsafeRawBufferPointer) throws(CodecError) -> (length: UInt64, next: Int) {
        var declared: UInt64 = 0
        var shift: UInt64 = 0
        var ip = 0
        while true {
            guard ip < input.count, shift <= 28 else { throw .corrupt("bad Snappy length preamble") }
            let b = input[ip]
            ip += 1
            declared |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return (declared, ip) }
            shift += 7
        }
    }

    /// Decodes into `out`, which must be exactly the declared uncompressed length; returns `out.count`.
    private static func decode(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>) throws(CodecError) -> Int {
        let n = input.count
        let (declared, first) = try preamble(input)
        var ip = first
        guard declared == UInt64(out.count) else {
            throw .corrupt("Snappy block holds \(declared) bytes, the page header says \(out.count)")
        }
        guard let dst = out.baseAddress, let src = input.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            guard out.count == 0 else { throw .corrupt("empty Snappy input") }
            return 0
        }
        let size = out.count
        var op = 0
        while ip < n {
            let tag = src[ip]
            ip += 1
            switch tag & 3 {
            case 0:
                // Literal: length - 1 in the upper 6 bits, or in the next 1...4 bytes when they say 60...63.
                var length = Int(tag >> 2) + 1
                if length > 60 {
                    let extra = length - 60
                    guard n - ip >= extra else { throw .corrupt("truncated Snappy literal length") }
                    var l = 0
                    for k in 0..<extra { l |= Int(src[ip + k]) << (8 * k) }
                    ip += extra
                    length = l + 1
                }
                guard length <= n - ip, length <= size - op else { throw .corrupt("Snappy literal runs past the end") }
                (dst + op).update(from: src + ip, count: length)
                ip += length
                op += length
            default:
                var length: Int
                var offset: Int
                switch tag & 3 {
                case 1:
                    guard ip < n else { throw .corrupt("truncated Snappy copy") }
                    length = Int((tag >> 2) & 7) + 4
                    offset = Int(tag >> 5) << 8 | Int(src[ip])
                    ip += 1
                case 2:
                    guard n - ip >= 2 else { throw .corrupt("truncated Snappy copy") }
                    length = Int(tag >> 2) + 1
                    offset = Int(src[ip]) | Int(src[ip + 1]) << 8
                    ip += 2
                default:
                    guard n - ip >= 4 else { throw .corrupt("truncated Snappy copy") }
                    length = Int(tag >> 2) + 1
                    offset = Int(src[ip]) | Int(src[ip + 1]) << 8 | Int(src[ip + 2]) << 16 | Int(src[ip + 3]) << 24
                    ip += 4
                }
                guard offset > 0, offset <= op else { throw .corrupt("Snappy copy offset \(offset) at output byte \(op)") }
                guard length <= size - op else { throw .corrupt("Snappy copy runs past the end") }
                if offset >= length {
                    (dst + op).update(from: dst + op - offset, count: length)
                } else {
                    // Overlapping copy: the pattern repeats every `offset` bytes.
                    for k in 0..<length { dst[op + k] = dst[op - offset + k] }
                }
                op += length
            }
        }
        guard op == size else { throw .corrupt("Snappy block ends after \(op) of \(size) bytes") }
        return size
    }
}

/// libsnappy's C API (snappy-c.h).
final class SnappyLibrary: @unchecked Sendable {
    private typealias FnUncompressedLength = @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutablePointer<Int>?) -> Int32
    private typealias FnUncompress = @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int>?) -> Int32

    /// Nil when libsnappy is not installed (the built-in decoder is used then).
    static let shared: SnappyLibrary? = SystemLibrary.open(librarySonames("snappy", version: "1")).flatMap(SnappyLibrary.init)

    private let uncompressedLength: FnUncompressedLength
    private let uncompress: FnUncompress
    private let lib: SystemLibrary

    private init?(_ lib: SystemLibrary) {
        guard let l: FnUncompressedLength = lib.symbol("snappy_uncompressed_length"),
              let u: FnUncompress = lib.symbol("snappy_uncompress") else { return nil }
        (self.lib, uncompressedLength, uncompress) = (lib, l, u)
    }

    func decompress(_ input: UnsafeRawBufferPointer, size: Int) throws(CodecError) -> [UInt8] {
        let src = input.baseAddress?.assumingMemoryBound(to: CChar.self)
        var declared = 0
        guard input.count > 0, uncompressedLength(src, input.count, &declared) == 0 else { throw .corrupt("bad Snappy length preamble") }
        guard declared == size else { throw .corrupt("Snappy block holds \(declared) bytes, the page header says \(size)") }
        var failure: CodecError?
        let out = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, initialized in
            var length = size
            let status = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: size) { uncompress(src, input.count, $0, &length) }
            if status != 0 || length != size {
                failure = .corrupt("snappy_uncompress status \(status)")
                initialized = 0
            } else {
                initialized = size
            }
        }
        if let failure { throw failure }
        return out
    }
}

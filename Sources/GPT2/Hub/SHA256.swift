// SHA-256 over the C implementation in Sources/GPT2Kernels/sha256.c (SHA extensions on x86-64
// when the CPU has them). The hub lists the sha256 of every LFS file; downloads are checked
// against it before they enter the cache.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GPT2Kernels

/// Streaming SHA-256: `update` any number of times, then `finalize`.
public struct SHA256: Sendable {
    private var ctx = gpt2k_sha256_ctx()

    public init() { gpt2k_sha256_init(&ctx) }

    /// Adds `count` bytes at `bytes`.
    public mutating func update(_ bytes: UnsafeRawPointer, count: Int) {
        gpt2k_sha256_update(&ctx, bytes, count)
    }

    /// Adds the bytes of `data`.
    public mutating func update<D: ContiguousBytes>(_ data: D) {
        data.withUnsafeBytes { if let base = $0.baseAddress { gpt2k_sha256_update(&ctx, base, $0.count) } }
    }

    /// The digest as 64 lowercase hex digits (the form the hub lists). The state is spent.
    public mutating func finalize() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        digest.withUnsafeMutableBufferPointer { gpt2k_sha256_final(&ctx, $0.baseAddress!) }
        return hexString(digest)
    }

    /// The SHA-256 of `data` in hex.
    public static func hex<D: ContiguousBytes>(_ data: D) -> String {
        var h = SHA256()
        h.update(data)
        return h.finalize()
    }

    /// True when the CPU's SHA instructions are used (x86-64 SHA extensions).
    public static var isAccelerated: Bool { gpt2k_sha256_accelerated() != 0 }

    /// Feeds the first `count` bytes of the open file `fd` (from offset 0) into this hash.
    /// - Returns: false when the file is shorter or cannot be read.
    mutating func update(fileDescriptor fd: Int32, count: Int) -> Bool {
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var offset = 0
        while offset < count {
            let n = pread(fd, buffer, min(chunk, count - offset), off_t(offset))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            update(buffer, count: n)
            offset += n
        }
        return true
    }
}

/// Lowercase hex of `bytes`.
func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
    return String(decoding: out, as: UTF8.self)
}

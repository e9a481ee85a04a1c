// CRC-32C (Castagnoli), the checksum of TFRecord framing (TensorBoard event files) and of our
// per-tensor checkpoint checksums. The work is in C (Sources/GPT2Kernels/crc32c.c: SSE4.2's crc32
// instruction when present, else slicing-by-8 tables).
import Foundation
import GPT2Kernels

public enum CRC32C {
    /// CRC-32C of `count` bytes at `bytes`, continuing `crc` (0 to start).
    public static func checksum(_ bytes: UnsafeRawPointer, count: Int, continuing crc: UInt32 = 0) -> UInt32 {
        gpt2k_crc32c_update(crc, bytes, count)
    }

    /// CRC-32C of `data`, continuing `crc` (0 to start).
    public static func checksum<D: ContiguousBytes>(_ data: D, continuing crc: UInt32 = 0) -> UInt32 {
        data.withUnsafeBytes { gpt2k_crc32c_update(crc, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
    }

    /// TFRecord's masked form: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so a CRC of data that
    /// itself holds CRCs is not degenerate.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

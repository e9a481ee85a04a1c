import Foundation
import XCTest
@testable import GPT2

final class CRC32CTests: XCTestCase {
    /// Bitwise reference (the definition), independent of the C tables and the crc32 instruction.
    private func reference(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (0x82F6_3B78 & (0 &- (c & 1))) }
        }
        return ~c
    }

    func testCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Data("123456789".utf8)), 0xE306_9283)   // the standard check value
        XCTAssertEqual(CRC32C.checksum(Data()), 0)
    }

    func testMatchesBitwiseDefinitionAtEveryLengthAndAlignment() {
        var rng = SplitMix64(seed: 7)
        let big = (0..<(3 * 8192 * 2 + 777)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for (start, count) in [(0, 1), (1, 7), (3, 64), (5, 1000), (0, 3 * 8192), (7, 3 * 8192 + 13), (0, big.count), (1, big.count - 1)] {
            let slice = Array(big[start..<start + count])
            XCTAssertEqual(CRC32C.checksum(slice), reference(slice), "start \(start) count \(count)")
        }
    }

    func testContinuationEqualsOneShot() {
        let data = Array((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let split = CRC32C.checksum(Array(data[30_001...]), continuing: CRC32C.checksum(Array(data[..<30_001])))
        XCTAssertEqual(split, CRC32C.checksum(data))
    }

    func testMaskMatchesTensorFlow() {
        // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xa282ead8 mod 2^32, worked by hand.
        XCTAssertEqual(CRC32C.masked(0xE306_9283), 0x2507_C60D &+ 0xA282_EAD8)
        XCTAssertEqual(CRC32C.masked(0), 0xA282_EAD8)
    }
}

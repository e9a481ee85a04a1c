// llm.c model files: v3 (fp32) round trip bit-exact, v5 (bf16) round trip equal to bf16 rounding,
// header validation, and truncated / padded / byte-flipped copies.
import Foundation
import XCTest
@testable import GPT2

final class FormatsLlmcTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try FormatsFixtures.scratch() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testVersion3RoundTripIsBitExact() throws {
        let model = FormatsFixtures.randomModel(seed: 1)
        let path = dir.appendingPathComponent("m.bin").path
        try saveLlmcModel(model, to: path)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        XCTAssertEqual(size, 1024 + 4 * model.params.count)
        let header = try headerWords(path)
        XCTAssertEqual(Array(header[0..<8]), [20240326, 3, 32, 64, 2, 4, 32, 128])
        XCTAssert(header[8...].allSatisfy { $0 == 0 })
        let loaded = try loadLlmcModel(path: path)
        XCTAssertEqual(loaded.config, model.config)
        assertSameBits(loaded.params, model.params, "v3 round trip")
        // Through the format-sniffing entry point too.
        assertSameBits(try loadModel(path: path).params, model.params, "loadModel(.bin)")
    }

    func testVersion5RoundTripIsBF16Rounding() throws {
        let model = FormatsFixtures.randomModel(seed: 2)
        let path = dir.appendingPathComponent("m_bf16.bin").path
        try saveLlmcModel(model, to: path, bf16: true)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        XCTAssertEqual(size, 1024 + 2 * model.params.count)
        XCTAssertEqual(try headerWords(path)[1], 5)
        let loaded = try loadLlmcModel(path: path)
        var maxRel: Float = 0
        for i in 0..<model.params.count {
            let a = model.params.memory[i], b = loaded.params.memory[i]
            XCTAssertEqual(b.bitPattern, floatFromBFloat16Bits(bfloat16Bits(a)).bitPattern, "element \(i)")
            if a.isNormal { maxRel = max(maxRel, abs(a - b) / abs(a)) }
        }
        XCTAssertLessThanOrEqual(maxRel, 1.0 / 256, "bf16 keeps 8 significant bits")
        // bf16 -> bf16 is exact.
        let again = dir.appendingPathComponent("again.bin").path
        try saveLlmcModel(loaded, to: again, bf16: true)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: again)), try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func testHeaderValidation() throws {
        let model = FormatsFixtures.randomModel(seed: 3)
        let good = dir.appendingPathComponent("good.bin").path
        try saveLlmcModel(model, to: good)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: good)))
        func variant(_ name: String, word: Int, value: Int32) throws -> String {
            var b = bytes
            withUnsafeBytes(of: value.littleEndian) { for k in 0..<4 { b[4 * word + k] = $0[k] } }
            let p = dir.appendingPathComponent(name).path
            try Data(b).write(to: URL(fileURLWithPath: p))
            return p
        }
        func expect(_ path: String, _ check: (LlmcModelError) -> Bool, line: UInt = #line) {
            assertThrowsNaming(path, path, line: line) { _ = try loadLlmcModel(path: path) }
            do { _ = try loadLlmcModel(path: path) } catch let e as LlmcModelError {
                XCTAssert(check(e), "unexpected error \(e)", line: line)
            } catch { XCTFail("unexpected error type \(error)", line: line) }
        }
        let magic = try variant("magic.bin", word: 0, value: 20240520)
        expect(magic) { if case .badMagic(_, 20240520) = $0 { return true }; return false }
        do { _ = try loadLlmcModel(path: magic) } catch { XCTAssert(error.localizedDescription.contains("token shard"), error.localizedDescription) }
        expect(try variant("v2.bin", word: 1, value: 2)) { if case .unsupportedVersion(_, 2) = $0 { return true }; return false }
        expect(try variant("v5.bin", word: 1, value: 5)) { if case .trailingBytes = $0 { return true }; return false }
        expect(try variant("heads.bin", word: 5, value: 5)) { if case .badDimensions = $0 { return true }; return false }
        expect(try variant("vp.bin", word: 7, value: 63)) { if case .badDimensions = $0 { return true }; return false }
        expect(try variant("negC.bin", word: 6, value: -32)) { if case .badDimensions = $0 { return true }; return false }
        expect(try variant("hugeL.bin", word: 4, value: Int32.max)) { if case .badDimensions = $0 { return true }; return false }
        expect(try variant("bigT.bin", word: 2, value: 1 << 19)) { if case .truncated(_, "wpe", _, _) = $0 { return true }; return false }
        // With L=3 the cumulative layout first runs past the end of the file in fcb.
        expect(try variant("L3.bin", word: 4, value: 3)) { if case .truncated(_, "fcb", _, _) = $0 { return true }; return false }
        expect(try variant("L1.bin", word: 4, value: 1)) { if case .trailingBytes = $0 { return true }; return false }

        let missing = dir.appendingPathComponent("missing.bin").path
        expect(missing) { if case .cannotOpen = $0 { return true }; return false }
        expect(dir.path) { if case .cannotOpen = $0 { return true }; return false }
    }

    func testCorruptCopiesThrowNamingTheFile() throws {
        for bf16 in [false, true] {
            let url = dir.appendingPathComponent(bf16 ? "m5.bin" : "m3.bin")
            try saveLlmcModel(FormatsFixtures.randomModel(seed: 4), to: url.path, bf16: bf16)
            let sweep = try CorruptionSweep(file: url, scratch: dir) { _ = try loadLlmcModel(path: $0) }
            try sweep.truncations(sampledPositions(end: sweep.original.count, dense: 40, count: 60))
            try sweep.trailingJunk()
            // 0xFF in any byte of words 0...7 (magic, version, dims) must be rejected; the unused
            // words 8...255 are ignored, as llm.c does.
            try sweep.flips(sampledPositions(end: 1024, dense: 32, count: 20), mustThrow: { $0 < 32 })
            try sweep.flips(Array(0..<32), mask: 0x80, mustThrow: { _ in true })
        }
    }

    private func headerWords(_ path: String) throws -> [Int32] {
        let d = try Data(contentsOf: URL(fileURLWithPath: path)).prefix(1024)
        return d.withUnsafeBytes { raw in (0..<256).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) } }
    }
}

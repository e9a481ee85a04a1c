// safetensors writer: layout, F32/BF16/transposed round trips through our reader and through
// Python's safetensors, atomic replacement, and corrupt copies of a written file.
import Foundation
import XCTest
@testable import GPT2

final class FormatsSafeTensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try FormatsFixtures.scratch() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A 5x7 matrix with ties, NaN, infinities, -0, subnormals and values that round to infinity.
    static let matrix: [Float] = {
        var m = (0..<35).map { Float($0) * 0.37 - 6.1 }
        m[0] = 1 + 0x1p-8            // exact tie, rounds down to even (1.0)
        m[1] = 1 + 3 * 0x1p-8        // exact tie, rounds up to even
        m[2] = .nan
        m[3] = -.infinity
        m[4] = -0.0
        m[5] = Float.leastNonzeroMagnitude
        m[6] = Float.greatestFiniteMagnitude   // rounds to +inf in bf16
        m[7] = -Float(bitPattern: 0x7F7F_7FFF) // just below the tie: stays finite
        m[8] = Float(bitPattern: 0x3F80_8001)  // just above a tie: rounds up
        return m
    }()

    private func writeSample(to path: String, metadata: [String: String]) throws {
        let m = FormatsSafeTensorsTests.matrix
        let one: [Float] = [1.5]
        try m.withUnsafeBufferPointer { mp in
            try one.withUnsafeBufferPointer { op in
                try writeSafeTensors([
                    SafeTensorsOutputTensor(name: "m", shape: [5, 7], data: mp),
                    SafeTensorsOutputTensor(name: "m_bf16", shape: [5, 7], data: mp, dtype: .BF16),
                    SafeTensorsOutputTensor(name: "mt", shape: [7, 5], data: mp, transposed: true),
                    SafeTensorsOutputTensor(name: "mt_bf16", shape: [7, 5], data: mp, dtype: .BF16, transposed: true),
                    SafeTensorsOutputTensor(name: "empty", shape: [0], data: UnsafeBufferPointer(start: nil, count: 0)),
                    SafeTensorsOutputTensor(name: "scalar", shape: [], data: op),
                ], metadata: metadata, to: path)
            }
        }
    }

    static let metadata = ["step": "12", "quote\"and\\slash": "line\nbreak\ttab \u{1} ünï ✓", "json": "{\"a\": [1, 2]}"]

    func testBFloat16Rounding() {
        XCTAssertEqual(bfloat16Bits(1.0), 0x3F80)
        XCTAssertEqual(bfloat16Bits(1 + 0x1p-8), 0x3F80)       // tie to even (down)
        XCTAssertEqual(bfloat16Bits(1 + 3 * 0x1p-8), 0x3F82)   // tie to even (up)
        XCTAssertEqual(bfloat16Bits(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertEqual(bfloat16Bits(-0.0), 0x8000)
        XCTAssertEqual(bfloat16Bits(.infinity), 0x7F80)
        XCTAssertEqual(bfloat16Bits(.greatestFiniteMagnitude), 0x7F80)
        XCTAssertEqual(bfloat16Bits(-.nan), 0x7FC0)
        XCTAssertEqual(bfloat16Bits(Float(bitPattern: 0x7F80_0001)), 0x7FC0)   // signalling NaN stays NaN
        for b: UInt16 in [0x0001, 0x3F80, 0xC2F7, 0x7F7F, 0x8080] {
            XCTAssertEqual(bfloat16Bits(floatFromBFloat16Bits(b)), b, "bf16 values are exact")
        }
    }

    func testLayoutAndRoundTrip() throws {
        let path = dir.appendingPathComponent("sample.safetensors").path
        try writeSample(to: path, metadata: FormatsSafeTensorsTests.metadata)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let n = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + n) % 8, 0, "data section is 8-byte aligned")
        XCTAssertEqual(bytes[8], UInt8(ascii: "{"))
        XCTAssert([UInt8(ascii: "}"), UInt8(ascii: " ")].contains(bytes[8 + n - 1]), "header ends with '}' or padding")
        XCTAssertEqual(bytes.count, 8 + n + 35 * 4 * 2 + 35 * 2 * 2 + 4)

        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.metadata, FormatsSafeTensorsTests.metadata)
        XCTAssertEqual(Set(f.tensors.keys), ["m", "m_bf16", "mt", "mt_bf16", "empty", "scalar"])
        let m = FormatsSafeTensorsTests.matrix
        XCTAssertEqual(try f.floats("m", expectedShape: [5, 7]).map(\.bitPattern), m.map(\.bitPattern))
        let rounded = m.map { floatFromBFloat16Bits(bfloat16Bits($0)) }
        XCTAssertEqual(try f.info("m_bf16").dtype, .BF16)
        XCTAssertEqual(try f.floats("m_bf16").map(\.bitPattern), rounded.map(\.bitPattern))
        let mt = try f.floats("mt", expectedShape: [7, 5]), mtb = try f.floats("mt_bf16", expectedShape: [7, 5])
        for r in 0..<5 {
            for c in 0..<7 {
                XCTAssertEqual(mt[c * 5 + r].bitPattern, m[r * 7 + c].bitPattern)
                XCTAssertEqual(mtb[c * 5 + r].bitPattern, rounded[r * 7 + c].bitPattern)
            }
        }
        XCTAssertEqual(try f.floats("empty", expectedShape: [0]), [])
        XCTAssertEqual(try f.floats("scalar", expectedShape: []), [1.5])
    }

    func testPythonSafetensorsReadsIt() throws {
        guard let python = referencePython(importing: ["safetensors", "torch"]) else {
            throw XCTSkip("no Python with safetensors + torch (set GPT2_PYTHON)")
        }
        let path = dir.appendingPathComponent("sample.safetensors").path
        try writeSample(to: path, metadata: FormatsSafeTensorsTests.metadata)
        let md = String(decoding: try JSONSerialization.data(withJSONObject: FormatsSafeTensorsTests.metadata), as: UTF8.self)
        let script = TestPaths.reference.appendingPathComponent("check_formats.py").path
        let r = try runProcess(python, [script, "safetensors", path, md])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.text.trimmingCharacters(in: .whitespacesAndNewlines), "ok")
    }

    func testAtomicReplaceAndFailure() throws {
        let path = dir.appendingPathComponent("a.safetensors").path
        try writeSample(to: path, metadata: ["v": "1"])
        try writeSample(to: path, metadata: ["v": "2"])
        XCTAssertEqual(try SafeTensorsFile(path: path).metadata, ["v": "2"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["a.safetensors"], "no temporary files left")

        let missing = dir.appendingPathComponent("no/such/dir/x.safetensors").path
        assertThrowsNaming(missing, "write into a missing directory") { try writeSample(to: missing, metadata: [:]) }
        // A directory in the way of the rename: the temporary file must be removed.
        let blocked = dir.appendingPathComponent("blocked.safetensors")
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("inner"), withIntermediateDirectories: true)
        assertThrowsNaming(blocked.path, "rename onto a non-empty directory") { try writeSample(to: blocked.path, metadata: [:]) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["a.safetensors", "blocked.safetensors"])
    }

    func testCorruptCopiesThrowNamingTheFile() throws {
        let url = dir.appendingPathComponent("sample.safetensors")
        try writeSample(to: url.path, metadata: ["k": "v"])
        let sweep = try CorruptionSweep(file: url, scratch: dir) { path in
            let f = try SafeTensorsFile(path: path)
            for name in ["m", "m_bf16", "mt", "mt_bf16", "empty", "scalar"] { _ = try f.floats(name) }
        }
        try sweep.truncations(sampledPositions(end: sweep.original.count, dense: 64, count: 200))
        let n = sweep.original.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        // Every byte of the length field and the JSON header: 0xFF makes invalid UTF-8 or a wrong length.
        let positions = sampledPositions(end: 8 + n, dense: 16, count: 250)
        let thrown = try sweep.flips(positions, mustThrow: { $0 <= 8 })
        XCTAssertGreaterThan(thrown, positions.count / 2)
        try sweep.flips(positions, mask: 0x01)
    }
}

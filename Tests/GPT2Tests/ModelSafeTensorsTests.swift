// safetensors and HF-directory loading: dtype conversion, and malformed files (truncated,
// bit-flipped header, offsets past the end, missing tensor, wrong shape, unknown dtype) must
// each throw an error naming the file (and the tensor where there is one), never crash.
import Foundation
import XCTest
@testable import GPT2

final class ModelSafeTensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try ModelFixtures.scratchDirectory() }
    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    /// A valid two-tensor file: "a" (2,3) = 0..5, "b" (4) = 10..13.
    func writeValid(_ name: String = "ok.safetensors") throws -> String {
        let path = dir.appendingPathComponent(name).path
        let a: [Float] = [0, 1, 2, 3, 4, 5], b: [Float] = [10, 11, 12, 13]
        try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in
                try writeSafeTensors([.init(name: "a", shape: [2, 3], data: pa), .init(name: "b", shape: [4], data: pb)],
                                     metadata: ["step": "7"], to: path)
            }
        }
        return path
    }

    /// Writes a file from a raw JSON header and `dataBytes` bytes of data.
    func writeRaw(_ header: String, dataBytes: Int, name: String = "raw.safetensors") throws -> String {
        var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        bytes += Array(header.utf8) + [UInt8](repeating: 0, count: dataBytes)
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Asserts `body` throws a SafeTensorsError whose message names `path` and `tensor`.
    func assertThrowsNaming(_ path: String, tensor: String?, _ what: String, file: StaticString = #filePath,
                            line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("\(what): no error thrown", file: file, line: line)
        } catch let e as SafeTensorsError {
            let msg = e.localizedDescription
            XCTAssert(msg.contains(path), "\(what): message does not name the file: \(msg)", file: file, line: line)
            if let tensor { XCTAssert(msg.contains("'\(tensor)'"), "\(what): message does not name '\(tensor)': \(msg)", file: file, line: line) }
        } catch {
            XCTFail("\(what): unexpected error type \(error)", file: file, line: line)
        }
    }

    func testRoundTripAndMetadata() throws {
        let f = try SafeTensorsFile(path: try writeValid())
        XCTAssertEqual(try f.floats("a", expectedShape: [2, 3]), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(try f.floats("b"), [10, 11, 12, 13])
        XCTAssertEqual(f.metadata, ["step": "7"])
    }

    func testDTypeConversion() throws {
        let f = try SafeTensorsFile(path: ModelFixtures.root.appendingPathComponent("dtypes.safetensors").path)
        XCTAssertEqual(try f.floats("f16").map { $0.bitPattern }, try f.floats("f16_as_f32").map { $0.bitPattern })
        XCTAssertEqual(try f.floats("bf16").map { $0.bitPattern }, try f.floats("bf16_as_f32").map { $0.bitPattern })
        XCTAssertEqual(try f.info("i64").dtype, .I64)
        assertThrowsNaming(f.path, tensor: "i64", "integer tensor read as float") { _ = try f.floats("i64") }
    }

    func testTruncatedFiles() throws {
        let path = try writeValid()
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        // data section cut: the header is intact, so the error names the tensor that no longer fits
        try full.prefix(full.count - 4).write(to: URL(fileURLWithPath: path))
        assertThrowsNaming(path, tensor: "b", "data cut") { _ = try SafeTensorsFile(path: path) }
        // header cut, and shorter than the length prefix
        for n in [full.count / 3, 20, 5, 0] {
            try full.prefix(n).write(to: URL(fileURLWithPath: path))
            assertThrowsNaming(path, tensor: nil, "cut at \(n)") { _ = try SafeTensorsFile(path: path) }
        }
    }

    func testHeaderBitFlipsThrowOrLoadSafely() throws {
        let path = try writeValid()
        let full = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerEnd = 8 + Int(full[0]) + Int(full[1]) << 8
        var thrown = 0
        for byte in 0..<headerEnd { for bit in (byte < 8 ? Array(0..<8) : [byte % 8, (byte * 5 + 3) % 8]) {   // all bits of the length, two per JSON byte
            var bytes = full
            bytes[byte] ^= UInt8(1 << bit)
            let p = dir.appendingPathComponent("flip.safetensors").path
            try Data(bytes).write(to: URL(fileURLWithPath: p))
            do {
                let f = try SafeTensorsFile(path: p)
                for name in f.tensors.keys { _ = try? f.floats(name) }   // whatever still parses must read safely
            } catch let e as SafeTensorsError {
                XCTAssert(e.localizedDescription.contains(p), "flip \(byte).\(bit): \(e.localizedDescription)")
                thrown += 1
            }
        } }
        XCTAssertGreaterThan(thrown, headerEnd)   // most flips are detected
    }

    func testOffsetsPastEnd() throws {
        let p = try writeRaw(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, dataBytes: 12)
        assertThrowsNaming(p, tensor: "w", "offsets past end") { _ = try SafeTensorsFile(path: p) }
        let q = try writeRaw(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,4]}}"#, dataBytes: 16, name: "q.safetensors")
        assertThrowsNaming(q, tensor: "w", "reversed offsets") { _ = try SafeTensorsFile(path: q) }
        let r = try writeRaw(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, dataBytes: 16, name: "r.safetensors")
        assertThrowsNaming(r, tensor: "w", "size disagrees with shape") { _ = try SafeTensorsFile(path: r) }
        let s = try writeRaw(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                             dataBytes: 16, name: "s.safetensors")
        assertThrowsNaming(s, tensor: "x", "overlap") { _ = try SafeTensorsFile(path: s) }
        let t = try writeRaw(#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, dataBytes: 16, name: "t.safetensors")
        assertThrowsNaming(t, tensor: "w", "negative dim") { _ = try SafeTensorsFile(path: t) }
        let u = try writeRaw(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, dataBytes: 16, name: "u.safetensors")
        assertThrowsNaming(u, tensor: "w", "overflowing shape") { _ = try SafeTensorsFile(path: u) }
        let v = try writeRaw(#"[1,2,3]"#, dataBytes: 0, name: "v.safetensors")
        assertThrowsNaming(v, tensor: nil, "not an object") { _ = try SafeTensorsFile(path: v) }
    }

    func testUnknownDType() throws {
        let p = try writeRaw(#"{"w":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 8)
        assertThrowsNaming(p, tensor: "w", "unknown dtype") { _ = try SafeTensorsFile(path: p) }
    }

    func testMissingTensorAndWrongShape() throws {
        let path = try writeValid()
        let f = try SafeTensorsFile(path: path)
        assertThrowsNaming(path, tensor: "nope", "missing tensor") { _ = try f.floats("nope") }
        assertThrowsNaming(path, tensor: "a", "wrong shape") { _ = try f.floats("a", expectedShape: [3, 2]) }
    }

    func testMissingFile() {
        let p = dir.appendingPathComponent("absent.safetensors").path
        assertThrowsNaming(p, tensor: nil, "missing file") { _ = try SafeTensorsFile(path: p) }
    }

    // MARK: - HF directories

    /// Copies the tiny fixture and rewrites its weights through `edit` (name -> (shape, values) or nil to drop).
    func rewrittenTinyModel(_ edit: (String, [Int], [Float]) -> ([Int], [Float])?) throws -> URL {
        let src = URL(fileURLWithPath: ModelFixtures.dir("tiny_v96"))
        let out = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: src.appendingPathComponent("config.json"), to: out.appendingPathComponent("config.json"))
        let f = try SafeTensorsFile(path: src.appendingPathComponent("model.safetensors").path)
        var kept: [(String, [Int], [Float])] = []
        for name in f.tensors.keys.sorted() {
            if let (shape, values) = edit(name, try f.info(name).shape, try f.floats(name)) { kept.append((name, shape, values)) }
        }
        let buffers = kept.map { t -> UnsafeMutableBufferPointer<Float> in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: t.2.count); _ = b.initialize(from: t.2); return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        try writeSafeTensors(zip(kept, buffers).map { .init(name: $0.0, shape: $0.1, data: UnsafeBufferPointer($1)) },
                             to: out.appendingPathComponent("model.safetensors").path)
        return out
    }

    func testHFMissingTensorIsNamed() throws {
        let out = try rewrittenTinyModel { name, shape, v in name == "transformer.h.1.mlp.c_fc.bias" ? nil : (shape, v) }
        assertThrowsNaming(out.appendingPathComponent("model.safetensors").path, tensor: "transformer.h.1.mlp.c_fc.bias",
                           "HF missing tensor") { _ = try loadHFModel(directory: out.path) }
    }

    func testHFWrongShapeIsNamed() throws {
        let out = try rewrittenTinyModel { name, shape, v in
            name == "transformer.h.0.attn.c_attn.weight" ? ([shape[1], shape[0]], v) : (shape, v)   // not transposed: wrong layout
        }
        assertThrowsNaming(out.appendingPathComponent("model.safetensors").path, tensor: "transformer.h.0.attn.c_attn.weight",
                           "HF wrong shape") { _ = try loadHFModel(directory: out.path) }
    }

    func testHFMissingFilesAndBadConfig() throws {
        XCTAssertThrowsError(try loadHFModel(directory: dir.path)) { e in
            XCTAssert(e.localizedDescription.contains("config.json"), e.localizedDescription)
        }
        try #"{"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 96}"#.write(
            to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadHFModel(directory: dir.path)) { e in   // no n_positions
            XCTAssert(e.localizedDescription.contains("n_positions"), e.localizedDescription)
        }
        try #"{"n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 8, "vocab_size": 96, "activation_function": "relu"}"#.write(
            to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadHFModel(directory: dir.path)) { e in
            XCTAssert(e.localizedDescription.contains("relu"), e.localizedDescription)
        }
        try #"{"n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 8, "vocab_size": 96}"#.write(
            to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try loadHFModel(directory: dir.path)) { e in   // no weights
            XCTAssert(e.localizedDescription.contains("model.safetensors"), e.localizedDescription)
        }
    }
}

// `gpt export`: the --hf directory loads in transformers with identical parameters and logits, and
// its tokenizer (fast and slow) encodes like tiktoken (Tests/reference/check_export.py against
// Tests/Fixtures/tokenizer/cases.json); the --llmc file is llm.c's layout read independently with
// numpy and loads back bit-exactly; checkpoints, run directories and hf:// are accepted as input.
import Foundation
import XCTest
@testable import GPT2

final class ExportCommandTests: XCTestCase {
    static let hubFixture = TestPaths.fixtures.appendingPathComponent("model/hub_v50257_bf16").path
    static let tinyFixture = TestPaths.fixtures.appendingPathComponent("model/tiny_v96").path
    var scratch: URL!

    override func setUpWithError() throws { scratch = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    func export(_ args: [String], environment: [String: String]? = nil) throws -> ProcessResult {
        let exe = TestPaths.products.appendingPathComponent("gpt").path
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw XCTSkip("gpt not built") }
        return try runProcess(exe, ["export"] + args, environment: environment)
    }

    func testHFExportLoadsInTransformersWithItsTokenizer() throws {
        let out = path("hf")
        let r = try export([Self.hubFixture, "--hf", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(),
                       ["config.json", "generation_config.json", "merges.txt", "model.safetensors", "special_tokens_map.json",
                        "tokenizer_config.json", "vocab.json"], "no temporary files left")
        assertSameBits(try loadHFModel(directory: out).params, try loadHFModel(directory: Self.hubFixture).params, "export --hf")
        // The tokenizer files load back in our tokenizer too.
        let tok = try GPT2Tokenizer(directory: out)
        XCTAssertEqual(tok.encode("Hello, I'm a language model,"), [15496, 11, 314, 1101, 257, 3303, 2746, 11])

        guard let python = referencePython(importing: ["torch", "transformers", "numpy"]) else {
            throw XCTSkip("no Python with torch + transformers (set GPT2_PYTHON)")
        }
        let check = try runProcess(python, [TestPaths.reference.appendingPathComponent("check_export.py").path, "hf", Self.hubFixture, out,
                                            TestPaths.fixtures.appendingPathComponent("tokenizer/cases.json").path])
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertEqual(check.text.trimmingCharacters(in: .whitespacesAndNewlines), "ok", check.stderr)
    }

    func testLlmcExportIsLlmcsLayoutAndLoadsBack() throws {
        let original = try loadHFModel(directory: Self.hubFixture)
        var files: [String] = []
        for bf16 in [false, true] {
            let file = path(bf16 ? "model_bf16.bin" : "model.bin")
            let r = try export([Self.hubFixture, "--llmc", file] + (bf16 ? ["--bf16"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            let header = try Data(contentsOf: URL(fileURLWithPath: file)).prefix(32).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
            XCTAssertEqual(header, [20240326, bf16 ? 5 : 3, 32, 50257, 2, 2, 32, 50304])
            if !bf16 { assertSameBits(try loadLlmcModel(path: file).params, original.params, "export --llmc") }
            files.append(file)
        }
        guard let python = referencePython(importing: ["torch", "transformers", "numpy"]) else {
            throw XCTSkip("no Python with torch + transformers (set GPT2_PYTHON)")
        }
        let check = try runProcess(python, [TestPaths.reference.appendingPathComponent("check_export.py").path, "llmc", Self.hubFixture] + files)
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertEqual(check.text.trimmingCharacters(in: .whitespacesAndNewlines), "ok", check.stderr)
    }

    func testCheckpointsAndRunDirectoriesExport() throws {
        let run = path("run")
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        let older = FormatsFixtures.randomModel(seed: 31), newer = FormatsFixtures.randomModel(seed: 32)
        try saveCheckpoint(older, includeOptimizer: false, metadata: [:], to: run + "/checkpoint_000100.safetensors")
        try saveCheckpoint(newer, includeOptimizer: true, metadata: [:], to: run + "/checkpoint_000200.safetensors")

        let fromDir = path("from-run"), fromFile = path("from-file")
        XCTAssertEqual(try export([run, "--hf", fromDir]).status, 0)
        let r = try export([run + "/checkpoint_000100.safetensors", "--hf", fromFile, "--llmc", path("old.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssert(r.stderr.contains("not GPT-2's"), "a 64-token vocabulary gets no tokenizer files: \(r.stderr)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: fromFile).sorted(),
                       ["config.json", "generation_config.json", "model.safetensors"])
        XCTAssertEqual(try String(contentsOfFile: fromFile + "/generation_config.json", encoding: .utf8), "{\n}\n")
        let c = newer.config, n = c.vocabSize * c.channels
        for (dir, model) in [(fromDir, newer), (fromFile, older)] {
            let loaded = try loadHFModel(directory: dir)
            for p in ParameterName.allCases {
                let count = p == .wte ? n : model.params.count(p)
                XCTAssertEqual(memcmp(loaded.params.pointer(p), model.params.pointer(p), 4 * count), 0, "\(dir): \(p.name)")
            }
        }
        assertSameBits(try loadLlmcModel(path: path("old.bin")).params, older.params, "checkpoint -> llm.c")

        // Exporting again over the same directory replaces it; bad targets and inputs are one-line errors.
        XCTAssertEqual(try export([run, "--hf", fromFile]).status, 0)
        assertSameBits(try loadHFModel(directory: fromFile).params, try loadHFModel(directory: fromDir).params, "re-export")
        try Data("x".utf8).write(to: URL(fileURLWithPath: path("file")))
        let blocked = try export([run, "--hf", path("file")])
        XCTAssertNotEqual(blocked.status, 0)
        XCTAssert(blocked.stderr.contains(path("file")), blocked.stderr)
        let missing = try export([path("nothing"), "--hf", path("x")])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssert(missing.stderr.contains(path("nothing")), missing.stderr)
        XCTAssertNotEqual(try export([run]).status, 0, "--hf or --llmc is required")
    }

    func testExportFromTheHub() throws {
        let hub = try FakeHub { root in
            for f in ["config.json", "model.safetensors"] {
                try writeRepoFile(root, "models/acme/tiny/" + f, Data(contentsOf: URL(fileURLWithPath: Self.tinyFixture + "/" + f)))
            }
        }
        let r = try export(["hf://acme/tiny", "--llmc", path("tiny.bin")], environment: hub.environment(cache: scratch.appendingPathComponent("cache")))
        XCTAssertEqual(r.status, 0, r.stderr)
        assertSameBits(try loadLlmcModel(path: path("tiny.bin")).params, try loadHFModel(directory: Self.tinyFixture).params, "hf:// -> llm.c")
    }
}

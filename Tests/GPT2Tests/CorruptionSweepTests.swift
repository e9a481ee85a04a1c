// A bounded corruption sweep over every file type `gpt` reads, through the real binary: for each
// type, a valid file first (it must work: exit 0), then seeded truncations and byte flips. Every
// corrupt copy must make `gpt` exit by itself with status 1 (never a signal, never a hang), print
// one line on stderr naming the file (or the HF / tokenizer directory holding it), and leave no
// file under a final name.
//
// Flips XOR a byte with 0xFF, at positions the format can check: any byte of a JSON or text file
// (it becomes invalid UTF-8), headers, tensors that carry a CRC-32C, the high byte of token ids
// (the fixtures use ids < 256, so the flipped id exceeds the vocabulary), HellaSwag's structural
// fields. Formats without checksums cannot detect a flipped float in a transformers or llm.c
// file, nor a changed token id below the vocabulary; those positions are not swept. Text formats
// cut at a line end are valid shorter files (JSONL, tiktoken rank files), so they are cut mid-line.
import Foundation
import XCTest
@testable import GPT2

final class CorruptionSweepTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    // MARK: - sweep machinery

    struct Variant {
        var name: String
        var bytes: [UInt8]
    }

    /// Truncated copies at `lengths` (those below the size) and copies with one byte XOR 0xFF at
    /// `flipCount` seeded positions drawn from `regions`.
    static func variants(of original: [UInt8], truncations lengths: [Int], regions: [Range<Int>], flipCount: Int,
                         seed: UInt64) -> [Variant] {
        var out = Set(lengths.filter { $0 >= 0 && $0 < original.count }).sorted().map {
            Variant(name: "truncated to \($0) of \(original.count) bytes", bytes: Array(original[..<$0]))
        }
        let positions = regions.flatMap { $0.clamped(to: 0..<original.count) }
        guard !positions.isEmpty else { return out }
        var rng = SplitMix(seed)
        var chosen = Set<Int>()
        while chosen.count < min(flipCount, positions.count) { chosen.insert(positions[Int(rng.next() % UInt64(positions.count))]) }
        for p in chosen.sorted() {
            var b = original
            b[p] ^= 0xFF
            out.append(Variant(name: "byte \(p) of \(original.count) flipped", bytes: b))
        }
        return out
    }

    /// Every regular file under `root` (relative paths).
    static func files(under root: String) -> Set<String> {
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        var out = Set<String>()
        while let p = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.insert(p) }
        }
        return out
    }

    /// Runs `args` with the valid file (must succeed), then with every variant written over
    /// `target` (must fail cleanly naming `naming`). `outputs`: a directory the command writes
    /// to, emptied before each run, that must hold no file afterwards.
    func sweep(_ label: String, target: String, original: [UInt8], variants: [Variant], args: [String],
               naming: String, outputs: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        func reset() throws {
            if let outputs { try? FileManager.default.removeItem(atPath: outputs) }
        }
        try reset()
        writeFileBytes(original, to: target)
        let baseline = try runGPTGuarded(args, timeout: 120)
        XCTAssertTrue(baseline.status == 0 && !baseline.signaled, "\(label): the valid file fails: \(baseline.summary)", file: file, line: line)
        try reset()
        let inputs = Self.files(under: dir.path)
        for v in variants {
            try reset()
            writeFileBytes(v.bytes, to: target)
            let r = try runGPTGuarded(args, timeout: 60)
            assertCleanFailure(r, naming: [naming], "\(label), \(v.name)", file: file, line: line)
            let left = Self.files(under: dir.path).subtracting(inputs)
            XCTAssertTrue(left.isEmpty, "\(label), \(v.name): files left behind: \(left.sorted())", file: file, line: line)
        }
        writeFileBytes(original, to: target)
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Data start of a safetensors file (8 + header length).
    static func safetensorsDataStart(_ b: [UInt8]) -> Int {
        8 + Int(b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
    }

    static let tinyConfig = GPT2Config(maxSeqLen: 16, vocabSize: 96, numLayers: 1, numHeads: 2, channels: 16)
    /// Sampling one token from a model whose vocabulary holds "!" (GPT-2 id 0).
    static func sampleArgs(_ model: String) -> [String] {
        ["sample", "--model", model, "--prompt", "!", "--max-tokens", "1", "--num-samples", "1", "--ids"]
    }

    // MARK: - model files

    func testCheckpointSweep() throws {
        let model = GPT2(config: Self.tinyConfig)
        model.initializeRandom(seed: 5)
        let ck = path("model.safetensors")
        try saveCheckpoint(model, includeOptimizer: true, metadata: ["trainer": "{\"step\":3}"], to: ck)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ck)))
        let start = Self.safetensorsDataStart(original), n = original.count
        let variants = Self.variants(of: original, truncations: [0, 5, 8, 9, 64, start - 1, start, start + 99, n / 2, n - 1],
                                     regions: [0..<8, 8..<start, start..<n], flipCount: 20, seed: 1)
        try sweep("checkpoint", target: ck, original: original, variants: variants, args: Self.sampleArgs(ck), naming: ck)
    }

    func testHuggingFaceDirectorySweep() throws {
        // written by transformers (no checksums): config.json, and the safetensors header
        let hf = path("hf")
        try FileManager.default.copyItem(atPath: TestPaths.fixtures.appendingPathComponent("model/tiny_v96").path, toPath: hf)
        try? FileManager.default.removeItem(atPath: hf + "/reference.safetensors")
        let config = [UInt8](try Data(contentsOf: URL(fileURLWithPath: hf + "/config.json")))
        let lastBrace = config.lastIndex(of: UInt8(ascii: "}"))!
        try sweep("HF config.json", target: hf + "/config.json", original: config,
                  variants: Self.variants(of: config, truncations: [0, 1, 2, 40, lastBrace / 2, lastBrace],
                                          regions: [0..<lastBrace + 1], flipCount: 8, seed: 2),
                  args: Self.sampleArgs(hf), naming: hf)
        let weights = [UInt8](try Data(contentsOf: URL(fileURLWithPath: hf + "/model.safetensors")))
        let start = Self.safetensorsDataStart(weights)
        try sweep("HF model.safetensors", target: hf + "/model.safetensors", original: weights,
                  variants: Self.variants(of: weights, truncations: [0, 7, 8, 100, start - 1, start + 1, weights.count - 1],
                                          regions: [0..<start], flipCount: 8, seed: 3),
                  args: Self.sampleArgs(hf), naming: hf)
        // exported by us: every tensor carries a CRC-32C, so flipped weights are found too
        let ours = path("exported")
        try exportHFModel(try loadHFModel(directory: hf), to: ours)
        let exported = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ours + "/model.safetensors")))
        try sweep("exported model.safetensors", target: ours + "/model.safetensors", original: exported,
                  variants: Self.variants(of: exported, truncations: [], regions: [Self.safetensorsDataStart(exported)..<exported.count],
                                          flipCount: 6, seed: 4),
                  args: Self.sampleArgs(ours), naming: ours)
    }

    func testLlmcModelSweep() throws {
        let model = GPT2(config: Self.tinyConfig)
        model.initializeRandom(seed: 6)
        let bin = path("model.bin")
        try saveLlmcModel(model, to: bin)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bin)))
        // the 8 header words in use; the data has no checksum in this format
        let variants = Self.variants(of: original, truncations: [0, 3, 4, 100, 1023, 1024, 1500, original.count / 2, original.count - 1],
                                     regions: [0..<32], flipCount: 14, seed: 7)
        try sweep("llm.c model", target: bin, original: original, variants: variants, args: Self.sampleArgs(bin), naming: bin)
    }

    // MARK: - token shards

    func testTokenShardSweep() throws {
        for format in ShardFormat.allCases {
            let data = path("data-\(format.rawValue)"), run = path("run-\(format.rawValue)")
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            let tokens = (0..<600).map { UInt16(($0 * 7919) % 256) }
            try TokenShard.write(Array(tokens[..<200]), to: data + "/t_val_000000.\(format.rawValue)", format: format)
            let shard = data + "/t_train_000001.\(format.rawValue)"
            try TokenShard.write(tokens, to: shard, format: format)
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: shard)))
            let header = try TokenShard.header(path: shard)
            let start = header.dataOffset, n = original.count
            // the header fields in use (llm.c's words 3...255 are unused zeros), and the high byte of tokens
            let headerRegion = format == .bin ? 0..<12 : 0..<start
            let highBytes = stride(from: start + 1, to: n, by: 2).map { $0..<$0 + 1 }
            let variants = Self.variants(of: original, truncations: [0, 5, 12, start - 1, start + 1, n - 1],
                                         regions: [headerRegion] + highBytes, flipCount: 8, seed: 8)
            let args = ["train", "--data", data, "--out", run, "--layers", "1", "--heads", "1", "--embd", "8", "--seq", "16",
                        "-B", "1", "-T", "8", "--total-batch", "8", "--max-steps", "1", "--val-every", "1000", "--sample-every", "1000"]
            try sweep("\(format.rawValue) token shard", target: shard, original: original, variants: variants, args: args,
                      naming: shard, outputs: run)
        }
    }

    // MARK: - tokenizer files

    func testTokenizerFilesSweep() throws {
        let text = path("text.txt")
        try Data("Hello there, the quick brown fox and the lazy dog.\n".utf8).write(to: URL(fileURLWithPath: text))
        for layout in ToyTokenizer.Layout.allCases {
            let tok = path("tok-\(layout.rawValue)")
            try ToyTokenizer.write(layout, to: tok)
            for name in layout.files {
                let target = tok + "/" + name
                let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: target)))
                // cut mid-line or mid-object: a rank or merges file cut at a line end is a smaller valid vocabulary
                let cuts = [0, 1, original.count / 3, original.count / 2, original.count - 2].map { midLine(original, $0) }
                try sweep("\(layout.rawValue) \(name)", target: target, original: original,
                          variants: Self.variants(of: original, truncations: cuts, regions: [0..<original.count - 1], flipCount: 5, seed: 9),
                          args: ["encode", "--tokenizer", tok, text], naming: tok)
            }
        }
    }

    /// `n` moved off a line end (so that the cut leaves a partial line), or 0.
    func midLine(_ b: [UInt8], _ n: Int) -> Int {
        var k = n
        while k > 0 && (b[k - 1] == 0x0A || (k < b.count && b[k] == 0x0A)) { k -= 1 }
        return k
    }

    // MARK: - HellaSwag

    func testHellaSwagSweep() throws {
        let model = TestPaths.fixtures.appendingPathComponent("hellaswag/model").path
        let jsonl = path("hellaswag.jsonl")
        let lines = try String(contentsOf: TestPaths.fixtures.appendingPathComponent("hellaswag/hellaswag_20.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(2)
        let jsonlBytes = Array((lines.joined(separator: "\n") + "\n").utf8)
        let cuts = [1, 10, jsonlBytes.count / 2, jsonlBytes.count - 3].map { midLine(jsonlBytes, $0) }
        try sweep("HellaSwag jsonl", target: jsonl, original: jsonlBytes,
                  variants: Self.variants(of: jsonlBytes, truncations: cuts, regions: [0..<jsonlBytes.count], flipCount: 5, seed: 10),
                  args: ["eval", "hellaswag", "--model", model, "--data", jsonl, "--quiet"], naming: jsonl)

        let bin = path("hellaswag.bin")
        let examples = try HellaSwag.parseBin(Data(contentsOf: TestPaths.fixtures.appendingPathComponent("hellaswag/hellaswag_20.bin")),
                                              path: "fixture", limit: 2)
        try HellaSwag.writeBin(examples, to: bin)
        let binBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bin)))
        // header words 0-2, and each example's delimiter, size, label, completion count and lengths
        var structural: [Range<Int>] = [0..<12]
        var q = 1024
        for ex in examples {
            // 65535, size, (index: not checked), label, completions, context length
            for k in [0, 1, 3, 4, 5] { structural.append((q + 2 * k)..<(q + 2 * k + 2)) }
            q += 12 + 2 * ex.context.count
            for e in ex.endings {
                structural.append(q..<(q + 2))
                q += 2 + 2 * e.count
            }
        }
        XCTAssertEqual(q, binBytes.count)
        try sweep("HellaSwag .bin", target: bin, original: binBytes,
                  variants: Self.variants(of: binBytes, truncations: [0, 4, 1023, 1024, 1030, binBytes.count / 2, binBytes.count - 1],
                                          regions: structural, flipCount: 10, seed: 11),
                  args: ["eval", "hellaswag", "--model", model, "--data", bin, "--quiet"], naming: bin)
    }

    // MARK: - prepare input

    func testJSONLPrepareInputSweep() throws {
        let input = path("docs.jsonl"), out = path("shards")
        let docs = (0..<4).map { "{\"text\": \"Document \($0): the quick brown fox jumps over the lazy dog.\", \"id\": \($0)}" }
        let bytes = Array((docs.joined(separator: "\n") + "\n").utf8)
        let cuts = [20, bytes.count / 2, bytes.count - 3].map { midLine(bytes, $0) }
        try sweep("prepare JSONL", target: input, original: bytes,
                  variants: Self.variants(of: bytes, truncations: cuts, regions: [0..<bytes.count], flipCount: 4, seed: 12),
                  args: ["prepare", input, "--output", out, "--threads", "1"], naming: input, outputs: out)
    }
}

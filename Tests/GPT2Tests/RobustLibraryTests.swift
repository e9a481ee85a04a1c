// The library side of issue 11: per-tensor CRC-32C in safetensors (verified on read, absent from
// transformers files), byte-identical checkpoints of identical state, bounded GPT2Config sizes,
// token ids checked against a model's vocabulary (GPT2Config.checkTokens, the data loader's shard
// check), tokenizer files with missing merges or absurd ids, npy headers with trailing text.
import Foundation
import XCTest
@testable import GPT2

final class RobustLibraryTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try FormatsFixtures.scratch() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Offset of the data section of a safetensors file.
    func dataStart(_ bytes: [UInt8]) -> Int { CorruptionSweepTests.safetensorsDataStart(bytes) }

    // MARK: - checksums

    func testCheckpointCarriesAChecksumPerTensorAndFlippedBytesNameTheTensor() throws {
        let model = FormatsFixtures.randomModel(seed: 21)
        FormatsFixtures.fillRandom(model.adamM, seed: 22)
        FormatsFixtures.fillRandom(model.adamV, seed: 23)
        let ck = path("ck.safetensors")
        try saveCheckpoint(model, includeOptimizer: true, metadata: ["trainer": "{}"], to: ck)
        let file = try SafeTensorsFile(path: ck)
        XCTAssertEqual(Set(file.checksums.keys), Set(file.tensors.keys))
        XCTAssertEqual(file.checksums.count, 48)
        XCTAssertNil(file.metadata["crc32c"], "the checksums are not part of the caller's metadata")
        XCTAssertEqual(try loadCheckpoint(path: ck).metadata, ["trainer": "{}"])
        // The stored value is the CRC-32C of the tensor's bytes (CRC32CTests checks the function against references).
        let lnfb = try file.rawBytes("lnfb")
        XCTAssertEqual(file.checksums["lnfb"], CRC32C.checksum(lnfb.baseAddress!, count: lnfb.count))

        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ck)))
        for tensor in ["wte", "adam_m.qkvw", "adam_v.lnfb", "fcprojw"] {
            var bytes = original
            let range = file.tensors[tensor]!.dataRange
            var rng = SplitMix(UInt64(range.lowerBound))
            for _ in 0..<min(2000, range.count) { bytes[dataStart(original) + range.lowerBound + Int(rng.next() % UInt64(range.count))] ^= 0x10 }
            let corrupt = path("corrupt.safetensors")
            writeFileBytes(bytes, to: corrupt)
            for (what, load) in [("loadCheckpoint", { _ = try loadCheckpoint(path: corrupt) }), ("loadModel", { _ = try loadModel(path: corrupt) })] {
                XCTAssertThrowsError(try load(), "\(what): \(tensor) flipped") { error in
                    guard case let .checksumMismatch(p, t, _, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
                    XCTAssertEqual(p, corrupt)
                    XCTAssertEqual(t, tensor)
                    XCTAssertTrue(error.localizedDescription.contains("'\(tensor)'") && error.localizedDescription.contains(corrupt))
                }
            }
        }
    }

    func testIdenticalStateSavesToIdenticalBytes() throws {
        struct State: Codable { var step = 7; var lr = 6e-4; var position = [1, 2, 3]; var name = "run"; var seed: UInt64 = 1337 }
        let model = FormatsFixtures.randomModel(seed: 24)
        FormatsFixtures.fillRandom(model.adamM, seed: 25)
        FormatsFixtures.fillRandom(model.adamV, seed: 26)
        var files: [[UInt8]] = []
        for i in 0..<4 {
            let p = path("ck\(i).safetensors")
            // a fresh encoding each time: JSONEncoder alone orders keys differently between calls
            try saveCheckpoint(model, includeOptimizer: true, metadata: ["trainer": try checkpointMetadataJSON(State()), "b": "2", "a": "1"], to: p)
            files.append([UInt8](try Data(contentsOf: URL(fileURLWithPath: p))))
        }
        for f in files.dropFirst() { XCTAssertEqual(f, files[0]) }
        XCTAssertEqual(try checkpointMetadataJSON(State()), "{\"lr\":0.0006,\"name\":\"run\",\"position\":[1,2,3],\"seed\":1337,\"step\":7}")
    }

    func testFilesWithoutChecksumsStillLoad() throws {
        for fixture in ["model/tiny_v96", "model/hub_v50257_bf16", "hellaswag/model"] {
            let hf = TestPaths.fixtures.appendingPathComponent(fixture).path
            XCTAssertTrue(try SafeTensorsFile(path: hf + "/model.safetensors").checksums.isEmpty, "\(fixture) was written by transformers")
            XCTAssertNoThrow(try loadModel(path: hf), fixture)
        }
    }

    func testExportedHFDirectoriesAreVerifiedToo() throws {
        let model = FormatsFixtures.randomModel(seed: 27)
        let hf = path("hf")
        try exportHFModel(model, to: hf)
        let weights = hf + "/model.safetensors"
        let file = try SafeTensorsFile(path: weights)
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(file.checksums.count, file.tensors.count)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: weights)))
        let key = "transformer.h.1.mlp.c_fc.weight"
        bytes[dataStart(bytes) + file.tensors[key]!.dataRange.lowerBound + 5] ^= 0x01
        writeFileBytes(bytes, to: weights)
        assertThrowsNaming(weights, "one bit flipped in an exported tensor") { _ = try loadModel(path: hf) }
        XCTAssertThrowsError(try loadHFModel(directory: hf)) { error in
            XCTAssertTrue(error.localizedDescription.contains("'\(key)'"), error.localizedDescription)
        }
    }

    func testMalformedChecksumEntriesAreErrors() throws {
        let model = FormatsFixtures.randomModel(seed: 28)
        let ck = path("ck.safetensors")
        try saveCheckpoint(model, includeOptimizer: false, metadata: [:], to: ck)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ck)))
        let header = String(decoding: original[8..<dataStart(original)], as: UTF8.self)
        // Same-length edits of the crc32c entry (JSON-escaped inside the metadata string).
        let crcOfLnfb = hex8(try SafeTensorsFile(path: ck).checksums["lnfb"]!)
        for (what, from, to) in [("not hex", "\\\"lnfb\\\":\\\"\(crcOfLnfb)", "\\\"lnfb\\\":\\\"zz\(crcOfLnfb.dropFirst(2))"),
                                 ("an unknown tensor", "\\\"lnfb\\\":", "\\\"lnfx\\\":"),
                                 ("not an object", "\"crc32c\":\"{", "\"crc32c\":\"[")] {
            XCTAssertTrue(header.contains(from), "\(what): '\(from)' not in the header")
            let edited = header.replacingOccurrences(of: from, with: to)
            XCTAssertEqual(edited.utf8.count, header.utf8.count)
            let corrupt = path("bad-crc.safetensors")
            writeFileBytes(Array(original[..<8]) + Array(edited.utf8) + Array(original[dataStart(original)...]), to: corrupt)
            XCTAssertThrowsError(try SafeTensorsFile(path: corrupt), what) { error in
                guard case .badChecksums(corrupt, _)? = error as? SafeTensorsError else { return XCTFail("\(what): \(error)") }
            }
        }
    }

    // MARK: - sizes and token ids

    func testConfigBoundsNameTheField() {
        XCTAssertNil(GPT2Config.preset("gpt2-xl")!.problem())
        for (field, value) in [(GPT2ConfigField.channels, 1 << 31), (.vocabSize, 1 << 62), (.maxSeqLen, 10_000_000_000_000),
                               (.numLayers, 0), (.numHeads, -3), (.paddedVocabSize, Int.max)] {
            var c = GPT2Config(numLayers: 2, numHeads: 2, channels: 64)
            switch field {
            case .channels: c.channels = value
            case .vocabSize: c.vocabSize = value
            case .maxSeqLen: c.maxSeqLen = value
            case .numLayers: c.numLayers = value
            case .numHeads: c.numHeads = value
            case .paddedVocabSize: c.paddedVocabSize = value
            }
            let problem = c.problem(naming: { "<\($0.rawValue)>" })
            XCTAssertEqual(problem, "<\(field.rawValue)> \(value) is outside [1, \(field.limit)]")
            XCTAssertEqual(c.validationError, "\(field.rawValue) \(value) is outside [1, \(field.limit)]")
        }
        XCTAssertEqual(GPT2ConfigField.sizeProblem(1e300, field: .vocabSize, naming: { _ in "vocab_size" }),
                       "vocab_size 1e+300 is outside [1, 16777216]")
        XCTAssertEqual(GPT2ConfigField.sizeProblem(64.5, field: .channels), "channels 64.5 is not an integer")
        XCTAssertNotNil(GPT2ConfigField.sizeProblem(.nan, field: .channels))
        XCTAssertEqual(GPT2Config.padVocab(Int.max), Int.max, "no overflow")
        // Every parameter count of a config at the bounds fits Int.
        let largest = GPT2Config(maxSeqLen: GPT2ConfigField.maxSeqLen.limit, vocabSize: GPT2ConfigField.vocabSize.limit,
                                 numLayers: GPT2ConfigField.numLayers.limit, numHeads: 1, channels: GPT2ConfigField.channels.limit)
        XCTAssertNil(largest.problem())
        XCTAssertGreaterThan(largest.parameterCount, 0)
    }

    func testCheckTokensNamesSourcePositionAndId() throws {
        let c = GPT2Config(maxSeqLen: 16, vocabSize: 96, numLayers: 1, numHeads: 1, channels: 8)
        XCTAssertNoThrow(try c.checkTokens([0, 95, 3] as [Int32], source: "x"))
        XCTAssertNoThrow(try c.checkTokens([UInt16](), source: "x"))
        XCTAssertThrowsError(try c.checkTokens([1, 2, 96] as [Int32], source: "the prompt")) { error in
            XCTAssertEqual(error as? TokenRangeError, .outOfVocabulary(source: "the prompt", index: 2, token: 96, vocabSize: 96))
            XCTAssertTrue(error.localizedDescription.hasPrefix("the prompt: token 96 at position 2"), error.localizedDescription)
        }
        XCTAssertThrowsError(try c.checkTokens([-1] as [Int32], source: "ids")) { error in
            XCTAssertEqual(error as? TokenRangeError, .outOfVocabulary(source: "ids", index: 0, token: -1, vocabSize: 96))
        }
    }

    func testHFConfigSizesAreBoundedBeforeUse() throws {
        let base = try JSONSerialization.jsonObject(with: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("model/tiny_v96/config.json"))) as! [String: Any]
        for (key, value, expect) in [("n_embd", 1 << 31 as Any, "n_embd 2147483648 is outside [1, 65536]"),
                                     ("vocab_size", 1 << 62, "vocab_size 4611686018427387904 is outside [1, 16777216]"),
                                     ("n_positions", 1e13, "n_positions 10000000000000 is outside [1, 1048576]"),
                                     ("n_layer", 1.5, "n_layer 1.5 is not an integer"),
                                     ("n_head", "4", "'n_head' is not a number"),
                                     ("n_head", 3, "n_embd 64 is not divisible by n_head 3")] {
            var config = base
            config[key] = value
            let p = path("config.json")
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: p))
            XCTAssertThrowsError(try readHFConfig(path: p), "\(key) = \(value)") { error in
                XCTAssertEqual(error.localizedDescription, "bad GPT-2 config '\(p)': \(expect)")
            }
        }
        var config = base
        config.removeValue(forKey: "n_positions")
        config["n_ctx"] = 32
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path("config.json")))
        XCTAssertEqual(try readHFConfig(path: path("config.json")).maxSeqLen, 32, "n_ctx is the older name of n_positions")
    }

    // MARK: - the data loader's vocabulary check

    func writeShards(_ shards: [(String, [UInt16])], format: ShardFormat = .npy) throws -> String {
        let d = path("data-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        for (name, tokens) in shards { try TokenShard.write(tokens, to: d + "/" + name + "." + format.rawValue, format: format) }
        return d
    }

    func testLoaderRejectsIdsAboveTheVocabularyWhenItOpensTheShard() throws {
        let good = (0..<100).map { UInt16($0 % 90) }
        var bad = good
        bad[61] = 96
        // the first shard: at construction
        let d1 = try writeShards([("t_train_000001", bad)])
        XCTAssertThrowsError(try DataLoader(directory: d1, split: .train, B: 2, T: 4, vocabSize: 96)) { error in
            XCTAssertEqual(error as? ShardError, .tokenOutOfRange(path: d1 + "/t_train_000001.npy", index: 61, token: 96, vocabSize: 96))
            XCTAssertTrue(error.localizedDescription.contains("byte offset 122"), error.localizedDescription)
        }
        XCTAssertNoThrow(try DataLoader(directory: d1, split: .train, B: 2, T: 4, vocabSize: 97))
        // a later shard: when the loader moves to it, before any of its batches is returned
        for shuffle in [false, true] {
            let d2 = try writeShards([("t_train_000001", good), ("t_train_000002", bad)], format: .bin)
            let loader = try DataLoader(directory: d2, split: .train, B: 2, T: 4, shuffle: shuffle, seed: 3, vocabSize: 96)
            var x: [Int32] = [], y: [Int32] = []
            var failure: Error?
            for _ in 0..<40 {
                do { try loader.next(inputs: &x, targets: &y) } catch { failure = error; break }
                XCTAssertTrue((x + y).allSatisfy { $0 < 96 })
            }
            XCTAssertEqual(failure as? ShardError, .tokenOutOfRange(path: d2 + "/t_train_000002.bin", index: 61, token: 96, vocabSize: 96),
                           "shuffle \(shuffle)")
        }
        // GPT-2's padding rows 50257...50303 are not tokens
        let d3 = try writeShards([("t_train_000001", good + [50257] + good)])
        XCTAssertThrowsError(try DataLoader(directory: d3, split: .train, B: 2, T: 4)) { error in
            XCTAssertTrue(error.localizedDescription.contains("padding row"), error.localizedDescription)
        }
    }

    func testMappedLoaderReadsTheSameTokensAsReadingTheShard() throws {
        let a = (0..<300).map { UInt16(($0 * 31) % 50257) }, b = (0..<200).map { UInt16(($0 * 17 + 5) % 50257) }
        let d = try writeShards([("t_train_000001", a), ("t_train_000002", b)])
        let loader = try DataLoader(directory: d, split: .train, B: 3, T: 8)
        let stream = try TokenShard.read(path: d + "/t_train_000001.npy") + TokenShard.read(path: d + "/t_train_000002.npy")
        XCTAssertEqual(stream, a + b)
        var x: [Int32] = [], y: [Int32] = []
        try loader.next(inputs: &x, targets: &y)
        XCTAssertEqual(x, a[0..<24].map { Int32($0) })
        XCTAssertEqual(y, a[1..<25].map { Int32($0) })
    }

    // MARK: - token shards and tokenizer files

    func testNpyHeaderWithTrailingTextOrAnotherMinorVersionIsRejected() throws {
        let p = path("s.npy")
        try TokenShard.write([1, 2, 3], to: p, format: .npy)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        let end = 10 + Int(bytes[8]) | Int(bytes[9]) << 8
        var trailing = bytes
        trailing[end - 3] = UInt8(ascii: "x")   // a space of the padding
        writeFileBytes(trailing, to: p)
        assertThrowsNaming(p, "text after the dictionary") { _ = try TokenShard.read(path: p) }
        bytes[7] = 5
        writeFileBytes(bytes, to: p)
        assertThrowsNaming(p, "numpy format 1.5") { _ = try TokenShard.read(path: p) }
    }

    func testMessagesQuotingFileContentStayOneLine() throws {
        let p = path("odd.safetensors")
        let values: [Float] = [1, 2]
        try values.withUnsafeBufferPointer {
            try writeSafeTensors([SafeTensorsOutputTensor(name: "line\nbreak\u{1B}", shape: [2], data: $0)], to: p)
        }
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(f.tensors.keys.first, "line\nbreak\u{1B}")
        var out = [Float](repeating: 0, count: 3)
        XCTAssertThrowsError(try f.read("line\nbreak\u{1B}", expectedShape: [3], into: &out)) { error in
            XCTAssertTrue(error.localizedDescription.contains("'line\\nbreak\\u{1B}'"), error.localizedDescription)
        }
        XCTAssertEqual(oneLine("a\tb\r\u{85}c\u{2028}"), "a\\tb\\r\\u{85}c\\u{2028}")
    }

    func testTokenizerFilesWithMissingMergesOrAbsurdIdsAreRejected() throws {
        let tok = path("tok")
        try ToyTokenizer.write(.openai, to: tok)
        XCTAssertNoThrow(try GPT2Tokenizer(directory: tok))
        let bpe = try String(contentsOfFile: tok + "/vocab.bpe", encoding: .utf8)
        // cut at a line end: the last merges' tokens would silently become "special tokens"
        let lines = bpe.split(separator: "\n")
        try (lines.dropLast(3).joined(separator: "\n") + "\n").write(toFile: tok + "/vocab.bpe", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try GPT2Tokenizer(directory: tok)) { error in
            XCTAssertTrue(error.localizedDescription.contains(tok + "/vocab.bpe") && error.localizedDescription.contains("truncated"),
                          error.localizedDescription)
        }
        try bpe.write(toFile: tok + "/vocab.bpe", atomically: true, encoding: .utf8)
        let encoder = try String(contentsOfFile: tok + "/encoder.json", encoding: .utf8)
        for (what, edited) in [("a huge id", encoder.replacingOccurrences(of: "\"<|endoftext|>\": ", with: "\"<|endoftext|>\": 99999999999999999999")),
                               ("a shared id", encoder.replacingOccurrences(of: "\"<|endoftext|>\": \(ToyTokenizer.vocabulary().tokens.count)",
                                                                             with: "\"<|endoftext|>\": 5"))] {
            XCTAssertNotEqual(edited, encoder, what)
            try edited.write(toFile: tok + "/encoder.json", atomically: true, encoding: .utf8)
            assertThrowsNaming(tok + "/encoder.json", what) { _ = try GPT2Tokenizer(directory: tok) }
        }
        assertThrowsNaming(tok + "/vocab.bpe", "a file as the tokenizer directory") { _ = try GPT2Tokenizer(directory: tok + "/vocab.bpe") }
    }
}

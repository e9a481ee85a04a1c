// `gpt prepare hf://datasets/...` against a fake hub: the shards equal those prepared from the same
// files on disk, a second run downloads nothing, and bad locations are one-line errors.
import Foundation
import XCTest
@testable import GPT2

final class HubPrepareTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws { scratch = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    var gpt: String { TestPaths.products.appendingPathComponent("gpt").path }

    func run(_ args: [String], _ env: [String: String]) throws -> ProcessResult {
        guard FileManager.default.isExecutableFile(atPath: gpt) else { throw XCTSkip("gpt not built") }
        return try runProcess(gpt, args, environment: env)
    }

    /// JSONL files of generated documents (varied words, numbers, punctuation, some non-ASCII).
    static func jsonl(seed: UInt64, documents: Int) -> Data {
        var rng = SplitMix(seed)
        let words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "GPT-2", "tokens", "naïve", "café",
                     "1024", "shard", "val", "train", "—", "¿qué?", "data", "model", "'s", "isn't", "\n", "  ", "日本"]
        var lines: [String] = []
        for d in 0..<documents {
            let n = 20 + Int(rng.next() % 200)
            let text = "Document \(seed)-\(d): " + (0..<n).map { _ in words[Int(rng.next() % UInt64(words.count))] }.joined(separator: " ")
            let json = try! JSONSerialization.data(withJSONObject: ["text": text, "id": "\(seed)-\(d)"], options: [.sortedKeys])
            lines.append(String(decoding: json, as: UTF8.self))
        }
        return Data((lines.joined(separator: "\n") + "\n").utf8)
    }

    static let files: [(String, Data)] = [
        ("data/part-000.jsonl", jsonl(seed: 1, documents: 40)),
        ("data/part-001.jsonl", jsonl(seed: 2, documents: 25)),
        ("data/part-002.jsonl", jsonl(seed: 3, documents: 60)),
        ("data/extra/skip.jsonl", jsonl(seed: 4, documents: 5)),
    ]

    func startHub() throws -> FakeHub {
        try FakeHub { root in
            for (path, data) in Self.files { try writeRepoFile(root, "datasets/acme/texts/" + path, data) }
        }
    }

    /// Shard file names and contents of a folder.
    func shards(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for f in try FileManager.default.contentsOfDirectory(atPath: dir) where f.hasSuffix(".npy") || f.hasSuffix(".bin") {
            out[f] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
        }
        return out
    }

    func testHubDatasetGivesTheShardsOfTheLocalFiles() throws {
        let hub = try startHub()
        let cache = scratch.appendingPathComponent("cache")
        let env = hub.environment(cache: cache)
        let local = scratch.appendingPathComponent("local")
        for (path, data) in Self.files.prefix(3) { try writeRepoFile(local, path, data) }
        let options = ["--name", "texts", "--shard-tokens", "3000", "--threads", "2"]

        let a = scratch.appendingPathComponent("a").path, b = scratch.appendingPathComponent("b").path
        let fromDisk = try run(["prepare"] + Self.files.prefix(3).map { local.appendingPathComponent($0.0).path } + ["-o", a] + options, env)
        XCTAssertEqual(fromDisk.status, 0, fromDisk.stderr)
        let fromHub = try run(["prepare", "hf://datasets/acme/texts/data/*.jsonl", "-o", b] + options, env)
        XCTAssertEqual(fromHub.status, 0, fromHub.stderr)
        let want = try shards(a)
        XCTAssertGreaterThan(want.count, 2)
        XCTAssertEqual(try shards(b), want)
        XCTAssertEqual(try hub.requests("resolve"), 3)

        // Again (the cache), and offline: nothing downloaded, same shards.
        for (i, offline) in [false, true].enumerated() {
            let c = scratch.appendingPathComponent("c\(i)").path
            let again = try run(["prepare", "hf://datasets/acme/texts/data/*.jsonl", "-o", c] + options, hub.environment(cache: cache, offline: offline))
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(try shards(c), want)
        }
        XCTAssertEqual(try hub.requests("resolve"), 3)
    }

    func testBadLocationsAreOneLineErrors() throws {
        let hub = try startHub()
        let env = hub.environment(cache: scratch.appendingPathComponent("cache"))
        let out = scratch.appendingPathComponent("out").path
        for (args, needle) in [(["hf://datasets/acme/none/x.jsonl", "-o", out], "datasets/acme/none"),
                               (["hf://datasets/acme/texts/data/*.parquet", "-o", out], "data/*.parquet"),
                               (["hf://datasets/acme/texts@nobranch/data", "-o", out], "nobranch"),
                               (["hf://datasets/acme", "-o", out], "OWNER/NAME"),
                               (["hf://acme/texts/data/part-000.jsonl", "-o", out], "model repository"),
                               (["hf://datasets/acme/texts/data/*.jsonl"], "--output")] {
            let r = try run(["prepare"] + args, env)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssert(r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/data_val_000000.npy"))
    }
}

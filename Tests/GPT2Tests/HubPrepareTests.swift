// `gpt prepare hf://datasets/...` against a fake hub: the shards equal those prepared from the same
// files on disk (JSONL and Parquet, with and without --stream, which deletes what it downloaded),
// the fineweb-edu preset reads HuggingFaceFW/fineweb-edu's sample/10BT/*.parquet into
// edu_fineweb10B/edufineweb_*, a second run downloads nothing, and bad locations are one-line errors.
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

    func testStreamGivesTheSameShardsAndDeletesWhatItDownloaded() throws {
        let hub = try startHub()
        let cache = scratch.appendingPathComponent("cache")
        let env = hub.environment(cache: cache)
        let local = scratch.appendingPathComponent("local")
        for (path, data) in Self.files.prefix(3) { try writeRepoFile(local, path, data) }
        let options = ["--name", "texts", "--shard-tokens", "2000", "--threads", "2", "--format", "bin"]
        let a = scratch.appendingPathComponent("a").path, b = scratch.appendingPathComponent("b").path
        XCTAssertEqual(try run(["prepare"] + Self.files.prefix(3).map { local.appendingPathComponent($0.0).path } + ["-o", a] + options, env).status, 0)
        // One file is in the cache before: streaming leaves it there.
        let kept = try run(["prepare", "hf://datasets/acme/texts/data/part-001.jsonl", "-o", scratch.appendingPathComponent("k").path] + options, env)
        XCTAssertEqual(kept.status, 0, kept.stderr)

        let streamed = try run(["prepare", "hf://datasets/acme/texts/data/*.jsonl", "-o", b, "--stream"] + options, env)
        XCTAssertEqual(streamed.status, 0, streamed.stderr)
        XCTAssertEqual(try shards(b), try shards(a))
        let folder = cache.appendingPathComponent("datasets--acme--texts").path
        let blobs = try FileManager.default.contentsOfDirectory(atPath: folder + "/blobs")
        XCTAssertEqual(blobs, [SHA256.hex(Self.files[1].1)], "only the file cached before the run is left")
        let snapshot = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: folder + "/snapshots").first)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/snapshots/\(snapshot)/data"), ["part-001.jsonl"])
        XCTAssertEqual(try hub.requests("resolve"), 3, "part-001 once, the two others once each")

        let local2 = try run(["prepare", local.path, "-o", scratch.appendingPathComponent("c").path, "--stream"] + options, env)
        XCTAssertNotEqual(local2.status, 0)
        XCTAssert(local2.stderr.contains("--stream"), local2.stderr)
    }

    /// `gpt prepare fineweb-edu` (the preset) in a working directory: edu_fineweb10B/edufineweb_*
    /// from sample/10BT/*.parquet only, the same shards as the local files; --stream too.
    func testFineWebEduPresetReadsTheSample() throws {
        let parquet = ["snappy_dict_v1_nulls.parquet", "gzip_plain_v2_required.parquet", "none_fallback_v1.parquet"]
            .map { TestPaths.fixtures.appendingPathComponent("parquet/" + $0) }
        let hub = try FakeHub { root in
            for (i, f) in parquet.enumerated() {
                try writeRepoFile(root, String(format: "datasets/HuggingFaceFW/fineweb-edu/sample/10BT/%03d_00000.parquet", i), Data(contentsOf: f))
            }
            try writeRepoFile(root, "datasets/HuggingFaceFW/fineweb-edu/sample/100BT/000_00000.parquet", Data(contentsOf: parquet[0]))
            try writeRepoFile(root, "datasets/HuggingFaceFW/fineweb-edu/README.md", Data("# FineWeb-Edu\n".utf8))
        }
        let env = hub.environment(cache: scratch.appendingPathComponent("cache"))
        let reference = scratch.appendingPathComponent("reference").path
        let local = try run(["prepare"] + parquet.map(\.path) + ["-o", reference, "--name", "edufineweb", "--shard-tokens", "300"], env)
        XCTAssertEqual(local.status, 0, local.stderr)
        let want = try shards(reference)
        XCTAssertTrue(want.keys.contains("edufineweb_val_000000.npy"), "\(want.keys)")
        XCTAssertGreaterThan(want.count, 2)

        for (i, extra) in [[], ["--stream"]].enumerated() {
            let cwd = scratch.appendingPathComponent("work\(i)")
            try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: gpt)
            p.arguments = ["prepare", "fineweb-edu", "--shard-tokens", "300"] + extra
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            p.currentDirectoryURL = cwd
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "gpt prepare fineweb-edu \(extra)")
            XCTAssertEqual(try shards(cwd.appendingPathComponent("edu_fineweb10B").path), want, "\(extra)")
        }
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

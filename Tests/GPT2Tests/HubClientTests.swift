// The hub client against a fake hub (Tests/reference/fake_hub.py, 127.0.0.1 only): listing with
// pagination, the huggingface_hub cache layout, the token kept off the CDN host, resume after a
// cut connection (the server counts the bytes it served), retry after a 503, a corrupt blob
// refused before it enters the cache, errors for missing and gated repositories, offline use, and
// cache sharing with huggingface_hub itself in both directions.
import Foundation
import XCTest
@testable import GPT2

final class HubClientTests: XCTestCase {
    static let dataset = HubRepo(.dataset, "acme/corpus")
    /// Files of the dataset repository (LFS unless *.json / *.md).
    static let files: [String: Data] = [
        "data/a.jsonl": pseudoRandomBytes(70_001, seed: 1),
        "data/b.jsonl": pseudoRandomBytes(50_000, seed: 2),
        "data/c.jsonl": pseudoRandomBytes(30_017, seed: 3),
        "data/sub/d.jsonl": pseudoRandomBytes(1_000, seed: 4),
        "README.md": Data("# corpus\n".utf8),
        "meta/info.json": Data("{\"rows\": 3}\n".utf8),
    ]

    var scratch: URL!

    override func setUpWithError() throws { scratch = try TestPaths.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func startHub(_ config: [String: Any] = [:]) throws -> FakeHub {
        try FakeHub(config: config) { root in
            for (path, data) in Self.files { try writeRepoFile(root, "datasets/acme/corpus/" + path, data) }
            try writeRepoFile(root, "datasets/acme/gated/data.bin", pseudoRandomBytes(5_000, seed: 9))
            try writeRepoFile(root, "datasets/acme/gated/config.json", Data("{}".utf8))
        }
    }

    var cache: URL { scratch.appendingPathComponent("cache") }

    func testDownloadsAGlobIntoTheHuggingFaceCacheLayout() throws {
        let hub = try startHub()
        let client = hub.client(cache: cache)
        let set = try client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/*.jsonl"))
        XCTAssertEqual(set.files.map(\.path), ["data/a.jsonl", "data/b.jsonl", "data/c.jsonl"], "sorted, * stays in one folder")
        XCTAssertTrue(HubCache.isCommitHash(set.commit))
        XCTAssertEqual(set.files[0].sha256, SHA256.hex(Self.files["data/a.jsonl"]!))

        let seen = ProgressLog()
        let paths = try client.download(set, progress: seen.record)
        let folder = cache.appendingPathComponent("datasets--acme--corpus")
        XCTAssertEqual(paths, set.files.map { folder.path + "/snapshots/\(set.commit)/" + $0.path })
        for (path, file) in zip(paths, set.files) {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Self.files[file.path])
            // a relative link to blobs/<sha256>
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
            XCTAssertEqual(target, "../../../blobs/" + file.sha256!)
        }
        XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent("refs/main"), encoding: .utf8), set.commit)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.appendingPathComponent("CACHEDIR.TAG").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.path + "/.locks/datasets--acme--corpus/\(set.files[0].sha256!).lock"))
        XCTAssertEqual(try hub.authOnCDN(), 0)
        let last = try XCTUnwrap(seen.last)
        XCTAssertEqual(last.filesDone, 3)
        XCTAssertEqual(last.filesTotal, 3)
        XCTAssertEqual(last.bytesDone, 150_018)
        XCTAssertEqual(last.bytesTotal, 150_018)

        // A folder, a single small file (served directly, named by its git blob id), the whole repository.
        let sub = try client.resolve(HubURI.parse("hf://datasets/acme/corpus/data"))
        XCTAssertEqual(sub.files.map(\.path), ["data/a.jsonl", "data/b.jsonl", "data/c.jsonl", "data/sub/d.jsonl"])
        let info = try client.resolve(HubURI.parse("hf://datasets/acme/corpus/meta/info.json"))
        XCTAssertNil(info.files[0].sha256)
        let infoPath = try client.download(info)[0]
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: infoPath)), Self.files["meta/info.json"])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: infoPath), "../../../blobs/" + info.files[0].blobID)
        XCTAssertEqual(try client.resolve(HubURI.parse("hf://datasets/acme/corpus")).files.count, Self.files.count)
        XCTAssertEqual(try client.resolve(HubURI.parse("hf://datasets/acme/corpus/**/*.jsonl")).files.count, 4)
    }

    func testSecondRunDownloadsNothingAndOfflineUsesTheCacheAlone() throws {
        let hub = try startHub()
        let uri = try HubURI.parse("hf://datasets/acme/corpus/data/*.jsonl")
        let first = try hub.client(cache: cache).download(hub.client(cache: cache).resolve(uri))
        let files = try hub.requests("resolve"), cdn = try hub.requests("cdn"), api = try hub.requests("api")
        XCTAssertEqual(files, 3)
        XCTAssertEqual(cdn, 3)

        let again = try hub.client(cache: cache).download(hub.client(cache: cache).resolve(uri))
        XCTAssertEqual(again, first)
        XCTAssertEqual(try hub.requests("resolve"), files, "no file request on the second run")
        XCTAssertEqual(try hub.requests("cdn"), cdn)
        XCTAssertGreaterThan(try hub.requests("api"), api, "the revision and listing are asked again")

        let apiBefore = try hub.requests("api")
        let offline = hub.client(cache: cache, offline: true)
        let set = try offline.resolve(uri)
        XCTAssertTrue(set.fromCache)
        XCTAssertEqual(try offline.download(set), first)
        XCTAssertEqual(try hub.requests("api"), apiBefore, "offline: no request at all")
        XCTAssertThrowsError(try offline.resolve(HubURI.parse("hf://datasets/acme/corpus/README.md"))) { error in
            XCTAssert(error.localizedDescription.contains("HF_HUB_OFFLINE"), error.localizedDescription)
        }
        XCTAssertThrowsError(try offline.resolve(HubURI.parse("hf://datasets/acme/other/x"))) { error in
            XCTAssert(error.localizedDescription.contains("acme/other"), error.localizedDescription)
        }

        // The hub unreachable (server stopped): a revision seen before is served from the cache.
        hub.stop()
        let unreachable = hub.client(cache: cache, retries: 0)
        XCTAssertEqual(try unreachable.download(unreachable.resolve(uri)), first)
        XCTAssertThrowsError(try unreachable.resolve(HubURI.parse("hf://datasets/acme/never-seen/x"))) { error in
            XCTAssert(error.localizedDescription.contains("cannot reach"), error.localizedDescription)
        }
    }

    func testResumeAfterACutFetchesOnlyTheRest() throws {
        let hub = try startHub(["cut_once": ["data/a.jsonl"]])
        let client = hub.client(cache: cache)
        let paths = try client.download(client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/a.jsonl")))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: paths[0])), Self.files["data/a.jsonl"])
        let half = 70_001 / 2
        XCTAssertEqual(try hub.ranges("data/a.jsonl"), ["bytes=\(half)-"], "the retry asks for the rest only")
        XCTAssertEqual(try hub.bytesServed("data/a.jsonl"), 70_001, "every byte served once")
    }

    func testResumeAcrossRunsContinuesThePartialBlob() throws {
        let hub = try startHub(["cut_once": ["data/b.jsonl"]])
        let uri = try HubURI.parse("hf://datasets/acme/corpus/data/b.jsonl")
        // No retries: the cut ends the run, as a lost connection or Ctrl-C would.
        let noRetry = hub.client(cache: cache, retries: 0)
        XCTAssertThrowsError(try noRetry.download(noRetry.resolve(uri)))
        let sha = SHA256.hex(Self.files["data/b.jsonl"]!)
        let partial = cache.path + "/datasets--acme--corpus/blobs/\(sha).incomplete"
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: partial)[.size] as? Int, 25_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache.path + "/datasets--acme--corpus/blobs/\(sha)"))

        let client = hub.client(cache: cache)
        let path = try client.download(client.resolve(uri))[0]
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Self.files["data/b.jsonl"])
        XCTAssertEqual(try hub.ranges("data/b.jsonl"), ["bytes=25000-"])
        XCTAssertEqual(try hub.bytesServed("data/b.jsonl"), 50_000)
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial))
    }

    func testRetriesA503() throws {
        let hub = try startHub(["fail_once": ["data/c.jsonl"]])
        let client = hub.client(cache: cache)
        let path = try client.download(client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/c.jsonl")))[0]
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Self.files["data/c.jsonl"])
        XCTAssertEqual(try hub.requests("resolve"), 2, "503, then the file")
        // Without retries the 503 is the error.
        let other = try startHub(["fail_once": ["data/c.jsonl"]])
        let noRetry = other.client(cache: scratch.appendingPathComponent("cache2"), retries: 0)
        XCTAssertThrowsError(try noRetry.download(noRetry.resolve(HubURI.parse("hf://datasets/acme/corpus/data/c.jsonl")))) { error in
            XCTAssert(error.localizedDescription.contains("HTTP 503"), error.localizedDescription)
        }
    }

    func testACorruptBlobIsRefusedAndNotCached() throws {
        let hub = try startHub(["corrupt": ["data/a.jsonl"]])
        let client = hub.client(cache: cache)
        let set = try client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/a.jsonl"))
        XCTAssertThrowsError(try client.download(set)) { error in
            guard case HubError.checksumMismatch(_, let path, let expected, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "data/a.jsonl")
            XCTAssertEqual(expected, set.files[0].sha256)
            XCTAssert(error.localizedDescription.contains("not cached"), error.localizedDescription)
        }
        let folder = cache.appendingPathComponent("datasets--acme--corpus")
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: folder.path + "/blobs")) ?? []
        XCTAssertEqual(blobs, [], "neither a blob nor a partial file stays")
        XCTAssertNil(client.cache.cachedFile(set.repo, commit: set.commit, path: "data/a.jsonl"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path + "/snapshots/\(set.commit)/data/a.jsonl"))
    }

    func testMissingAndGatedRepositories() throws {
        let hub = try startHub(["gated": ["acme/gated"], "token": "hf_secret", "renamed": ["old/gated": "acme/gated"]])
        let anonymous = hub.client(cache: cache)
        XCTAssertThrowsError(try anonymous.resolve(HubURI.parse("hf://datasets/acme/nothing/x"))) { error in
            guard case HubError.repositoryNotFound = error else { return XCTFail("\(error)") }
            XCTAssert(error.localizedDescription.contains("datasets/acme/nothing"), error.localizedDescription)
            XCTAssert(error.localizedDescription.contains("HF_TOKEN"), error.localizedDescription)
        }
        XCTAssertThrowsError(try anonymous.resolve(HubURI.parse("hf://datasets/acme/gated/data.bin"))) { error in
            guard case HubError.accessDenied(_, let page, 401, false) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(page, hub.endpoint + "/datasets/acme/gated")
            let text = error.localizedDescription
            for hint in ["HF_TOKEN", "hf auth login", "$HF_HOME/token", "accept its terms", page] {
                XCTAssert(text.contains(hint), "missing '\(hint)': \(text)")
            }
            XCTAssertFalse(text.contains("\n"))
        }
        XCTAssertThrowsError(try anonymous.resolve(HubURI.parse("hf://datasets/acme/corpus@v9/x"))) { error in
            guard case HubError.revisionNotFound(_, "v9") = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try anonymous.resolve(HubURI.parse("hf://datasets/acme/corpus/nope.txt"))) { error in
            guard case HubError.entryNotFound(_, _, "nope.txt") = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try anonymous.resolve(HubURI.parse("hf://datasets/acme/corpus/data/*.parquet"))) { error in
            guard case HubError.noMatch = error else { return XCTFail("\(error)") }
        }

        // With the token: the hub host gets it, the CDN never does.
        let authorized = hub.client(cache: cache, token: "hf_secret")
        let path = try authorized.download(authorized.resolve(HubURI.parse("hf://datasets/acme/gated/data.bin")))[0]
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), pseudoRandomBytes(5_000, seed: 9))
        XCTAssertEqual(try hub.authOnHub("data.bin"), true)
        XCTAssertEqual(try hub.authOnCDN(), 0)

        // A renamed repository answers with a redirect on the same host: followed with the token.
        var moved = try authorized.resolve(HubURI.parse("hf://datasets/acme/gated/config.json"))
        moved.repo = HubRepo(.dataset, "old/gated")
        let movedPath = try authorized.download(moved)[0]
        XCTAssertEqual(try String(contentsOfFile: movedPath, encoding: .utf8), "{}")
        XCTAssertEqual(try hub.authOnHub("config.json"), true)
        XCTAssertEqual(try hub.authOnCDN(), 0)
    }

    func testStreamingQueueKeepsFewFilesOnDiskAndDeletesThem() throws {
        let hub = try startHub()
        let client = hub.client(cache: cache)
        let set = try client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/**"))
        XCTAssertEqual(set.files.count, 4)
        let queue = HubFileQueue(client: client, files: set, prefetch: 1, deleteAfterUse: true, progress: nil)
        let blobs = cache.path + "/datasets--acme--corpus/blobs"
        func blobCount() -> Int {
            ((try? FileManager.default.contentsOfDirectory(atPath: blobs)) ?? []).filter { !$0.hasSuffix(".incomplete") }.count
        }
        var seen: [String] = []
        while let path = try queue.next() {
            let file = set.files[seen.count]
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Self.files[file.path])
            usleep(200_000)   // give the prefetching worker time to run ahead
            XCTAssertLessThanOrEqual(blobCount(), 2, "the file being read plus one prefetched")
            queue.done(path)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path), "used file deleted")
            XCTAssertFalse(FileManager.default.fileExists(atPath: blobs + "/" + file.etag))
            seen.append(file.path)
        }
        XCTAssertEqual(seen, set.files.map(\.path))
        XCTAssertEqual(blobCount(), 0)

        // Files that were cached before stay.
        let kept = try client.download(client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/a.jsonl")))[0]
        let again = HubFileQueue(client: client, files: try client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/a.jsonl")),
                                 prefetch: 1, deleteAfterUse: true, progress: nil)
        let p = try XCTUnwrap(try again.next())
        again.done(p)
        XCTAssertNil(try again.next())
        XCTAssertTrue(FileManager.default.fileExists(atPath: kept))
    }

    /// HTTPS through libcurl: verified against the CA bundle given (as CURL_CA_BUNDLE / SSL_CERT_FILE),
    /// refused without it.
    func testHTTPSVerifiesTheCertificate() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { throw XCTSkip("no openssl to make a certificate") }
        let cert = scratch.appendingPathComponent("cert.pem").path, key = scratch.appendingPathComponent("key.pem").path
        let made = try runProcess("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                                                      "-days", "1", "-subj", "/CN=localhost",
                                                      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        guard made.status == 0 else { throw XCTSkip("openssl could not make a certificate: \(made.stderr)") }
        let hub = try FakeHub(tls: (cert, key)) { root in
            try writeRepoFile(root, "datasets/acme/corpus/data/a.jsonl", Self.files["data/a.jsonl"]!)
        }
        XCTAssertTrue(hub.endpoint.hasPrefix("https://"))
        let uri = try HubURI.parse("hf://datasets/acme/corpus/data/a.jsonl")
        let trusted = hub.client(cache: cache, caBundle: cert)
        let path = try trusted.download(trusted.resolve(uri))[0]
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Self.files["data/a.jsonl"])
        XCTAssertEqual(try hub.requests("cdn"), 1, "the LFS file came through the https redirect")

        let untrusted = hub.client(cache: scratch.appendingPathComponent("cache2"), retries: 0)
        XCTAssertThrowsError(try untrusted.resolve(uri)) { error in
            guard case HubError.network = error else { return XCTFail("\(error)") }
        }
        let env = HubEnvironment.current(["HOME": "/h", "REQUESTS_CA_BUNDLE": "/r.pem", "SSL_CERT_FILE": "/s.pem"])
        XCTAssertEqual(env.caBundle, "/r.pem")
    }

    // MARK: - huggingface_hub shares the cache

    func testHuggingFaceHubFindsOurFilesOffline() throws {
        guard let python = referencePython(importing: ["huggingface_hub"]) else { throw XCTSkip("no Python with huggingface_hub") }
        let hub = try startHub()
        let client = hub.client(cache: cache)
        let ours = try client.download(client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/*.jsonl")))
        let info = try client.download(client.resolve(HubURI.parse("hf://datasets/acme/corpus/meta/info.json")))[0]
        let script = """
        import sys
        from huggingface_hub import hf_hub_download
        for name in sys.argv[1:]:
            print(hf_hub_download("acme/corpus", name, repo_type="dataset"))
        """
        var env = hub.environment(cache: cache, offline: true)
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"   // nothing listens there: offline must not matter
        let r = try runProcess(python, ["-c", script, "data/a.jsonl", "data/c.jsonl", "meta/info.json"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.text.split(separator: "\n").map(String.init), [ours[0], ours[2], info])
    }

    func testWeFindFilesHuggingFaceHubDownloaded() throws {
        guard let python = referencePython(importing: ["huggingface_hub"]) else { throw XCTSkip("no Python with huggingface_hub") }
        let hub = try startHub()
        let script = """
        import sys
        from huggingface_hub import hf_hub_download
        for name in sys.argv[1:]:
            print(hf_hub_download("acme/corpus", name, repo_type="dataset"))
        """
        let r = try runProcess(python, ["-c", script, "data/a.jsonl", "data/b.jsonl", "meta/info.json"],
                               environment: hub.environment(cache: cache))
        XCTAssertEqual(r.status, 0, r.stderr)
        let theirs = r.text.split(separator: "\n").map(String.init)
        XCTAssertEqual(theirs.count, 3)
        let files = try hub.requests("resolve"), cdn = try hub.requests("cdn")

        let client = hub.client(cache: cache)
        let ours = try client.download(client.resolve(HubURI.parse("hf://datasets/acme/corpus/data/[ab].jsonl")))
        XCTAssertEqual(ours, Array(theirs[0...1]))
        XCTAssertEqual(try client.download(client.resolve(HubURI.parse("hf://datasets/acme/corpus/meta/info.json"))), [theirs[2]])
        XCTAssertEqual(try hub.requests("resolve"), files, "nothing downloaded again")
        XCTAssertEqual(try hub.requests("cdn"), cdn)
        let offline = hub.client(cache: cache, offline: true)
        XCTAssertEqual(try offline.download(offline.resolve(HubURI.parse("hf://datasets/acme/corpus/data/*.jsonl"))), Array(theirs[0...1]))
    }
}

/// Records progress reports (from download threads).
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [HubProgress] = []

    var record: @Sendable (HubProgress) -> Void { { [self] p in lock.lock(); reports.append(p); lock.unlock() } }
    var last: HubProgress? { lock.lock(); defer { lock.unlock() }; return reports.last }
}

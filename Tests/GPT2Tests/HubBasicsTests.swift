// Hub client pieces without a server: SHA-256 against coreutils' sha256sum (both the SHA-NI and
// the portable rounds), hf:// parsing, globs, and the environment variables huggingface_hub reads.
import Foundation
import GPT2Kernels
import XCTest
@testable import GPT2

final class HubBasicsTests: XCTestCase {
    func testSHA256KnownVectors() {
        for portable in [false, true] {
            gpt2k_sha256_force_portable(portable ? 1 : 0)
            defer { gpt2k_sha256_force_portable(0) }
            XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
            XCTAssertEqual(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                           "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
            XCTAssertEqual(SHA256.hex(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)),
                           "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        }
    }

    /// Random lengths around block boundaries, fed in uneven pieces, against sha256sum.
    func testSHA256MatchesSha256sum() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") else { throw XCTSkip("no sha256sum") }
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [(URL, Data)] = []
        for (i, n) in [1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 4097, 100_003].enumerated() {
            let data = pseudoRandomBytes(n, seed: UInt64(i) + 7)
            let url = dir.appendingPathComponent("f\(i)")
            try data.write(to: url)
            files.append((url, data))
        }
        let r = try runProcess("/usr/bin/sha256sum", files.map { $0.0.path })
        let want = r.text.split(separator: "\n").map { String($0.prefix(64)) }
        XCTAssertEqual(want.count, files.count)
        for portable in [false, true] {
            gpt2k_sha256_force_portable(portable ? 1 : 0)
            defer { gpt2k_sha256_force_portable(0) }
            for (k, (_, data)) in files.enumerated() {
                var h = SHA256()
                var offset = 0, step = 1
                while offset < data.count {   // pieces of 1, 2, 3 ... bytes cross every buffer boundary
                    let end = min(data.count, offset + step)
                    h.update(data[offset..<end])
                    offset = end
                    step = step % 97 + 1
                }
                XCTAssertEqual(h.finalize(), want[k], "length \(data.count), portable \(portable)")
            }
        }
    }

    func testParsesHubLocations() throws {
        var u = try HubURI.parse("hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet")
        XCTAssertEqual(u.repo, HubRepo(.dataset, "HuggingFaceFW/fineweb-edu"))
        XCTAssertEqual(u.revision, "main")
        XCTAssertEqual(u.path, "sample/10BT/*.parquet")
        XCTAssertEqual(u.repo.cacheFolderName, "datasets--HuggingFaceFW--fineweb-edu")

        u = try HubURI.parse("hf://openai-community/gpt2")
        XCTAssertEqual(u.repo, HubRepo(.model, "openai-community/gpt2"))
        XCTAssertEqual(u.path, "")
        XCTAssertEqual(u.repo.cacheFolderName, "models--openai-community--gpt2")

        u = try HubURI.parse("hf://models/acme/tiny@v1.0/sub/dir/")
        XCTAssertEqual(u.repo, HubRepo(.model, "acme/tiny"))
        XCTAssertEqual(u.revision, "v1.0")
        XCTAssertEqual(u.path, "sub/dir")

        u = try HubURI.parse("hf://gpt2@607a30d783dfa663caf39e06633721c8d4cfcd7e")
        XCTAssertEqual(u.repo.id, "gpt2")
        XCTAssertEqual(u.revision, "607a30d783dfa663caf39e06633721c8d4cfcd7e")

        u = try HubURI.parse("hf://datasets/Skylion007/openwebtext@refs/convert/parquet/plain_text/train/*.parquet")
        XCTAssertEqual(u.revision, "refs/convert/parquet")
        XCTAssertEqual(u.path, "plain_text/train/*.parquet")
        u = try HubURI.parse("hf://datasets/Skylion007/openwebtext@refs%2Fconvert%2Fparquet/x.parquet")
        XCTAssertEqual(u.revision, "refs/convert/parquet")
        XCTAssertEqual(u.path, "x.parquet")
        u = try HubURI.parse("hf://datasets/a/b@refs/pr/12/f")
        XCTAssertEqual(u.revision, "refs/pr/12")
        XCTAssertEqual(u.path, "f")
        XCTAssertEqual(u.description, "hf://datasets/a/b@refs%2Fpr%2F12/f")

        for bad in ["hf://", "hf://datasets/onlyowner", "hf://spaces/a/b", "hf://a/b@", "hf://a/../x", "hf://a/b/../../etc",
                    "hf://a b/c", "https://huggingface.co/gpt2", "hf://datasets/a/b//x"] {
            XCTAssertThrowsError(try HubURI.parse(bad), bad) { error in
                XCTAssert(error.localizedDescription.contains(bad), error.localizedDescription)
            }
        }
    }

    func testGlobs() {
        let g = HubGlob("sample/10BT/*.parquet")
        XCTAssertEqual(g.literalPrefix, "sample/10BT")
        XCTAssertFalse(g.needsRecursiveListing)
        XCTAssertTrue(g.matches("sample/10BT/000_00000.parquet"))
        XCTAssertFalse(g.matches("sample/10BT/sub/000_00000.parquet"), "* stays in one segment")
        XCTAssertFalse(g.matches("sample/100BT/000_00000.parquet"))
        XCTAssertFalse(g.matches("sample/10BT/000_00000.parquet.lock"))

        let deep = HubGlob("data/**/*.json")
        XCTAssertEqual(deep.literalPrefix, "data")
        XCTAssertTrue(deep.needsRecursiveListing)
        XCTAssertTrue(deep.matches("data/a.json"))
        XCTAssertTrue(deep.matches("data/x/y/a.json"))
        XCTAssertFalse(deep.matches("other/a.json"))

        XCTAssertTrue(HubGlob("plain_text/train-0000[0-2]-of-00080.parquet").matches("plain_text/train-00002-of-00080.parquet"))
        XCTAssertFalse(HubGlob("plain_text/train-0000[0-2]-of-00080.parquet").matches("plain_text/train-00003-of-00080.parquet"))
        XCTAssertTrue(HubGlob("f?.txt").matches("f1.txt"))
        XCTAssertFalse(HubGlob("f[!1].txt").matches("f1.txt"))
        XCTAssertEqual(HubGlob("*.txt").literalPrefix, "")
        XCTAssertTrue(HubGlob.isPattern("a/*.txt"))
        XCTAssertFalse(HubGlob.isPattern("a/b.txt"))
    }

    func testEnvironmentAsHuggingFaceHubReadsIt() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var e = HubEnvironment.current(["HOME": "/home/u"])
        XCTAssertEqual(e.endpoint, "https://huggingface.co")
        XCTAssertEqual(e.cacheDirectory, "/home/u/.cache/huggingface/hub")
        XCTAssertFalse(e.offline)
        XCTAssertEqual(e.timeout, 10)

        e = HubEnvironment.current(["HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"])
        XCTAssertEqual(e.cacheDirectory, "/xdg/huggingface/hub")
        e = HubEnvironment.current(["HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "HF_HOME": dir.path])
        XCTAssertEqual(e.cacheDirectory, dir.path + "/hub")
        XCTAssertNil(e.token)
        try Data("hf_fromfile\n".utf8).write(to: dir.appendingPathComponent("token"))
        e = HubEnvironment.current(["HOME": "/home/u", "HF_HOME": dir.path, "HF_HUB_CACHE": "/c", "HF_ENDPOINT": "http://h:1/",
                                    "HF_HUB_OFFLINE": "yes", "HF_HUB_DOWNLOAD_TIMEOUT": "2.5"])
        XCTAssertEqual(e.cacheDirectory, "/c")
        XCTAssertEqual(e.endpoint, "http://h:1")
        XCTAssertEqual(e.token, "hf_fromfile")
        XCTAssertEqual(e.tokenSource, dir.path + "/token")
        XCTAssertTrue(e.offline)
        XCTAssertEqual(e.timeout, 3)
        e = HubEnvironment.current(["HOME": "/home/u", "HF_HOME": dir.path, "HF_TOKEN": "hf_env", "HUGGINGFACE_HUB_CACHE": "/legacy",
                                    "TRANSFORMERS_OFFLINE": "1"])
        XCTAssertEqual(e.token, "hf_env")
        XCTAssertEqual(e.cacheDirectory, "/legacy")
        XCTAssertTrue(e.offline)
        XCTAssertFalse(HubEnvironment.current(["HOME": "/h", "HF_HUB_OFFLINE": "0"]).offline)
    }

    func testLinkHeaderAndETagParsing() {
        XCTAssertEqual(nextLink("<https://h/api/x?cursor=abc>; rel=\"next\""), "https://h/api/x?cursor=abc")
        XCTAssertEqual(nextLink("<https://h/p1>; rel=\"prev\", <https://h/p3>; rel=\"next\""), "https://h/p3")
        XCTAssertNil(nextLink("<https://h/p1>; rel=\"prev\""))
        XCTAssertEqual(normalizedETag("W/\"ABC\""), "abc")
        XCTAssertEqual(normalizedETag("\"0123\""), "0123")
        XCTAssertEqual(contentRangeStart("bytes 100-199/200"), 100)
        XCTAssertNil(contentRangeStart("bytes */200"))
    }
}

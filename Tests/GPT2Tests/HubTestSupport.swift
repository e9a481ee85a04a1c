// A fake Hugging Face hub for the Hub* tests: Tests/reference/fake_hub.py (Python standard library)
// started on 127.0.0.1 with a free port, serving repositories laid out in a temporary folder, and
// stopped when the test ends (it also exits by itself after two minutes). Never the real hub.
import Foundation
import XCTest
@testable import GPT2

final class FakeHub {
    let folder: URL
    let repos: URL
    private let process: Process
    private let stateFile: URL
    let port: Int

    let scheme: String
    var endpoint: String { "\(scheme)://127.0.0.1:\(port)" }

    /// Starts the server over the repositories written by `populate` into `repos`
    /// (repos/models/OWNER/NAME/..., repos/datasets/OWNER/NAME/...); HTTPS with `tls` (certificate
    /// and key PEM files).
    init(config: [String: Any] = [:], tls: (cert: String, key: String)? = nil, populate: (URL) throws -> Void) throws {
        guard let python = referencePython(importing: ["json", "http.server"]) else { throw XCTSkip("no python3 for the fake hub") }
        folder = try TestPaths.temporaryDirectory()
        repos = folder.appendingPathComponent("repos")
        try FileManager.default.createDirectory(at: repos, withIntermediateDirectories: true)
        try populate(repos)
        let configFile = folder.appendingPathComponent("config.json")
        try JSONSerialization.data(withJSONObject: config).write(to: configFile)
        stateFile = folder.appendingPathComponent("state.json")
        process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [TestPaths.reference.appendingPathComponent("fake_hub.py").path, "--root", repos.path,
                             "--state", stateFile.path, "--config", configFile.path, "--lifetime", "120"]
            + (tls.map { ["--tls", $0.cert, $0.key] } ?? [])
        scheme = tls == nil ? "http" : "https"
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var found = 0
        for _ in 0..<200 {   // up to 20 s for Python to start
            if let data = try? Data(contentsOf: stateFile),
               let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let p = obj["port"] as? Int, p > 0 {
                found = p
                break
            }
            usleep(100_000)
        }
        guard found > 0 else {
            process.terminate()
            throw XCTSkip("the fake hub did not start")
        }
        port = found
    }

    deinit { stop() }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// The server's counters (see fake_hub.py).
    func stats() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: stateFile)) as! [String: Any]
    }

    func requests(_ kind: String) throws -> Int { ((try stats()["requests"] as? [String: Int]) ?? [:])[kind] ?? 0 }
    func bytesServed(_ path: String) throws -> Int { ((try stats()["bytes"] as? [String: Int]) ?? [:])[path] ?? 0 }
    func ranges(_ path: String) throws -> [String] { ((try stats()["ranges"] as? [String: [String]]) ?? [:])[path] ?? [] }
    func authOnCDN() throws -> Int { try stats()["auth_on_cdn"] as? Int ?? -1 }
    func authOnHub(_ path: String) throws -> Bool? { (try stats()["auth_on_hub"] as? [String: Bool])?[path] }

    /// A client of this server with its own cache folder.
    func client(cache: URL, token: String? = nil, offline: Bool = false, retries: Int = 3, caBundle: String? = nil) -> HubClient {
        HubClient(environment: HubEnvironment(endpoint: endpoint, cacheDirectory: cache.path, token: token,
                                              tokenSource: token == nil ? nil : "HF_TOKEN", offline: offline, timeout: 10,
                                              caBundle: caBundle),
                  retryPolicy: HubRetryPolicy(retries: retries, initialDelay: 0.05))
    }

    /// The environment variables that point `gpt` (or huggingface_hub) at this server and `cache`.
    func environment(cache: URL, offline: Bool = false) -> [String: String] {
        ["HF_ENDPOINT": endpoint, "HF_HUB_CACHE": cache.path, "HF_HOME": folder.appendingPathComponent("hf_home").path,
         "HF_TOKEN": "", "HF_HUB_OFFLINE": offline ? "1" : "0", "HF_HUB_DISABLE_TELEMETRY": "1",
         "HF_HUB_DISABLE_XET": "1"]
    }
}

/// Writes `contents` at `root/relative`, creating folders.
func writeRepoFile(_ root: URL, _ relative: String, _ contents: Data) throws {
    let url = root.appendingPathComponent(relative)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try contents.write(to: url)
}

/// Deterministic pseudo-random bytes.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> Data {
    var rng = SplitMix(seed)
    return Data((0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 32) })
}

// The environment variables huggingface_hub reads, read here in one place with its defaults, so
// our cache and token are the ones the Python tools use:
//   HF_ENDPOINT (https://huggingface.co), HF_HOME ($XDG_CACHE_HOME/huggingface, else
//   ~/.cache/huggingface), HF_HUB_CACHE (legacy HUGGINGFACE_HUB_CACHE; default $HF_HOME/hub),
//   HF_TOKEN (else the file HF_TOKEN_PATH, default $HF_HOME/token), HF_HUB_OFFLINE
//   (or TRANSFORMERS_OFFLINE; 1/ON/YES/TRUE), HF_HUB_DOWNLOAD_TIMEOUT (seconds, default 10);
//   and the CA bundle Python's HTTP clients honour: CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, SSL_CERT_FILE.
// (GPT2_LIBCURL, the libcurl to load, is read with the other GPT2_* variables in Settings.)
import Foundation

/// Hub settings taken from the environment (see the file header for the variables).
public struct HubEnvironment: Sendable, Equatable {
    /// The hub's base URL, without a trailing slash.
    public var endpoint: String
    /// The cache root (`$HF_HUB_CACHE`).
    public var cacheDirectory: String
    /// The access token, if any.
    public var token: String?
    /// Where the token came from ("HF_TOKEN" or the token file's path), for messages.
    public var tokenSource: String?
    /// Never use the network; the cache alone.
    public var offline: Bool
    /// Seconds to connect, and the longest stall (no byte received) before a retry.
    public var timeout: Int
    /// A PEM file of certificate authorities to trust instead of the system's (a TLS-inspecting
    /// proxy, a private mirror).
    public var caBundle: String?

    public init(endpoint: String = "https://huggingface.co", cacheDirectory: String, token: String? = nil,
                tokenSource: String? = nil, offline: Bool = false, timeout: Int = 10, caBundle: String? = nil) {
        var e = endpoint
        while e.hasSuffix("/") { e.removeLast() }
        self.endpoint = e
        self.cacheDirectory = cacheDirectory
        self.token = token
        self.tokenSource = tokenSource
        self.offline = offline
        self.timeout = timeout
        self.caBundle = caBundle
    }

    /// The settings from `environment` (default: this process's), as huggingface_hub computes them.
    public static func current(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> HubEnvironment {
        func value(_ name: String) -> String? {
            guard let v = environment[name], !v.isEmpty else { return nil }
            return v
        }
        func isTrue(_ name: String) -> Bool {
            guard let v = value(name) else { return false }
            return ["1", "ON", "YES", "TRUE"].contains(v.uppercased())
        }
        func expand(_ path: String) -> String {
            path.hasPrefix("~") ? NSString(string: path).expandingTildeInPath : path
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let hfHome = expand(value("HF_HOME") ?? ((value("XDG_CACHE_HOME") ?? home + "/.cache") + "/huggingface"))
        let cache = expand(value("HF_HUB_CACHE") ?? value("HUGGINGFACE_HUB_CACHE") ?? hfHome + "/hub")
        var token: String?, source: String?
        if let t = value("HF_TOKEN")?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty {
            token = t
            source = "HF_TOKEN"
        } else {
            let file = expand(value("HF_TOKEN_PATH") ?? hfHome + "/token")
            if let data = FileManager.default.contents(atPath: file) {
                let t = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if !t.isEmpty { token = t; source = file }
            }
        }
        let timeout = value("HF_HUB_DOWNLOAD_TIMEOUT").flatMap { Double($0) }.map { max(1, Int($0.rounded(.up))) } ?? 10
        return HubEnvironment(endpoint: value("HF_ENDPOINT") ?? "https://huggingface.co", cacheDirectory: cache,
                              token: token, tokenSource: source,
                              offline: isTrue("HF_HUB_OFFLINE") || isTrue("TRANSFORMERS_OFFLINE"), timeout: timeout,
                              caBundle: value("CURL_CA_BUNDLE") ?? value("REQUESTS_CA_BUNDLE") ?? value("SSL_CERT_FILE"))
    }

}

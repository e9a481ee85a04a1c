// Errors of the hub client: each names the repository (and file) and says what to do.
import Foundation

/// Errors from `HubClient` and the hub cache.
public enum HubError: LocalizedError, Equatable {
    /// libcurl could not be loaded.
    case httpLibraryMissing(detail: String)
    /// An `hf://` location that cannot be parsed.
    case invalidURI(uri: String, reason: String)
    /// The repository does not exist, or is private and no (valid) token was sent.
    case repositoryNotFound(repo: String, page: String, hasToken: Bool)
    /// A gated or private repository refused the request (401/403).
    case accessDenied(repo: String, page: String, status: Int, hasToken: Bool)
    /// The token was rejected.
    case invalidToken(source: String)
    /// The branch, tag or commit does not exist.
    case revisionNotFound(repo: String, revision: String)
    /// A file or folder does not exist at that revision.
    case entryNotFound(repo: String, revision: String, path: String)
    /// A glob matched no file.
    case noMatch(repo: String, revision: String, pattern: String)
    /// An HTTP status we do not handle, after any retries.
    case http(status: Int, url: String, detail: String)
    /// The network failed, after any retries.
    case network(url: String, detail: String)
    /// The server's answer is not what the hub API returns.
    case badResponse(url: String, detail: String)
    /// A downloaded file's sha256 differs from the one the hub lists; nothing was cached.
    case checksumMismatch(repo: String, path: String, expected: String, actual: String)
    /// A downloaded file's size differs from the listing; nothing was cached.
    case sizeMismatch(repo: String, path: String, expected: Int64, actual: Int64)
    /// HF_HUB_OFFLINE is set and the cache lacks what was asked for.
    case notCached(repo: String, revision: String, detail: String)
    /// A cache file or folder could not be written or read.
    case cache(path: String, reason: String)
    /// A model repository without the files a GPT-2 needs.
    case modelFilesMissing(repo: String, detail: String)
    /// Stopped by the caller.
    case cancelled

    static let loginHint = "log in: set HF_TOKEN=hf_... or run `hf auth login` (`huggingface-cli login` in older versions), which writes $HF_HOME/token"

    public var errorDescription: String? {
        switch self {
        case .httpLibraryMissing(let detail):
            return "downloading from the Hugging Face hub needs libcurl, which could not be loaded (\(detail)); install it (Debian/Ubuntu: apt-get install libcurl4), or set GPT2_LIBCURL to its path"
        case .invalidURI(let uri, let reason):
            return "bad hub location '\(uri)': \(reason) (expected hf://datasets/OWNER/NAME[@REVISION]/PATH_OR_GLOB or hf://OWNER/NAME[@REVISION])"
        case .repositoryNotFound(let repo, let page, let hasToken):
            return "repository '\(repo)' not found on the hub (\(page)); check the name"
                + (hasToken ? ", and that your token can read it if it is private" : "; if it is private or gated, " + Self.loginHint)
        case .accessDenied(let repo, let page, let status, let hasToken):
            return "access to '\(repo)' is restricted (HTTP \(status): gated or private); "
                + (hasToken ? "accept its terms at \(page) with the account of your token (or use a token that can read it)"
                            : Self.loginHint + ", and accept its terms at \(page)")
        case .invalidToken(let source):
            return "the hub rejected the token from \(source); create a new one at https://huggingface.co/settings/tokens and set HF_TOKEN (or run `hf auth login`)"
        case .revisionNotFound(let repo, let revision):
            return "revision '\(revision)' not found in '\(repo)'; give an existing branch, tag or commit after '@'"
        case .entryNotFound(let repo, let revision, let path):
            return "'\(path)' not found in '\(repo)' at revision '\(revision)'"
        case .noMatch(let repo, let revision, let pattern):
            return "no file of '\(repo)' at revision '\(revision)' matches '\(pattern)'"
        case .http(let status, let url, let detail):
            return "HTTP \(status) from \(url)" + (detail.isEmpty ? "" : ": \(detail)")
        case .network(let url, let detail):
            return "cannot reach \(url): \(detail); check the connection (or set HF_HUB_OFFLINE=1 to use the cache only)"
        case .badResponse(let url, let detail):
            return "unexpected answer from \(url): \(detail); is HF_ENDPOINT a Hugging Face hub?"
        case .checksumMismatch(let repo, let path, let expected, let actual):
            return "'\(path)' from '\(repo)' is corrupt: sha256 \(actual), the hub lists \(expected); it was not cached. Run again to download it anew"
        case .sizeMismatch(let repo, let path, let expected, let actual):
            return "'\(path)' from '\(repo)' has \(actual) bytes, the hub lists \(expected); it was not cached. Run again to download it anew"
        case .notCached(let repo, let revision, let detail):
            return "HF_HUB_OFFLINE is set and '\(repo)' at revision '\(revision)' is not in the cache: \(detail); unset HF_HUB_OFFLINE to download it"
        case .cache(let path, let reason):
            return "hub cache: cannot use '\(path)': \(reason) (set HF_HUB_CACHE to a writable folder)"
        case .modelFilesMissing(let repo, let detail):
            return "'\(repo)' is not a GPT-2 model gpt can load: \(detail)"
        case .cancelled:
            return "download cancelled"
        }
    }
}

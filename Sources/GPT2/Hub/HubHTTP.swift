// HTTP for the hub client: redirects followed by hand (the token goes to the hub's own host only,
// never to a CDN it redirects to), bounded retries with exponential backoff on 429, 5xx, timeouts
// and cut connections, and the hub's error answers (X-Error-Code) turned into `HubError`s.
// Reference: huggingface_hub utils/_http.py (http_backoff, hf_raise_for_status).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A failure worth another attempt; `retryAfter` is the server's Retry-After, in seconds.
struct RetryableFailure: Error {
    var error: HubError
    var retryAfter: Double?
}

/// Retry policy: attempts after the first, and the first backoff delay (doubled each time, at most 8 s).
public struct HubRetryPolicy: Sendable {
    public var retries: Int
    public var initialDelay: Double

    public init(retries: Int = 5, initialDelay: Double = 1) {
        self.retries = retries
        self.initialDelay = initialDelay
    }
}

/// The parts of a URL that decide where a token may go.
struct URLOrigin: Equatable {
    var scheme: String
    var host: String
    var port: Int

    init?(_ url: String) {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased(), let host = c.host?.lowercased(),
              scheme == "http" || scheme == "https" else { return nil }
        self.scheme = scheme
        self.host = host
        port = c.port ?? (scheme == "https" ? 443 : 80)
    }
}

/// HTTP requests against one hub endpoint.
final class HubHTTP: Sendable {
    let environment: HubEnvironment
    let policy: HubRetryPolicy
    let origin: URLOrigin?

    init(environment: HubEnvironment, policy: HubRetryPolicy) {
        self.environment = environment
        self.policy = policy
        origin = URLOrigin(environment.endpoint)
    }

    /// Whether `url` is on the hub's host (the only place the token is sent).
    func isHubHost(_ url: String) -> Bool { origin != nil && URLOrigin(url) == origin }

    func authorization(for url: String) -> [String] {
        guard let token = environment.token, isHubHost(url) else { return [] }
        return ["Authorization: Bearer \(token)"]
    }

    /// Runs `attempt` until it succeeds, throws a non-retryable error, or the retries are spent
    /// (then the last failure's error is thrown). Sleeps 1, 2, 4, 8, 8 ... s (× initialDelay)
    /// between attempts, or the server's Retry-After (at most 60 s).
    func retrying<T>(cancelled: () -> Bool = { false }, _ attempt: () throws -> T) throws -> T {
        var failures = 0
        while true {
            do {
                return try attempt()
            } catch let failure as RetryableFailure {
                if failures >= policy.retries || cancelled() { throw failure.error }
                let backoff = policy.initialDelay * Double(1 << min(failures, 3))
                let delay = failure.retryAfter.map { min($0, 60) } ?? backoff
                failures += 1
                var remaining = delay
                while remaining > 0 && !cancelled() {   // sleep in slices so cancellation is prompt
                    let slice = min(remaining, 0.1)
                    usleep(UInt32(slice * 1e6))
                    remaining -= slice
                }
            }
        }
    }

    /// One GET that follows redirects: to the same host with the token (a renamed repository),
    /// to another host without it (the CDN). `sink` receives a 2xx body; other bodies are returned.
    /// - Returns: the final response, its collected body, the first response (on the hub, which
    ///   carries X-Repo-Commit / X-Linked-Etag / X-Linked-Size for redirected files), and the final URL.
    func get(_ session: CurlSession, url start: String, rangeStart: Int64 = 0, acceptCompressed: Bool = false,
             sink: HTTPBodySink? = nil) throws -> (head: HTTPResponseHead, body: [UInt8], first: HTTPResponseHead, url: String) {
        var url = start
        var first: HTTPResponseHead?
        for _ in 0..<10 {
            let request = HTTPRequest(url: url, headers: authorization(for: url), rangeStart: rangeStart,
                                      acceptCompressed: acceptCompressed, connectTimeout: environment.timeout,
                                      stallTimeout: environment.timeout, caBundle: environment.caBundle)
            let head: HTTPResponseHead, body: [UInt8]
            do {
                (head, body) = try session.perform(request, sink: sink)
            } catch {
                let detail = error.message
                if error.isTransient { throw RetryableFailure(error: .network(url: error.url, detail: detail)) }
                throw HubError.network(url: error.url, detail: detail)
            }
            if first == nil { first = head }
            guard head.isRedirect, let location = head.header("location") else { return (head, body, first ?? head, url) }
            guard let next = URL(string: location, relativeTo: URL(string: url))?.absoluteURL.absoluteString,
                  URLOrigin(next) != nil else {
                throw HubError.badResponse(url: redactedURL(url), detail: "redirect to an unusable location '\(redactedURL(location))'")
            }
            url = next
        }
        throw HubError.badResponse(url: redactedURL(start), detail: "more than 10 redirects")
    }

    /// The error for a non-2xx answer: `RetryableFailure` for 429/5xx, else a `HubError`.
    /// - Parameters:
    ///   - path: the file or folder asked for, when the request was about one.
    func failure(_ head: HTTPResponseHead, body: [UInt8], url: String, repo: HubRepo, revision: String, path: String?) -> Error {
        let status = head.status
        let detail = head.header("x-error-message") ?? String(decoding: body.prefix(300), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if status == 429 || (500...599).contains(status) {
            let after = head.header("retry-after").flatMap(Double.init)
            return RetryableFailure(error: .http(status: status, url: redactedURL(url), detail: detail), retryAfter: after)
        }
        // A CDN's 4xx (an expired signed URL, say) says nothing about the repository.
        if !isHubHost(url) { return HubError.http(status: status, url: redactedURL(url), detail: detail) }
        let page = environment.endpoint + "/" + repo.description
        let hasToken = environment.token != nil
        switch head.header("x-error-code") {
        case "RepoNotFound": return HubError.repositoryNotFound(repo: repo.description, page: page, hasToken: hasToken)
        case "GatedRepo": return HubError.accessDenied(repo: repo.description, page: page, status: status, hasToken: hasToken)
        case "RevisionNotFound": return HubError.revisionNotFound(repo: repo.description, revision: revision)
        case "EntryNotFound": return HubError.entryNotFound(repo: repo.description, revision: revision, path: path ?? "")
        default: break
        }
        switch status {
        case 401 where head.header("x-error-message") == "Invalid credentials in Authorization header":
            return HubError.invalidToken(source: environment.tokenSource ?? "HF_TOKEN")
        case 401: return HubError.repositoryNotFound(repo: repo.description, page: page, hasToken: hasToken)
        case 403: return HubError.accessDenied(repo: repo.description, page: page, status: status, hasToken: hasToken)
        case 404 where path != nil: return HubError.entryNotFound(repo: repo.description, revision: revision, path: path!)
        case 404: return HubError.repositoryNotFound(repo: repo.description, page: page, hasToken: hasToken)
        default: return HubError.http(status: status, url: redactedURL(url), detail: detail)
        }
    }
}

// The hub client: resolves a revision to its commit, lists a repository's files (the tree API,
// paginated by Link headers), matches them against a path or glob, and hands the download to
// `HubFileQueue`. With HF_HUB_OFFLINE (or when the network is unreachable and the cache knows the
// revision) everything comes from the cache. API: https://huggingface.co/docs/hub/api
import Foundation

/// A file of a repository, as the tree API lists it.
public struct HubFile: Sendable, Equatable {
    /// Path in the repository.
    public var path: String
    /// Size in bytes.
    public var size: Int64
    /// The git blob id (sha1), "" when only the cache was consulted.
    public var blobID: String
    /// The sha256 of the contents, for LFS files.
    public var sha256: String?

    public init(path: String, size: Int64, blobID: String, sha256: String? = nil) {
        self.path = path
        self.size = size
        self.blobID = blobID
        self.sha256 = sha256
    }

    /// The blob's name in the cache (huggingface_hub's etag: X-Linked-Etag for LFS, else ETag).
    public var etag: String { sha256 ?? blobID }
}

/// Files of one repository at one commit.
public struct HubFileSet: Sendable {
    public var repo: HubRepo
    /// The revision asked for (branch, tag or commit).
    public var revision: String
    /// The commit it resolved to.
    public var commit: String
    /// Matching files, sorted by path.
    public var files: [HubFile]
    /// True when the listing came from the cache (offline): files are all present, with no sha256 to check.
    public var fromCache: Bool
}

/// Downloads from the Hugging Face hub into the shared cache.
public final class HubClient: Sendable {
    public let environment: HubEnvironment
    public let cache: HubCache
    let http: HubHTTP
    /// Files downloaded at once by `download` (huggingface_hub's snapshot_download: 8).
    public let parallelDownloads: Int

    /// - Parameters:
    ///   - environment: endpoint, cache, token, offline flag (default: from the environment variables).
    ///   - retryPolicy: retries on 429, 5xx, timeouts and cut connections.
    ///   - parallelDownloads: files fetched at once.
    public init(environment: HubEnvironment = .current(), retryPolicy: HubRetryPolicy = HubRetryPolicy(),
                parallelDownloads: Int = 8) {
        self.environment = environment
        cache = HubCache(root: environment.cacheDirectory)
        http = HubHTTP(environment: environment, policy: retryPolicy)
        self.parallelDownloads = max(1, parallelDownloads)
    }

    // MARK: - Resolving

    /// The files `uri.path` names at `uri.revision`: one file, every file under a folder, or the
    /// files matching a glob (`*.parquet`, `sample/10BT/*`, `**/*.json`); "" is the whole repository.
    /// - Throws: `HubError` (not found, access denied, no match, network, not cached when offline).
    public func resolve(_ uri: HubURI) throws -> HubFileSet {
        if environment.offline { return try resolveFromCache(uri) }
        let session = try CurlSession()
        guard let commit = try onlineCommit(session, uri) else { return try resolveFromCache(uri) }
        let files = try listMatching(session, uri.repo, commit: commit, revision: uri.revision, pattern: uri.path)
        return HubFileSet(repo: uri.repo, revision: uri.revision, commit: commit, files: files, fromCache: false)
    }

    /// The commit of `uri.revision` from the hub (recorded in refs/), or nil when the network is
    /// unreachable but the cache knows the revision (huggingface_hub then serves the cache too).
    func onlineCommit(_ session: CurlSession, _ uri: HubURI) throws -> String? {
        let commit: String
        do {
            commit = try resolveCommit(session, uri.repo, revision: uri.revision)
        } catch HubError.network(let url, let detail) {
            if cache.commit(for: uri.repo, revision: uri.revision) != nil { return nil }
            throw HubError.network(url: url, detail: detail)
        }
        try cache.makeFolder(cache.repoFolder(uri.repo))
        cache.tagRoot()
        try cache.writeRef(uri.repo, revision: uri.revision, commit: commit)
        return commit
    }

    /// The same answer as `resolve`, from the cache alone.
    func resolveFromCache(_ uri: HubURI) throws(HubError) -> HubFileSet {
        let repo = uri.repo
        guard let commit = cache.commit(for: repo, revision: uri.revision) else {
            throw .notCached(repo: repo.description, revision: uri.revision, detail: "no refs/\(uri.revision) in \(cache.repoFolder(repo))")
        }
        let pattern = uri.path
        var paths: [String]
        if HubGlob.isPattern(pattern) {
            let glob = HubGlob(pattern)
            paths = cache.snapshotFiles(repo, commit: commit, under: glob.literalPrefix).filter(glob.matches)
        } else if !pattern.isEmpty, cache.cachedFile(repo, commit: commit, path: pattern) != nil {
            paths = [pattern]
        } else {
            paths = cache.snapshotFiles(repo, commit: commit, under: pattern)
        }
        guard !paths.isEmpty else {
            throw .notCached(repo: repo.description, revision: uri.revision,
                             detail: "no cached file matches '\(pattern.isEmpty ? "*" : pattern)' in snapshot \(commit)")
        }
        let files = paths.map { p -> HubFile in
            var st = stat()
            _ = stat(cache.pointerPath(repo, commit: commit, path: p), &st)
            return HubFile(path: p, size: Int64(st.st_size), blobID: "")
        }
        return HubFileSet(repo: repo, revision: uri.revision, commit: commit, files: files, fromCache: true)
    }

    /// GET /api/{models|datasets}/{id}/revision/{revision} → "sha".
    func resolveCommit(_ session: CurlSession, _ repo: HubRepo, revision: String) throws -> String {
        let url = environment.endpoint + "/api/\(repo.apiSegment)/\(repo.id)/revision/" + percentEncoded(revision, keepSlash: false)
        let body = try getJSON(session, url, repo: repo, revision: revision, path: nil).body
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let sha = obj["sha"] as? String, HubCache.isCommitHash(sha) else {
            throw HubError.badResponse(url: url, detail: "no commit 'sha' in the revision info")
        }
        return sha
    }

    /// A 2xx JSON body and its headers, with retries.
    func getJSON(_ session: CurlSession, _ url: String, repo: HubRepo, revision: String,
                 path: String?) throws -> (body: [UInt8], head: HTTPResponseHead) {
        try http.retrying {
            let (head, body, _, _) = try http.get(session, url: url, acceptCompressed: true)
            guard (200..<300).contains(head.status) else {
                throw http.failure(head, body: body, url: url, repo: repo, revision: revision, path: path)
            }
            return (body, head)
        }
    }

    private struct TreeItem: Decodable {
        struct LFS: Decodable { var oid: String; var size: Int64 }
        var type: String
        var path: String
        var oid: String?
        var size: Int64?
        var lfs: LFS?
    }

    /// Entries (files and folders) under `folder`, following the pagination.
    func listTree(_ session: CurlSession, _ repo: HubRepo, commit: String, revision: String, folder: String,
                  recursive: Bool) throws -> (files: [HubFile], folders: [String]) {
        var url: String? = environment.endpoint + "/api/\(repo.apiSegment)/\(repo.id)/tree/" + percentEncoded(commit, keepSlash: false)
            + (folder.isEmpty ? "" : "/" + percentEncoded(folder, keepSlash: false))
            + "?recursive=\(recursive)&expand=false"
        var files: [HubFile] = [], folders: [String] = []
        var pages = 0
        while let pageURL = url {
            pages += 1
            guard pages <= 100_000 else { throw HubError.badResponse(url: pageURL, detail: "endless pagination") }
            let (body, head) = try getJSON(session, pageURL, repo: repo, revision: revision, path: folder.isEmpty ? nil : folder)
            let next = head.header("link").flatMap(nextLink)
            let items: [TreeItem]
            do { items = try JSONDecoder().decode([TreeItem].self, from: Data(body)) } catch {
                throw HubError.badResponse(url: pageURL, detail: "the tree listing is not a list of entries")
            }
            for item in items {
                if item.type == "directory" { folders.append(item.path); continue }
                guard item.type == "file", let size = item.size, let oid = item.oid else { continue }
                guard isSafeRelativePath(item.path) else {
                    throw HubError.badResponse(url: pageURL, detail: "the listing has an unsafe path '\(item.path)'")
                }
                let sha = item.lfs.map { $0.oid.lowercased() }
                if let sha, !(sha.utf8.count == 64 && sha.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }) {
                    throw HubError.badResponse(url: pageURL, detail: "LFS oid '\(sha)' of '\(item.path)' is not a sha256")
                }
                guard oid.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }), !oid.isEmpty else {
                    throw HubError.badResponse(url: pageURL, detail: "oid '\(oid)' of '\(item.path)' is not hexadecimal")
                }
                files.append(HubFile(path: item.path, size: item.lfs?.size ?? size, blobID: oid, sha256: sha))
            }
            url = next.map { URL(string: $0, relativeTo: URL(string: pageURL))?.absoluteURL.absoluteString ?? $0 }
        }
        return (files, folders)
    }

    /// The files `pattern` names (see `resolve`), sorted.
    func listMatching(_ session: CurlSession, _ repo: HubRepo, commit: String, revision: String, pattern: String) throws -> [HubFile] {
        func list(_ folder: String, recursive: Bool) throws -> (files: [HubFile], folders: [String]) {
            try listTree(session, repo, commit: commit, revision: revision, folder: folder, recursive: recursive)
        }
        var files: [HubFile]
        if pattern.isEmpty {
            files = try list("", recursive: true).files
        } else if HubGlob.isPattern(pattern) {
            let glob = HubGlob(pattern)
            do {
                files = try list(glob.literalPrefix, recursive: glob.needsRecursiveListing).files.filter { glob.matches($0.path) }
            } catch HubError.entryNotFound {
                files = []
            }
            if files.isEmpty { throw HubError.noMatch(repo: repo.description, revision: revision, pattern: pattern) }
        } else {
            // A file or a folder: look it up in its parent's listing.
            let parent = (pattern as NSString).deletingLastPathComponent
            let siblings = try list(parent, recursive: false)
            if let file = siblings.files.first(where: { $0.path == pattern }) {
                files = [file]
            } else if siblings.folders.contains(pattern) {
                files = try list(pattern, recursive: true).files
            } else {
                throw HubError.entryNotFound(repo: repo.description, revision: revision, path: pattern)
            }
        }
        return files.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    // MARK: - Downloading

    /// Downloads `set`'s files (those not cached yet) in parallel and returns their snapshot paths,
    /// in the order of `set.files`.
    /// - Parameter progress: called (from worker threads, one call at a time) as bytes arrive.
    public func download(_ set: HubFileSet, progress: (@Sendable (HubProgress) -> Void)? = nil) throws -> [String] {
        let queue = HubFileQueue(client: self, files: set, prefetch: nil, deleteAfterUse: false, progress: progress)
        var paths: [String] = []
        do {
            while let p = try queue.next() { paths.append(p) }
        } catch {
            queue.cancel()
            throw error
        }
        return paths
    }

    /// The snapshot path of one file (downloaded if needed).
    public func file(_ repo: HubRepo, revision: String = "main", path: String,
                     progress: (@Sendable (HubProgress) -> Void)? = nil) throws -> String {
        try download(resolve(HubURI(repo: repo, revision: revision, path: path)), progress: progress)[0]
    }
}

/// The URL of a `Link: <url>; rel="next"` header, if any.
func nextLink(_ header: String) -> String? {
    for part in header.split(separator: ",") {
        let fields = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let first = fields.first, first.hasPrefix("<"), first.hasSuffix(">") else { continue }
        if fields.dropFirst().contains(where: { $0.replacingOccurrences(of: " ", with: "") == "rel=\"next\"" || $0 == "rel=next" }) {
            return String(first.dropFirst().dropLast())
        }
    }
    return nil
}

/// A repository path that stays inside the snapshot folder.
func isSafeRelativePath(_ path: String) -> Bool {
    !path.isEmpty && !path.hasPrefix("/") && !path.split(separator: "/", omittingEmptySubsequences: false)
        .contains { $0.isEmpty || $0 == "." || $0 == ".." }
}

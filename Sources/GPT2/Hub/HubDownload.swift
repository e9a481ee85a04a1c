// Downloading one file into the cache: resumable (an HTTP Range request continues
// blobs/<etag>.incomplete where a cut connection, a crash or Ctrl-C left it), retried on transient
// failures, checked against the listed size and (LFS files) sha256 before it is renamed to
// blobs/<etag> and linked from snapshots/<commit>/<path>. A file that fails the check is deleted:
// nothing unverified enters the cache.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Progress of a download (all files of one request).
public struct HubProgress: Sendable {
    /// Files present (downloaded or found in the cache) / all files.
    public var filesDone: Int
    public var filesTotal: Int
    /// Bytes present / all bytes (cached files count as present).
    public var bytesDone: Int64
    public var bytesTotal: Int64
    /// Download rate of this run while a transfer was running (cached and resumed bytes excluded;
    /// time spent waiting, e.g. for a streaming consumer, does not count), bytes per second.
    public var bytesPerSecond: Double
    /// Seconds since the start.
    public var elapsed: Double

    /// Remaining time at the current rate, when known.
    public var secondsRemaining: Double? {
        bytesPerSecond > 0 ? Double(bytesTotal - bytesDone) / bytesPerSecond : nil
    }
}

/// Sums progress over worker threads and calls the observer (serialised, at most 10 times a second
/// except when a file completes).
final class HubProgressMeter: @unchecked Sendable {
    private let lock = NSLock()
    private var state: HubProgress
    private var downloaded: Int64 = 0
    private var activeTransfers = 0
    private var activeSince: UInt64 = 0
    private var activeNanoseconds: UInt64 = 0
    private var lastReport: UInt64 = 0
    private let start = DispatchTime.now().uptimeNanoseconds
    private let observer: (@Sendable (HubProgress) -> Void)?

    init(files: [HubFile], observer: (@Sendable (HubProgress) -> Void)?) {
        state = HubProgress(filesDone: 0, filesTotal: files.count, bytesDone: 0,
                            bytesTotal: files.reduce(0) { $0 + $1.size }, bytesPerSecond: 0, elapsed: 0)
        self.observer = observer
    }

    /// `count` bytes arrived from the network (negative when a partial file was discarded).
    func received(_ count: Int64) { update(force: false) { $0.bytesDone += count; downloaded += count } }
    /// `count` bytes were already there (a resumed file's prefix).
    func present(_ count: Int64) { update(force: false) { $0.bytesDone += count } }
    /// A transfer starts or ends (the rate counts the time when at least one runs).
    func transferStarted() {
        update(force: false) { _ in
            if activeTransfers == 0 { activeSince = DispatchTime.now().uptimeNanoseconds }
            activeTransfers += 1
        }
    }
    func transferEnded() {
        update(force: false) { _ in
            activeTransfers -= 1
            if activeTransfers == 0 { activeNanoseconds += DispatchTime.now().uptimeNanoseconds - activeSince }
        }
    }
    /// A file is complete; `cachedBytes` are its bytes when it was already in the cache.
    func fileDone(cachedBytes: Int64 = 0) { update(force: true) { $0.filesDone += 1; $0.bytesDone += cachedBytes } }

    private func update(force: Bool, _ change: (inout HubProgress) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        change(&state)
        let now = DispatchTime.now().uptimeNanoseconds
        guard let observer, force || now - lastReport >= 100_000_000 else { return }
        lastReport = now
        state.elapsed = Double(now - start) / 1e9
        let active = Double(activeNanoseconds + (activeTransfers > 0 ? now - activeSince : 0)) / 1e9
        state.bytesPerSecond = active > 0 ? Double(max(downloaded, 0)) / active : 0
        observer(state)
    }
}

extension HubClient {
    /// The URL of a file at a commit: {endpoint}/[datasets/]{id}/resolve/{commit}/{path}.
    func resolveURL(_ repo: HubRepo, commit: String, path: String) -> String {
        environment.endpoint + "/" + repo.urlPrefix + repo.id + "/resolve/" + percentEncoded(commit, keepSlash: false)
            + "/" + percentEncoded(path, keepSlash: true)
    }

    /// Makes `file` of `set` present in the cache.
    /// - Returns: its snapshot path, and whether this call downloaded it (false: it was cached).
    func fetch(_ file: HubFile, of set: HubFileSet, session: CurlSession, meter: HubProgressMeter,
               cancelled: @escaping @Sendable () -> Bool) throws -> (path: String, downloaded: Bool) {
        let repo = set.repo
        if let p = cache.cachedFile(repo, commit: set.commit, path: file.path) {
            meter.fileDone(cachedBytes: file.size)
            return (p, false)
        }
        if set.fromCache || environment.offline {
            throw HubError.notCached(repo: repo.description, revision: set.revision, detail: "'\(file.path)' is missing from snapshot \(set.commit)")
        }
        guard isSafeRelativePath(file.path), !file.etag.isEmpty, !file.etag.contains("/") else {
            throw HubError.badResponse(url: environment.endpoint, detail: "unusable file entry '\(file.path)' (etag '\(file.etag)')")
        }
        try cache.makeFolder(cache.repoFolder(repo) + "/blobs")
        return try cache.withLock(repo, etag: file.etag) {
            let pointer = cache.pointerPath(repo, commit: set.commit, path: file.path)
            // Another process (or huggingface_hub) may have finished it while we waited for the lock.
            if cache.cachedFile(repo, commit: set.commit, path: file.path) != nil {
                meter.fileDone(cachedBytes: file.size)
                return (pointer, false)
            }
            let blob = cache.blobPath(repo, etag: file.etag)
            if access(blob, F_OK) == 0 {
                try cache.link(repo, commit: set.commit, path: file.path, etag: file.etag)
                meter.fileDone(cachedBytes: file.size)
                return (pointer, false)
            }
            let incomplete = cache.incompletePath(repo, etag: file.etag)
            meter.transferStarted()
            defer { meter.transferEnded() }
            try transfer(file, set: set, to: incomplete, session: session, meter: meter, cancelled: cancelled)
            try verify(file, set: set, incomplete)
            guard rename(incomplete, blob) == 0 else { throw HubError.cache(path: blob, reason: "rename: " + errnoText()) }
            try cache.link(repo, commit: set.commit, path: file.path, etag: file.etag)
            meter.fileDone()
            return (pointer, true)
        }
    }

    /// Downloads the missing part of `file` into `incomplete`, retrying transient failures; each
    /// attempt continues from the bytes already there.
    private func transfer(_ file: HubFile, set: HubFileSet, to incomplete: String, session: CurlSession,
                          meter: HubProgressMeter, cancelled: @escaping @Sendable () -> Bool) throws {
        let url = resolveURL(set.repo, commit: set.commit, path: file.path)
        var counted: Int64 = 0   // bytes of this file already reported to the meter
        try http.retrying(cancelled: cancelled) {
            let fd = open(incomplete, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
            guard fd >= 0 else { throw HubError.cache(path: incomplete, reason: errnoText()) }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw HubError.cache(path: incomplete, reason: errnoText()) }
            var have = Int64(st.st_size)
            if have > file.size {   // not a prefix of this file: start over
                guard ftruncate(fd, 0) == 0 else { throw HubError.cache(path: incomplete, reason: errnoText()) }
                have = 0
            }
            if counted == 0 { meter.present(have); counted = have }
            if have == file.size { return }   // complete from an earlier run; checked by verify

            var offset = have
            var checkedStart = false
            var failure: Error?
            let sink: HTTPBodySink = { head, bytes in
                if cancelled() { failure = HubError.cancelled; return false }
                if !checkedStart {
                    checkedStart = true
                    if head.status == 206 {
                        guard contentRangeStart(head.header("content-range")) == offset else {
                            failure = HubError.badResponse(url: redactedURL(url), detail: "Content-Range '\(head.header("content-range") ?? "")' does not start at byte \(offset)")
                            return false
                        }
                    } else if offset > 0 {   // 200 to a Range request: the whole file comes again
                        guard ftruncate(fd, 0) == 0 else { failure = HubError.cache(path: incomplete, reason: errnoText()); return false }
                        meter.received(-offset)
                        counted -= offset
                        offset = 0
                    }
                }
                var done = 0
                while done < bytes.count {
                    let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { failure = HubError.cache(path: incomplete, reason: "write: " + errnoText()); return false }
                    done += n
                }
                offset += Int64(done)
                if offset > file.size {
                    failure = HubError.sizeMismatch(repo: set.repo.description, path: file.path, expected: file.size, actual: offset)
                    return false
                }
                counted += Int64(done)
                meter.received(Int64(done))
                return true
            }
            let head: HTTPResponseHead, body: [UInt8], first: HTTPResponseHead, finalURL: String
            do {
                (head, body, first, finalURL) = try http.get(session, url: url, rangeStart: have, sink: sink)
            } catch {
                if let failure { throw failure }   // our own reason to stop beats curl's "write error"
                throw error
            }
            if let failure { throw failure }
            if head.status == 416 {   // we hold more than the server has: start over
                _ = ftruncate(fd, 0)
                meter.present(-counted)
                counted = 0
                throw RetryableFailure(error: .http(status: 416, url: redactedURL(url), detail: "range not satisfiable"))
            }
            guard (200..<300).contains(head.status) else {
                throw http.failure(head, body: body, url: finalURL, repo: set.repo, revision: set.revision, path: file.path)
            }
            if let linked = first.header("x-linked-etag").map(normalizedETag), let sha = file.sha256, linked != sha {
                throw HubError.badResponse(url: redactedURL(url), detail: "X-Linked-Etag \(linked) differs from the listed sha256 \(sha)")
            }
            if offset < file.size {
                throw RetryableFailure(error: .network(url: redactedURL(url), detail: "the transfer ended after \(offset) of \(file.size) bytes"))
            }
        }
    }

    /// Checks size and (LFS) sha256; deletes the file when it is wrong.
    private func verify(_ file: HubFile, set: HubFileSet, _ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HubError.cache(path: path, reason: errnoText()) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw HubError.cache(path: path, reason: errnoText()) }
        guard Int64(st.st_size) == file.size else {
            unlink(path)
            throw HubError.sizeMismatch(repo: set.repo.description, path: file.path, expected: file.size, actual: Int64(st.st_size))
        }
        guard let expected = file.sha256 else { return }
        var hash = SHA256()
        guard hash.update(fileDescriptor: fd, count: Int(file.size)) else { throw HubError.cache(path: path, reason: "read: " + errnoText()) }
        let actual = hash.finalize()
        guard actual == expected else {
            unlink(path)
            throw HubError.checksumMismatch(repo: set.repo.description, path: file.path, expected: expected, actual: actual)
        }
    }
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
func contentRangeStart(_ header: String?) -> Int64? {
    guard let header, let bytes = header.range(of: "bytes ") else { return nil }
    let spec = header[bytes.upperBound...]
    guard let dash = spec.firstIndex(of: "-") else { return nil }
    return Int64(spec[..<dash].trimmingCharacters(in: .whitespaces))
}

/// An ETag header without W/ and quotes (huggingface_hub's _normalize_etag).
func normalizedETag(_ etag: String) -> String {
    var s = Substring(etag.trimmingCharacters(in: .whitespaces))
    if s.hasPrefix("W/") { s = s.dropFirst(2) }
    return s.trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
}

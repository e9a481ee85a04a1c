// The hub cache, in huggingface_hub's layout so the Python tools and we share downloads:
//   $HF_HUB_CACHE/{models|datasets}--OWNER--NAME/
//     blobs/<etag>                 file contents (etag = sha256 for LFS files, git blob id otherwise)
//     blobs/<etag>.incomplete      a download in progress (resumed with an HTTP Range request)
//     snapshots/<commit>/<path>    relative symlink to ../../blobs/<etag>
//     refs/<revision>              the commit a branch or tag pointed to when last resolved
//   $HF_HUB_CACHE/.locks/<repo folder>/<etag>.lock   flock'd while a blob is written (as filelock does)
// Reference: huggingface_hub file_download.py (hf_hub_download, _create_symlink).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Paths and operations on the shared hub cache.
public struct HubCache: Sendable {
    /// `$HF_HUB_CACHE`.
    public let root: String

    public init(root: String) { self.root = root }

    public func repoFolder(_ repo: HubRepo) -> String { root + "/" + repo.cacheFolderName }
    public func blobPath(_ repo: HubRepo, etag: String) -> String { repoFolder(repo) + "/blobs/" + etag }
    func incompletePath(_ repo: HubRepo, etag: String) -> String { blobPath(repo, etag: etag) + ".incomplete" }
    public func snapshotFolder(_ repo: HubRepo, commit: String) -> String { repoFolder(repo) + "/snapshots/" + commit }
    /// snapshots/<commit>/<path>.
    public func pointerPath(_ repo: HubRepo, commit: String, path: String) -> String {
        snapshotFolder(repo, commit: commit) + "/" + path
    }
    func refPath(_ repo: HubRepo, revision: String) -> String { repoFolder(repo) + "/refs/" + revision }
    func lockPath(_ repo: HubRepo, etag: String) -> String { root + "/.locks/" + repo.cacheFolderName + "/" + etag + ".lock" }

    /// True for a full 40-hex-digit commit id.
    public static func isCommitHash(_ s: String) -> Bool {
        s.utf8.count == 40 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The file for `path` at `commit`, when the cache holds it (the link resolves to a blob).
    public func cachedFile(_ repo: HubRepo, commit: String, path: String) -> String? {
        let p = pointerPath(repo, commit: commit, path: path)
        var st = stat()
        return stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? p : nil
    }

    /// The commit `revision` resolved to when last online (itself when it is a commit hash).
    public func commit(for repo: HubRepo, revision: String) -> String? {
        if Self.isCommitHash(revision) { return revision }
        guard let data = FileManager.default.contents(atPath: refPath(repo, revision: revision)) else { return nil }
        let s = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return Self.isCommitHash(s) ? s : nil
    }

    /// Files (relative paths, sorted) in the snapshot of `commit` under `folder` ("" for all).
    func snapshotFiles(_ repo: HubRepo, commit: String, under folder: String) -> [String] {
        let base = snapshotFolder(repo, commit: commit)
        let start = folder.isEmpty ? base : base + "/" + folder
        guard let walker = FileManager.default.enumerator(atPath: start) else { return [] }
        var out: [String] = []
        while let rel = walker.nextObject() as? String {
            let full = start + "/" + rel
            var st = stat()
            if stat(full, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
                out.append(folder.isEmpty ? rel : folder + "/" + rel)
            }
        }
        return out.sorted()
    }

    // MARK: - Writing

    /// Creates `path` and its parents.
    func makeFolder(_ path: String) throws(HubError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .cache(path: path, reason: (error as NSError).localizedFailureReason ?? error.localizedDescription)
        }
    }

    /// Records that `revision` is `commit` (refs/<revision>), atomically; nothing for a commit hash.
    func writeRef(_ repo: HubRepo, revision: String, commit: String) throws(HubError) {
        guard revision != commit, self.commit(for: repo, revision: revision) != commit else { return }
        let path = refPath(repo, revision: revision)
        try makeFolder((path as NSString).deletingLastPathComponent)
        try writeAtomically(Array(commit.utf8), to: path)
    }

    /// Points snapshots/<commit>/<path> at blobs/<etag> with a relative symlink (replacing any
    /// older link atomically: a temporary link renamed over it).
    func link(_ repo: HubRepo, commit: String, path: String, etag: String) throws(HubError) {
        let pointer = pointerPath(repo, commit: commit, path: path)
        try makeFolder((pointer as NSString).deletingLastPathComponent)
        let depth = 2 + path.split(separator: "/").count - 1   // snapshots/<commit>/<dirs...>
        let target = String(repeating: "../", count: depth) + "blobs/" + etag
        let temporary = pointer + ".tmp-link-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard symlink(target, temporary) == 0 else { throw .cache(path: pointer, reason: "symlink: " + errnoText()) }
        guard rename(temporary, pointer) == 0 else {
            let reason = errnoText()
            unlink(temporary)
            throw .cache(path: pointer, reason: "rename: " + reason)
        }
    }

    /// Removes a file's snapshot link and its blob (streaming preparation: the file was used).
    func remove(_ repo: HubRepo, commit: String, path: String, etag: String) {
        unlink(pointerPath(repo, commit: commit, path: path))
        unlink(blobPath(repo, etag: etag))
    }

    /// Runs `body` holding an exclusive flock on the blob's lock file, as huggingface_hub's
    /// WeakFileLock does, so two processes (or threads) never write one blob at once.
    func withLock<T>(_ repo: HubRepo, etag: String, _ body: () throws -> T) throws -> T {
        let path = lockPath(repo, etag: etag)
        try makeFolder((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw HubError.cache(path: path, reason: errnoText()) }
        defer { close(fd) }   // closing releases the lock
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw HubError.cache(path: path, reason: "flock: " + errnoText()) }
        }
        return try body()
    }

    /// Tags the cache root for backup tools (CACHEDIR.TAG standard), as huggingface_hub does.
    func tagRoot() {
        let tag = root + "/CACHEDIR.TAG"
        guard access(tag, F_OK) != 0 else { return }
        let text = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n"
        try? writeAtomically(Array(text.utf8), to: tag)
    }

    private func writeAtomically(_ bytes: [UInt8], to path: String) throws(HubError) {
        let temporary = path + ".\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw .cache(path: path, reason: errnoText()) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            let reason = errnoText()
            unlink(temporary)
            throw .cache(path: path, reason: reason)
        }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }

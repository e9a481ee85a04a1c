// Hands the files of a `HubFileSet` to a consumer in order while workers download ahead of it.
// Unbounded (every file fetched, `parallelDownloads` at once) for plain downloads; bounded for
// streaming preparation: at most `prefetch` files wait on disk beside the one being read, and with
// `deleteAfterUse` each file this run downloaded leaves the cache (blob and snapshot link) once the
// consumer calls `done`, so a 28 GB dataset passes through a few GB of disk.
import Foundation

/// An ordered, prefetching download queue (a `PrepareInputQueue`).
public final class HubFileQueue: PrepareInputQueue, @unchecked Sendable {
    private enum State {
        case pending
        case ready(path: String, downloaded: Bool)
        case released
    }

    private let client: HubClient
    /// The files, in the order `next` returns them.
    public let files: HubFileSet
    private let slots: Int
    private let workerCount: Int
    private let deleteAfterUse: Bool
    private let meter: HubProgressMeter
    private let condition = NSCondition()
    private var states: [State]
    private var nextToStart = 0
    private var nextToConsume = 0
    private var released = 0
    private var failure: Error?
    private var isCancelled = false
    private var started = false

    /// - Parameters:
    ///   - prefetch: nil fetches everything (the client's `parallelDownloads` at once); N keeps at
    ///     most N files downloaded or downloading beyond the one being read (N at once).
    ///   - deleteAfterUse: `done` removes files this queue downloaded (files that were already in
    ///     the cache stay).
    ///   - progress: download progress, from worker threads (one call at a time).
    public init(client: HubClient, files: HubFileSet, prefetch: Int?, deleteAfterUse: Bool,
                progress: (@Sendable (HubProgress) -> Void)?) {
        self.client = client
        self.files = files
        if let prefetch {
            slots = max(1, prefetch) + 1
            workerCount = max(1, prefetch)
        } else {
            slots = Int.max
            workerCount = client.parallelDownloads
        }
        self.deleteAfterUse = deleteAfterUse
        meter = HubProgressMeter(files: files.files, observer: progress)
        states = Array(repeating: .pending, count: files.files.count)
    }

    /// The snapshot path of the next file, once it is downloaded and verified; nil after the last.
    /// - Throws: the first download failure (the other downloads stop).
    public func next() throws -> String? {
        condition.lock()
        defer { condition.unlock() }
        startWorkers()
        guard nextToConsume < states.count else { return nil }
        while true {
            if let failure { throw failure }
            if isCancelled { throw HubError.cancelled }
            if case .ready(let path, _) = states[nextToConsume] {
                nextToConsume += 1
                return path
            }
            condition.wait()
        }
    }

    /// Starts the downloads now rather than at the first `next`.
    public func start() {
        condition.lock()
        startWorkers()
        condition.unlock()
    }

    /// Releases a file returned by `next` (deleted from the cache when the queue deletes after use).
    public func done(_ path: String) {
        condition.lock()
        defer { condition.unlock() }
        guard let i = (0..<nextToConsume).first(where: { if case .ready(path, _) = states[$0] { return true }; return false }),
              case .ready(_, let downloaded) = states[i] else { return }
        let file = files.files[i]
        // Another file of the set with the same contents still needs the blob.
        let shared = files.files.indices.contains { j in
            guard j != i, files.files[j].etag == file.etag else { return false }
            if case .released = states[j] { return false }
            return true
        }
        if deleteAfterUse && downloaded && !shared {
            client.cache.remove(files.repo, commit: files.commit, path: file.path, etag: file.etag)
        }
        states[i] = .released
        released += 1
        condition.broadcast()
    }

    /// Stops the downloads (a transfer in progress ends at its next chunk; its partial file stays
    /// for a later resume).
    public func cancel() {
        condition.lock()
        isCancelled = true
        condition.broadcast()
        condition.unlock()
    }

    private var stopped: Bool {
        condition.lock()
        defer { condition.unlock() }
        return isCancelled || failure != nil
    }

    /// Called with the lock held.
    private func startWorkers() {
        guard !started else { return }
        started = true
        for _ in 0..<min(workerCount, states.count) {
            let thread = Thread { [self] in work() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private func work() {
        let session: CurlSession
        do { session = try CurlSession() } catch {
            fail(error)
            return
        }
        while true {
            condition.lock()
            while !isCancelled && failure == nil && nextToStart < states.count && nextToStart - released >= slots {
                condition.wait()
            }
            if isCancelled || failure != nil || nextToStart >= states.count {
                condition.unlock()
                return
            }
            let i = nextToStart
            nextToStart += 1
            condition.unlock()
            do {
                let (path, downloaded) = try client.fetch(files.files[i], of: files, session: session, meter: meter,
                                                          cancelled: { [self] in stopped })
                condition.lock()
                states[i] = .ready(path: path, downloaded: downloaded)
                condition.broadcast()
                condition.unlock()
            } catch {
                fail(error)
                return
            }
        }
    }

    private func fail(_ error: Error) {
        condition.lock()
        if failure == nil && !isCancelled { failure = error }
        condition.broadcast()
        condition.unlock()
    }
}

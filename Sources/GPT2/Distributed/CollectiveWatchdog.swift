// A deadline on collectives. MPI over TCP never gives up on a peer that vanished without closing
// its sockets (a cut link, a host that froze): every rank would wait in MPI_Allreduce until the
// job's time limit. Like PyTorch's NCCL watchdog, a thread watches the collective in progress;
// when one has not completed after `timeout` seconds it calls `onTimeout` (the CLI prints the
// message and exits, which makes mpirun/srun end the job). The library itself never prints.
import Foundation

public final class CollectiveWatchdog: @unchecked Sendable {
    /// What timed out, for the caller's message.
    public struct Timeout: Sendable, CustomStringConvertible {
        public var operation: String
        public var seconds: Double
        public var description: String {
            "\(operation) has not completed after \(Int(seconds)) s (GPT2_COLLECTIVE_TIMEOUT): another rank died or the network between the ranks failed"
        }
    }

    /// Seconds, when GPT2_COLLECTIVE_TIMEOUT is unset: long enough for rank 0 alone to write a
    /// large checkpoint or draw samples while the others wait (PyTorch's NCCL default is 600 too).
    public static let defaultTimeout: Double = 600

    /// The deadline from GPT2_COLLECTIVE_TIMEOUT (default `defaultTimeout`); nil when it is 0.
    public static func timeout(environment env: [String: String]) -> Double? {
        let t = Settings(environment: env).collectiveTimeout ?? defaultTimeout
        return t > 0 ? t : nil
    }

    public let timeout: Double
    private let onTimeout: @Sendable (Timeout) -> Void
    private let lock = NSLock()
    /// The collective in progress and when it started (monotonic nanoseconds).
    private var current: (operation: String, start: UInt64)?
    private var started = false

    /// - Parameters:
    ///   - timeout: seconds a collective may take (> 0).
    ///   - onTimeout: called once, on the watchdog's own thread, while the collective still waits;
    ///     it is expected to end the process.
    public init(timeout: Double, onTimeout: @escaping @Sendable (Timeout) -> Void) {
        precondition(timeout > 0, "CollectiveWatchdog: timeout \(timeout) must be positive")
        self.timeout = timeout
        self.onTimeout = onTimeout
    }

    /// Runs `body` (one blocking collective) under the deadline.
    public func watch<R>(_ operation: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        begin(operation())
        defer { end() }
        return try body()
    }

    private func begin(_ operation: String) {
        lock.lock()
        current = (operation, DispatchTime.now().uptimeNanoseconds)
        let startThread = !started
        started = true
        lock.unlock()
        if startThread {
            let t = Thread { [weak self] in
                // ends with the watchdog (or once it fired)
                let period = min(1, (self?.timeout ?? 1) / 4)
                while true {
                    Thread.sleep(forTimeInterval: period)
                    guard let me = self, me.check() else { return }
                }
            }
            t.name = "gpt2-collective-watchdog"
            t.start()
        }
    }

    private func end() {
        lock.lock()
        current = nil
        lock.unlock()
    }

    /// One look at the collective in progress (a few times per timeout, at most once a second);
    /// false once the deadline has passed and `onTimeout` was called.
    private func check() -> Bool {
        lock.lock()
        var expired: Timeout?
        if let c = current {
            let waited = Double(DispatchTime.now().uptimeNanoseconds - c.start) / 1e9
            if waited >= timeout { expired = Timeout(operation: c.operation, seconds: waited) }
        }
        lock.unlock()
        guard let expired else { return true }
        onTimeout(expired)
        return false
    }
}

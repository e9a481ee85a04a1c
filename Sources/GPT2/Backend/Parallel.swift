// The one thread pool of the CPU engine: GCD's concurrentPerform (workers sleep when idle, so
// they never spin against BLAS). BLAS itself is pinned to one thread (see BLAS.swift) and every
// multi-threaded op, matmuls included, is split across this pool by the caller.
import Dispatch
import Foundation

/// Wraps a value that is not `Sendable` (raw pointers, closures over them) for
/// `concurrentPerform`. Callers guarantee that concurrent iterations touch disjoint memory.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
}

/// Fork-join helpers over the shared pool.
public enum Parallel {
    /// Worker count: `GPT2_NUM_THREADS` if set, else the active processor count.
    public static let threadCount: Int = {
        if let n = Settings.current.numThreads { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body(i)` for i in 0..<n concurrently and waits. Iterations must not race.
    static func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 { body(0); return }
        withoutActuallyEscaping(body) { escaping in
            let box = UncheckedSendable(value: escaping)
            DispatchQueue.concurrentPerform(iterations: n) { i in box.value(i) }
        }
    }

    /// Splits 0..<count into at most `threadCount` contiguous chunks of at least `minChunk`
    /// (rounded to `align`) and runs `body` on each concurrently.
    static func chunks(_ count: Int, minChunk: Int = 1, align: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let maxParts = max(1, min(threadCount, count / max(1, minChunk)))
        if maxParts == 1 { body(0..<count); return }
        var size = (count + maxParts - 1) / maxParts
        size = (size + align - 1) / align * align
        let parts = (count + size - 1) / size
        forEach(parts) { p in
            let lo = p * size
            body(lo..<min(count, lo + size))
        }
    }
}

// The one thread pool of the CPU engine (Sources/GPT2Kernels/pool.c): iterations are claimed from
// one atomic counter, so a worker that wakes late (its CPU taken by another process) is not waited
// for, and the others take over its share; workers spin ~50 µs between jobs, then sleep. GCD's
// concurrentPerform made the caller wait for every helper to have run, ~400 times per training
// step, which made step times swing on shared machines. BLAS is pinned to one thread (BLAS.swift);
// every multi-threaded op, matmuls included, is split here by the caller.
// GPT2_POOL=gcd uses concurrentPerform instead (for comparisons).
import Dispatch
import Foundation
import GPT2Kernels

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

    /// Whether GCD runs the iterations instead of the pool (GPT2_POOL=gcd).
    static let useGCD: Bool = Settings.current.pool == "gcd"

    /// The pool's name, for run headers.
    public static var poolDescription: String {
        useGCD ? "GCD concurrentPerform (GPT2_POOL=gcd)" : "own pool, \(threadCount) threads, dynamic claiming"
    }

    /// Runs `body(i)` for i in 0..<n concurrently and waits. Iterations must not race; they may
    /// run on any thread in any order (index scratch by `i`, never by thread).
    static func forEach(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 || threadCount == 1 { for i in 0..<n { body(i) }; return }
        withoutActuallyEscaping(body) { escaping in
            if !useGCD {
                var box = escaping
                let ran = withUnsafeMutablePointer(to: &box) { ptr in
                    gpt2k_pool_run(Int32(threadCount), n, { ctx, i in
                        ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(i)
                    }, UnsafeMutableRawPointer(ptr))
                }
                if ran == 0 { return }
            }
            // nested or concurrent use (the pool runs one job at a time), or GPT2_POOL=gcd
            let box = UncheckedSendable(value: escaping)
            DispatchQueue.concurrentPerform(iterations: n) { i in box.value(i) }
        }
    }

    /// Splits 0..<count into contiguous chunks of at least `minChunk` (rounded to `align`), up to
    /// four per thread so that a thread that loses its CPU for a while leaves chunks for the
    /// others, and runs `body` on each concurrently.
    static func chunks(_ count: Int, minChunk: Int = 1, align: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let maxParts = max(1, min(threadCount == 1 ? 1 : 4 * threadCount, count / max(1, minChunk)))
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

// The fork-join pool (pool.c via Parallel.forEach): every iteration runs exactly once, including
// when called from inside an iteration (nested: falls back to GCD) and from several threads at once.
import Foundation
import XCTest
@testable import GPT2

final class CPUPoolTests: XCTestCase {
    func testEveryIterationRunsOnce() {
        for n in [1, 2, 3, 7, 64, 1000] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: n)
            counts.initialize(repeating: 0, count: n)
            defer { counts.deallocate() }
            for _ in 0..<50 { Parallel.forEach(n) { i in counts[i] += 1 } }
            XCTAssertEqual((0..<n).filter { counts[$0] != 50 }, [], "n = \(n)")
        }
    }

    func testNestedAndConcurrentCallers() {
        let n = 16, m = 8
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 4 * n * m)
        counts.initialize(repeating: 0, count: 4 * n * m)
        defer { counts.deallocate() }
        let box = UncheckedSendable(value: counts)
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for _ in 0..<20 {
                Parallel.forEach(n) { i in Parallel.forEach(m) { j in box.value[(caller * n + i) * m + j] += 1 } }
            }
        }
        XCTAssertEqual((0..<4 * n * m).filter { counts[$0] != 20 }, [])
    }

    func testChunksCoverTheRange() {
        for (count, minChunk, align) in [(1, 1, 1), (10, 1, 1), (1000, 7, 16), (1 << 20, 1 << 14, 16)] {
            let seen = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
            seen.initialize(repeating: 0, count: count)
            defer { seen.deallocate() }
            Parallel.chunks(count, minChunk: minChunk, align: align) { r in for i in r { seen[i] += 1 } }
            XCTAssertEqual((0..<count).filter { seen[$0] != 1 }.count, 0, "count \(count)")
        }
    }
}

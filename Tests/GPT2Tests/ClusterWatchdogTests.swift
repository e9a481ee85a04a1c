// The deadline on collectives (CollectiveWatchdog, GPT2_COLLECTIVE_TIMEOUT): it fires while a
// collective is stuck, names it, and stays quiet for collectives that complete.
import Foundation
import XCTest
@testable import GPT2

final class ClusterWatchdogTests: XCTestCase {
    final class Calls: @unchecked Sendable {
        let lock = NSLock()
        var timeouts: [CollectiveWatchdog.Timeout] = []
        func add(_ t: CollectiveWatchdog.Timeout) { lock.lock(); timeouts.append(t); lock.unlock() }
        var all: [CollectiveWatchdog.Timeout] { lock.lock(); defer { lock.unlock() }; return timeouts }
    }

    func testFiresWhileACollectiveIsStuck() throws {
        let calls = Calls()
        let fired = DispatchSemaphore(value: 0)
        let w = CollectiveWatchdog(timeout: 0.4) { calls.add($0); fired.signal() }
        // The "collective" returns only once the watchdog has fired: it is called from its own thread.
        let value = w.watch("MPI_Allreduce of 42 values") { () -> Int in
            XCTAssertEqual(fired.wait(timeout: .now() + 10), .success, "no timeout within 10 s")
            return 7
        }
        XCTAssertEqual(value, 7)
        let t = try XCTUnwrap(calls.all.first)
        XCTAssertEqual(calls.all.count, 1)
        XCTAssertEqual(t.operation, "MPI_Allreduce of 42 values")
        XCTAssertGreaterThanOrEqual(t.seconds, 0.4)
        XCTAssertEqual(CollectiveWatchdog.Timeout(operation: "MPI_Barrier", seconds: 600.4).description,
                       "MPI_Barrier has not completed after 600 s (GPT2_COLLECTIVE_TIMEOUT): another rank died or the network between the ranks failed")
    }

    func testQuietForCollectivesThatComplete() {
        let calls = Calls()
        let w = CollectiveWatchdog(timeout: 0.3) { calls.add($0) }
        // Many short collectives over several periods, then idle time between collectives.
        for i in 0..<20 {
            w.watch("call \(i)") { Thread.sleep(forTimeInterval: 0.05) }
        }
        Thread.sleep(forTimeInterval: 0.8)
        XCTAssertEqual(calls.all.map(\.operation), [])
        // Errors pass through.
        struct Boom: Error {}
        XCTAssertThrowsError(try w.watch("failing") { throw Boom() })
    }

    func testTimeoutSetting() {
        XCTAssertEqual(CollectiveWatchdog.timeout(environment: [:]), CollectiveWatchdog.defaultTimeout)
        XCTAssertEqual(CollectiveWatchdog.timeout(environment: ["GPT2_COLLECTIVE_TIMEOUT": "2.5"]), 2.5)
        XCTAssertNil(CollectiveWatchdog.timeout(environment: ["GPT2_COLLECTIVE_TIMEOUT": "0"]), "0 waits forever")
        XCTAssertEqual(CollectiveWatchdog.timeout(environment: ["GPT2_COLLECTIVE_TIMEOUT": "-1"]), CollectiveWatchdog.defaultTimeout)
        XCTAssertEqual(CollectiveWatchdog.timeout(environment: ["GPT2_COLLECTIVE_TIMEOUT": "soon"]), CollectiveWatchdog.defaultTimeout)
        XCTAssertTrue(Settings.names.contains("GPT2_COLLECTIVE_TIMEOUT"))
    }
}

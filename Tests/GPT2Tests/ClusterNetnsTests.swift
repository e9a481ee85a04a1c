// Two nodes on one machine: network namespaces joined by a veth pair (Tests/cluster/netns.sh),
// one rank in each, Open MPI's TCP transport between them (mpirun starts its daemon in the other
// namespace through Tests/cluster/netns-agent.sh, in place of ssh). Shows that data parallelism
// across hosts gives one process's losses, that local ranks are per host and only global rank 0
// writes, that a cut link ends the job within a bound with a clear message, and the NCCL id
// exchange over TCP between hosts. Skipped without root or iproute2.
import Foundation
import XCTest
@testable import GPT2
#if canImport(Glibc)
import Glibc
#endif

final class ClusterNetnsTests: XCTestCase {
    /// `ip netns exec A mpirun` with one slot on each host, TCP only, over the veth pair.
    /// `keepalive`: mpirun's OOB keepalive (idle seconds, interval, probes) with which it notices a
    /// lost daemon (docs/CLUSTER.md); nil: Open MPI's defaults (300 s, 20 s, 9).
    func mpirunArguments(_ hosts: EmulatedHosts, mpirun: String, work: String, keepalive: (Int, Int, Int)?) throws -> [String] {
        var args = ["netns", "exec", hosts.a, mpirun, "-np", "2", "--host", "\(EmulatedHosts.addressA):1,\(EmulatedHosts.addressB):1",
                    "--mca", "plm_rsh_agent", Cluster.scripts + "/netns-agent.sh",
                    "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "10.231.0.0/30", "--mca", "oob_tcp_if_include", "10.231.0.0/30"]
        if let (time, interval, probes) = keepalive {
            args += ["--mca", "oob_tcp_keepalive_time", "\(time)", "--mca", "oob_tcp_keepalive_intvl", "\(interval)",
                     "--mca", "oob_tcp_keepalive_probes", "\(probes)"]
        }
        return args + ["-x", "GPT2_NUM_THREADS", "-x", "GPT2_COLLECTIVE_TIMEOUT", Cluster.scripts + "/rank-env.sh", work, try DistributedTests.gpt()]
    }

    func testTwoHostsOverTCPMatchOneProcessAndOnlyRankZeroWrites() throws {
        let mpirun = try DistributedTests.mpirun()
        let hosts = try EmulatedHosts.make()
        defer { hosts.remove() }
        let ip = try XCTUnwrap(Cluster.tool("ip"))
        let data = try Cluster.data.get()
        let work = try TestPaths.temporaryDirectory().path
        let sentBefore = hosts.bytesSentFromA() ?? 0
        // --out is relative: each rank runs in its host's own directory (work/NAMESPACE).
        let r = try Cluster.run(ip, try mpirunArguments(hosts, mpirun: mpirun, work: work, keepalive: nil)
                                    + Cluster.trainArguments(data: data, steps: Cluster.steps) + ["--out", "run"],
                                environment: ["NETNS_TAG": hosts.tag, "GPT2_COLLECTIVE_TIMEOUT": "120"], timeout: 180)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("data parallel: 2 ranks (mpirun (Open MPI))"), r.output)
        Cluster.assertSameTrainLosses(try Cluster.oneProcessLog.get(), try Cluster.logLines("\(work)/\(hosts.a)/run"), "2 hosts")

        // Rank 0 on host A, rank 1 on host B: each the only rank of its host (local rank 0).
        var launches: [String: LaunchInfo] = [:]
        for ns in [hosts.a, hosts.b] {
            let files = try FileManager.default.contentsOfDirectory(atPath: "\(work)/\(ns)").filter { $0.hasPrefix("env.") }
            XCTAssertEqual(files.count, 1, "\(ns): one rank started there")
            let env = Cluster.parseEnvironment(try Data(contentsOf: URL(fileURLWithPath: "\(work)/\(ns)/\(files[0])")))
            launches[ns] = try LaunchInfo.detect(environment: env)
        }
        XCTAssertEqual(launches[hosts.a], LaunchInfo(launcher: .openMPI, rank: 0, worldSize: 2, localRank: 0,
                                                     rankVariable: "OMPI_COMM_WORLD_RANK", sizeVariable: "OMPI_COMM_WORLD_SIZE"))
        XCTAssertEqual(launches[hosts.b], LaunchInfo(launcher: .openMPI, rank: 1, worldSize: 2, localRank: 0,
                                                     rankVariable: "OMPI_COMM_WORLD_RANK", sizeVariable: "OMPI_COMM_WORLD_SIZE"))
        // Only global rank 0 wrote: host B's directory holds nothing but the launch environment.
        let onB = try FileManager.default.contentsOfDirectory(atPath: "\(work)/\(hosts.b)")
        XCTAssertEqual(onB.filter { !$0.hasPrefix("env.") }, [], "files written on host B")
        XCTAssertFalse(RunDirectory(path: "\(work)/\(hosts.a)/run").checkpoints().isEmpty)

        // The gradients crossed the link: each step rank 0 sends about one gradient (4 bytes per
        // parameter) to rank 1.
        let parameters = GPT2Config(maxSeqLen: 32, numLayers: 2, numHeads: 2, channels: 32).parameterCount
        let sent = (hosts.bytesSentFromA() ?? 0) - sentBefore
        XCTAssertGreaterThan(sent, Cluster.steps * parameters * 4 * 9 / 10, "bytes sent from host A to host B over the veth pair")
    }

    /// Starts a long run on the two hosts and cuts the link after step 3's checkpoint.
    func startAndCut(_ hosts: EmulatedHosts, keepalive: (Int, Int, Int)?, collectiveTimeout: Int) throws -> (job: Cluster.Job, run: String, cut: Date)? {
        let mpirun = try DistributedTests.mpirun()
        let ip = try XCTUnwrap(Cluster.tool("ip"))
        let work = try TestPaths.temporaryDirectory().path
        let run = "\(work)/\(hosts.a)/run"
        let job = try Cluster.Job(ip, try mpirunArguments(hosts, mpirun: mpirun, work: work, keepalive: keepalive)
                                      + Cluster.trainArguments(data: try Cluster.data.get(), steps: 100_000) + ["--out", "run"],
                                  environment: ["NETNS_TAG": hosts.tag, "GPT2_COLLECTIVE_TIMEOUT": "\(collectiveTimeout)"])
        guard Cluster.waitUntil(120, { FileManager.default.fileExists(atPath: run + "/checkpoint_000003.safetensors") }) else {
            job.kill()
            XCTFail("no checkpoint after step 3 within 120 s:\n\(job.output)")
            return nil
        }
        try hosts.cut()
        return (job, run, Date())
    }

    /// gpt processes inside namespace `ns`.
    func ranks(on ns: String, of hosts: EmulatedHosts) -> [String] {
        hosts.pids(in: ns).filter { pid in
            (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "gpt"
        }
    }

    /// mpirun's own keepalive (set as docs/CLUSTER.md says) ends the whole job when a host is lost.
    func testCutLinkEndsAnMpirunJobThroughItsKeepalive() throws {
        let hosts = try EmulatedHosts.make()
        defer { hosts.remove() }
        // keepalive after 5 s idle, 3 probes 1 s apart; the ranks' own deadline (60 s) comes later
        guard let (job, run, cut) = try startAndCut(hosts, keepalive: (5, 1, 3), collectiveTimeout: 60) else { return }
        defer { job.kill() }
        XCTAssertTrue(job.wait(60), "mpirun still running 60 s after the link was cut:\n\(job.output)")
        guard !job.isRunning else { return }
        print("cut link, mpirun with keepalive: ended \(String(format: "%.1f", Date().timeIntervalSince(cut))) s after the cut")
        XCTAssertNotEqual(job.process.terminationStatus, 0)
        XCTAssertTrue(job.output.contains("ORTE has lost communication with a remote daemon."), job.output)
        // Nothing is left on host B: its daemon lost mpirun (keepalive too) and stopped its rank.
        XCTAssertTrue(Cluster.waitUntil(30) { hosts.pids(in: hosts.b).isEmpty }, "processes left on host B: \(hosts.pids(in: hosts.b))")
        XCTAssertEqual(ranks(on: hosts.a, of: hosts), [])
        Cluster.assertNewestCheckpointIsWhole(run, atLeast: 3)
    }

    /// Whatever the launcher does, no rank waits forever: GPT2_COLLECTIVE_TIMEOUT ends each rank
    /// with a message. (mpirun itself, with its default keepalive, then waits for TCP to give up
    /// on the lost daemon: about 15 minutes; the test stops it.)
    func testCutLinkEndsEveryRankThroughTheCollectiveDeadline() throws {
        let hosts = try EmulatedHosts.make()
        defer { hosts.remove() }
        guard let (job, run, cut) = try startAndCut(hosts, keepalive: nil, collectiveTimeout: 3) else { return }
        defer { job.kill() }
        let gone = Cluster.waitUntil(60) { ranks(on: hosts.a, of: hosts).isEmpty && ranks(on: hosts.b, of: hosts).isEmpty }
        XCTAssertTrue(gone, "ranks still running 60 s after the link was cut: A \(ranks(on: hosts.a, of: hosts)), B \(ranks(on: hosts.b, of: hosts))\n\(job.output)")
        print("cut link, collective deadline 3 s: both ranks ended \(String(format: "%.1f", Date().timeIntervalSince(cut))) s after the cut")
        // Rank 0's message reaches mpirun's output (rank 1's cannot: its output went over the cut link).
        XCTAssertTrue(Cluster.waitUntil(10) { job.output.contains("error (rank 0 of 2): MPI_Allreduce of ") }, job.output)
        XCTAssertTrue(job.output.contains(" has not completed after 3 s (GPT2_COLLECTIVE_TIMEOUT): another rank died or the network between the ranks failed; stopping (resume from the newest checkpoint with --resume)"),
                      job.output)
        Cluster.assertNewestCheckpointIsWhole(run, atLeast: 3)
    }

    // MARK: - NCCL id exchange between hosts

    /// Runs `body` on a new thread that has entered network namespace `ns` (only that thread).
    func onHost<R: Sendable>(_ ns: String, _ body: @escaping @Sendable () throws -> R) -> () -> Result<R, Error> {
        let box = ThreadResult<R>()
        let thread = Thread {
            defer { box.done.signal() }
            box.result = Result {
                try Self.enterNetworkNamespace(ns)
                return try body()
            }
        }
        thread.start()
        return {
            guard box.done.wait(timeout: .now() + 60) == .success else { return .failure(Cluster.CLIFailure(text: "thread in \(ns) did not finish")) }
            return box.result!
        }
    }

    /// setns(2) into /var/run/netns/NAME for the calling thread (Glibc's module does not export it).
    static func enterNetworkNamespace(_ name: String) throws {
        typealias SetNS = @convention(c) (Int32, Int32) -> Int32
        guard let sym = dlsym(dlopen(nil, RTLD_NOW), "setns") else {
            throw Cluster.CLIFailure(text: "no setns in libc")
        }
        let setns = unsafeBitCast(sym, to: SetNS.self)
        let fd = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Cluster.CLIFailure(text: "open /var/run/netns/\(name): errno \(errno)") }
        defer { close(fd) }
        let CLONE_NEWNET: Int32 = 0x4000_0000
        guard setns(fd, CLONE_NEWNET) == 0 else { throw Cluster.CLIFailure(text: "setns \(name): errno \(errno)") }
    }

    func testNCCLIdExchangeOverTCPBetweenHosts() throws {
        let hosts = try EmulatedHosts.make()
        defer { hosts.remove() }
        let id = (0..<NCCLIdExchange.idBytes).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        // torchrun-style: MASTER_ADDR is host A, the id travels on MASTER_PORT + 1.
        let env = ["MASTER_ADDR": EmulatedHosts.addressA, "MASTER_PORT": "29500"]
        let exchange = try NCCLIdExchange.choose(environment: env, hostReducer: nil)
        guard case .tcp(let host, let port) = exchange else { return XCTFail("expected TCP, got \(exchange)") }
        XCTAssertEqual(host, EmulatedHosts.addressA)
        XCTAssertEqual(port, 29501)

        let rank0 = onHost(hosts.a) { try NCCLIdExchange.tcp(host: host, port: port).exchange(rank: 0, worldSize: 2, timeout: 20) { id } }
        let rank1 = onHost(hosts.b) {
            try NCCLIdExchange.tcp(host: host, port: port).exchange(rank: 1, worldSize: 2, timeout: 20) { XCTFail("rank 1 made an id"); return [] }
        }
        XCTAssertEqual(try rank1().get(), id)
        XCTAssertEqual(try rank0().get(), id)

        // The link down: rank 1 gives up after its timeout, naming what it waited for.
        try hosts.cut()
        let lost = onHost(hosts.b) { try NCCLIdExchange.tcp(host: host, port: port).exchange(rank: 1, worldSize: 2, timeout: 2) { [] } }
        XCTAssertThrowsError(try lost().get()) {
            XCTAssertEqual($0.localizedDescription,
                           "timed out after 2 s waiting for rank 0 at 10.231.0.1:29501 to send the NCCL id (GPT2_NCCL_TIMEOUT sets the limit)")
        }
        // ... and rank 0 when no rank reaches it.
        let alone = onHost(hosts.a) { try NCCLIdExchange.tcp(host: host, port: port).exchange(rank: 0, worldSize: 2, timeout: 2) { id } }
        XCTAssertThrowsError(try alone().get()) {
            XCTAssertEqual($0.localizedDescription,
                           "timed out after 2 s waiting for rank 1 of 1 other rank(s) to connect to port 29501 (GPT2_NCCL_TIMEOUT sets the limit)")
        }
    }
}

/// What a thread produced, and when.
final class ThreadResult<R>: @unchecked Sendable {
    var result: Result<R, Error>?
    let done = DispatchSemaphore(value: 0)
}

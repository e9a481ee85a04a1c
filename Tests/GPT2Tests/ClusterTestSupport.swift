// Shared pieces of the cluster tests (SlurmTests, ClusterNetnsTests): processes run under a
// deadline, the one-host Slurm of .ci/slurm-up.sh, two emulated hosts (Tests/cluster/netns.sh),
// the tiny training run they all use and the logs to compare.
import Foundation
import XCTest
@testable import GPT2
#if canImport(Glibc)
import Glibc
private let sendSignal = Glibc.kill
#elseif canImport(Darwin)
import Darwin
private let sendSignal = Darwin.kill
#endif

enum Cluster {
    static let scripts = TestPaths.root.appendingPathComponent("Tests/cluster").path
    static let examples = TestPaths.root.appendingPathComponent("examples/slurm").path
    /// Open MPI as root; one thread per rank (the Slurm node has 2 CPUs for 2 ranks).
    static let environment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "GPT2_NUM_THREADS": "1"]

    /// An executable on PATH or in the usual system directories.
    static func tool(_ name: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"]
        return dirs.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Polls `condition` until it holds or `seconds` pass; returns whether it held.
    @discardableResult
    static func waitUntil(_ seconds: Double, every poll: Double = 0.2, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: poll)
        }
        return condition()
    }

    /// A process whose stdout and stderr go to one file (no pipe can fill up and block it).
    final class Job {
        let process = Process()
        let outputPath: String
        let started = Date()

        init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
            outputPath = try TestPaths.temporaryDirectory().path + "/output.txt"
            FileManager.default.createFile(atPath: outputPath, contents: nil)
            let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(Cluster.environment.merging(environment) { $1 }) { $1 }
            process.standardOutput = out
            process.standardError = out
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
        var isRunning: Bool { process.isRunning }

        /// Waits at most `seconds`; true when the process has exited.
        @discardableResult
        func wait(_ seconds: Double) -> Bool {
            Cluster.waitUntil(seconds, every: 0.1) { !process.isRunning }
        }

        func kill() {
            if process.isRunning { sendSignal(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    /// Runs to completion within `seconds` (killed after that: a failure naming the command).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout seconds: Double,
                    file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, output: String) {
        let job = try Job(executable, arguments, environment: environment)
        guard job.wait(seconds) else {
            job.kill()
            XCTFail("\((executable as NSString).lastPathComponent) \(arguments.joined(separator: " ")) still running after \(Int(seconds)) s:\n\(job.output)",
                    file: file, line: line)
            return (-1, job.output)
        }
        return (job.process.terminationStatus, job.output)
    }

    // MARK: - The training run

    /// Shakespeare shards (the embedded corpus, `gpt prepare --shakespeare`), made once.
    static let data: Result<String, Error> = Result {
        let dir = try TestPaths.temporaryDirectory().path + "/shakespeare"
        let r = try runGPT(["prepare", "--shakespeare", "--output", dir])
        guard r.status == 0 else { throw CLIFailure(text: "gpt prepare --shakespeare: " + r.stderr) }
        return dir
    }

    struct CLIFailure: Error, CustomStringConvertible { var text: String; var description: String { text } }

    /// A 2-layer, 32-wide model on B=2 T=16; 64 tokens per step (2 ranks × 1 micro-step, or one
    /// process × 2); one validation batch; no samples.
    static func trainArguments(data: String, steps: Int, checkpointEvery: Int = 3) -> [String] {
        ["train", "--data", data, "--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "2", "-T", "16",
         "--total-batch", "64", "--max-steps", "\(steps)", "--warmup-steps", "2", "--val-every", "1000", "--val-steps", "1",
         "--sample-tokens", "0", "--checkpoint-every", "\(checkpointEvery)", "--keep-checkpoints", "2", "--no-tensorboard",
         "--precision", "fp32"]   // fp32: ranks are compared with one process at 1e-5
    }

    /// The steps of the short runs compared with each other.
    static let steps = 8

    /// log.txt of one process (2 micro-steps per step) over `steps` steps, made once.
    static let oneProcessLog: Result<[String], Error> = Result {
        let data = try Cluster.data.get()
        let out = try TestPaths.temporaryDirectory().path + "/one"
        let r = try runProcess(try DistributedTests.gpt(), trainArguments(data: data, steps: steps) + ["--out", out], environment: environment)
        guard r.status == 0, r.text.contains("= 2 micro-step(s)") else { throw CLIFailure(text: "one-process run failed: \(r.text)\(r.stderr)") }
        return try logLines(out)
    }

    /// The lines of RUN/log.txt ("STEP KIND VALUE").
    static func logLines(_ run: String) throws -> [String] {
        try String(contentsOfFile: run + "/log.txt", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// Only the training losses, as (step, loss).
    static func trainLosses(_ lines: [String]) -> [(step: Int, loss: Double)] {
        lines.compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 3, f[1] == "train", let s = Int(f[0]), let v = Double(f[2]) else { return nil }
            return (s, v)
        }
    }

    /// Asserts equal training losses (one process against several ranks: the sums are ordered
    /// differently, so within 1e-5 as DistributedTests).
    static func assertSameTrainLosses(_ a: [String], _ b: [String], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let x = trainLosses(a), y = trainLosses(b)
        XCTAssertEqual(x.map(\.step), Array(0..<steps), "steps of the reference run", file: file, line: line)
        XCTAssertEqual(y.map(\.step), x.map(\.step), "\(what): steps", file: file, line: line)
        for (p, q) in zip(x, y) {
            XCTAssertEqual(p.loss, q.loss, accuracy: 1e-5, "\(what): train loss at step \(p.step)", file: file, line: line)
        }
    }

    /// The newest checkpoint of `run` loads (tensors checked against their checksums) and holds
    /// trainer state for its step.
    static func assertNewestCheckpointIsWhole(_ run: String, atLeast step: Int, file: StaticString = #filePath, line: UInt = #line) {
        let all = RunDirectory(path: run).checkpoints()
        guard let newest = all.last else { return XCTFail("no checkpoint in \(run)", file: file, line: line) }
        XCTAssertGreaterThanOrEqual(RunDirectory.checkpointStep(newest) ?? -1, step, file: file, line: line)
        XCTAssertNoThrow(try ResumePoint.newest(in: RunDirectory(path: run)), "newest checkpoint \(newest)", file: file, line: line)
    }

    // MARK: - Processes

    /// The environment of process `pid` (nil when it is gone or unreadable).
    static func environment(of pid: Int32) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
        return parseEnvironment(data)
    }

    /// NUL-separated NAME=VALUE pairs.
    static func parseEnvironment(_ data: Data) -> [String: String] {
        var env: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let s = String(decoding: entry, as: UTF8.self)
            guard let eq = s.firstIndex(of: "=") else { continue }
            env[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        return env
    }

    /// Pids of live `gpt` processes whose environment has every pair of `match`.
    static func gptProcesses(matching match: [String: String]) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap(Int32.init).filter { pid in
            guard let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
                  comm.trimmingCharacters(in: .whitespacesAndNewlines) == "gpt",
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].split(separator: " ").first != "Z",
                  let env = environment(of: pid) else { return false }
            return match.allSatisfy { env[$0.key] == $0.value }
        }
    }
}

// MARK: - Slurm

/// The one-host cluster of .ci/slurm-up.sh, reached through SLURM_CONF.
struct SlurmCluster {
    let srun: String, sbatch: String, scontrol: String, scancel: String

    /// The cluster, or XCTSkip saying why there is none.
    static func require() throws -> SlurmCluster {
        #if !os(Linux)
        throw XCTSkip("the Slurm tests run on Linux")
        #else
        guard let srun = Cluster.tool("srun"), let sbatch = Cluster.tool("sbatch"), let scontrol = Cluster.tool("scontrol"),
              let scancel = Cluster.tool("scancel"), let sinfo = Cluster.tool("sinfo") else {
            throw XCTSkip("no Slurm client (apt-get install slurm-client slurmctld slurmd munge; then .ci/slurm-up.sh)")
        }
        guard let conf = ProcessInfo.processInfo.environment["SLURM_CONF"] else {
            throw XCTSkip("no Slurm cluster reachable: SLURM_CONF is not set (start one with `. $(.ci/slurm-up.sh)/env`)")
        }
        let probe = try Cluster.Job(sinfo, ["-h", "-o", "%a %t"])
        guard probe.wait(15), probe.process.terminationStatus == 0, probe.output.contains("up") else {
            probe.kill()
            throw XCTSkip("no Slurm cluster reachable through SLURM_CONF=\(conf): sinfo said \(probe.output.prefix(200))")
        }
        return SlurmCluster(srun: srun, sbatch: sbatch, scontrol: scontrol, scancel: scancel)
        #endif
    }

    /// JobState and Restarts of a job (nil once Slurm has forgotten it).
    func state(of job: String) -> (state: String, restarts: Int)? {
        guard let r = try? Cluster.run(scontrol, ["show", "job", job, "--oneliner"], timeout: 20), r.status == 0 else { return nil }
        func field(_ name: String) -> String? {
            r.output.split(separator: " ").first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }
        guard let s = field("JobState") else { return nil }
        return (s, field("Restarts").flatMap { Int($0) } ?? 0)
    }

    static let finalStates: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"]

    /// Waits at most `seconds` for the job to reach a final state (a requeued job passes through
    /// PENDING again); returns it, or nil at the deadline.
    func waitForEnd(of job: String, seconds: Double) -> (state: String, restarts: Int)? {
        var last: (state: String, restarts: Int)?
        let done = Cluster.waitUntil(seconds, every: 0.5) {
            last = state(of: job)
            return last.map { Self.finalStates.contains($0.state) } ?? false
        }
        return done ? last : nil
    }

    /// Cancels every job named `name` (clean-up after a failed test).
    func cancel(name: String) {
        _ = try? Cluster.run(scancel, ["--name", name, "--full"], timeout: 20)
    }
}

// MARK: - Two hosts

/// Two network namespaces TAG-a (10.231.0.1) and TAG-b (10.231.0.2) joined by a veth pair.
struct EmulatedHosts {
    let tag: String
    var a: String { tag + "-a" }
    var b: String { tag + "-b" }
    static let addressA = "10.231.0.1", addressB = "10.231.0.2"
    private static let script = Cluster.scripts + "/netns.sh"

    /// Creates them, or XCTSkip when this machine cannot (not root, no CAP_NET_ADMIN, no iproute2).
    static func make() throws -> EmulatedHosts {
        #if !os(Linux)
        throw XCTSkip("network namespaces are Linux only")
        #else
        guard Cluster.tool("ip") != nil else { throw XCTSkip("no `ip` (apt-get install iproute2)") }
        guard getuid() == 0 else { throw XCTSkip("network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)") }
        let hosts = EmulatedHosts(tag: "g2t" + String(UInt32.random(in: 0..<UInt32.max), radix: 36))
        let r = try Cluster.run(script, ["up", hosts.tag], timeout: 30)
        guard r.status == 0 else {
            hosts.remove()
            throw XCTSkip("cannot create network namespaces here: \(r.output.prefix(300))")
        }
        return hosts
        #endif
    }

    /// Takes the link between them down.
    func cut() throws {
        let r = try Cluster.run(Self.script, ["cut", tag], timeout: 20)
        XCTAssertEqual(r.status, 0, r.output)
    }

    /// Kills whatever still runs inside and deletes both namespaces.
    func remove() {
        _ = try? Cluster.run(Self.script, ["down", tag], timeout: 30)
    }

    /// Pids of processes inside namespace `ns`.
    func pids(in ns: String) -> [String] {
        guard let ip = Cluster.tool("ip"), let r = try? Cluster.run(ip, ["netns", "pids", ns], timeout: 10) else { return [] }
        return r.output.split(separator: "\n").map(String.init)
    }

    /// Bytes TAG-a has sent over the veth pair (its only link to TAG-b).
    func bytesSentFromA() -> Int? {
        guard let ip = Cluster.tool("ip"), let r = try? Cluster.run(ip, ["-n", a, "-s", "-j", "link", "show", tag + "va"], timeout: 10),
              r.status == 0, let links = try? JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [[String: Any]],
              let stats = links.first?["stats64"] as? [String: Any], let tx = stats["tx"] as? [String: Any] else { return nil }
        return (tx["bytes"] as? NSNumber)?.intValue
    }
}

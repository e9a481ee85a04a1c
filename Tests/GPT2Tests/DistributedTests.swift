// Data parallelism: launcher detection (pure), and `mpirun -np 2 gpt train` against one process
// with twice the gradient accumulation, a killed rank, a missing MPI library, resume with
// another world size. The mpirun tests skip when Open MPI's mpirun is not installed.
import Foundation
import XCTest
@testable import GPT2

final class LaunchTests: XCTestCase {
    func testSingleProcessWhenNothingIsSet() throws {
        XCTAssertEqual(try LaunchInfo.detect(environment: [:]), .single)
        XCTAssertEqual(try LaunchInfo.detect(environment: ["PATH": "/bin", "LOCAL_RANK": "3"]), .single)
    }

    func testEachLauncher() throws {
        let ompi = try LaunchInfo.detect(environment: ["OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1"])
        XCTAssertEqual(ompi, LaunchInfo(launcher: .openMPI, rank: 1, worldSize: 4, localRank: 1,
                                        rankVariable: "OMPI_COMM_WORLD_RANK", sizeVariable: "OMPI_COMM_WORLD_SIZE"))
        XCTAssertTrue(ompi.isDistributed)
        let pmi = try LaunchInfo.detect(environment: ["PMI_RANK": "2", "PMI_SIZE": "3", "MPI_LOCALRANKID": "0"])
        XCTAssertEqual([pmi.rank, pmi.worldSize, pmi.localRank], [2, 3, 0])
        XCTAssertEqual(pmi.launcher, .pmi)
        let slurm = try LaunchInfo.detect(environment: ["SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"])
        XCTAssertEqual([slurm.rank, slurm.worldSize, slurm.localRank], [5, 8, 1])
        XCTAssertEqual(slurm.launcher, .slurm)
        // srun's step size wins over the allocation's task count.
        let step = try LaunchInfo.detect(environment: ["SLURM_PROCID": "1", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "2"])
        XCTAssertEqual([step.worldSize], [2])
        XCTAssertEqual(step.sizeVariable, "SLURM_STEP_NUM_TASKS")
        let torch = try LaunchInfo.detect(environment: ["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"])
        XCTAssertEqual(torch.launcher, .torchrun)
        XCTAssertEqual([torch.rank, torch.worldSize, torch.localRank], [0, 2, 0])
        let one = try LaunchInfo.detect(environment: ["RANK": "0", "WORLD_SIZE": "1"])
        XCTAssertFalse(one.isDistributed)
    }

    func testMPIWinsInsideASlurmAllocation() throws {
        let env = ["SLURM_PROCID": "0", "SLURM_NTASKS": "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4",
                   "RANK": "9", "WORLD_SIZE": "1"]
        let l = try LaunchInfo.detect(environment: env)
        XCTAssertEqual(l.launcher, .openMPI)
        XCTAssertEqual(l.rank, 3)
    }

    func testBadValuesNameTheVariable() {
        let cases: [([String: String], String)] = [
            (["RANK": "x", "WORLD_SIZE": "2"], "environment variable RANK='x' is not a non-negative integer"),
            (["RANK": "0"], "RANK is set but WORLD_SIZE is not; set both (or neither, for one process)"),
            (["SLURM_PROCID": "0"], "SLURM_PROCID is set but SLURM_STEP_NUM_TASKS is not; set both (or neither, for one process)"),
            (["PMI_RANK": "2", "PMI_SIZE": "2"], "PMI_RANK=2 is outside 0..<PMI_SIZE=2"),
            (["OMPI_COMM_WORLD_RANK": "-1", "OMPI_COMM_WORLD_SIZE": "2"], "OMPI_COMM_WORLD_RANK=-1 is outside 0..<OMPI_COMM_WORLD_SIZE=2"),
            (["RANK": "0", "WORLD_SIZE": "0"], "environment variable WORLD_SIZE=0: the number of processes must be at least 1"),
            (["RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "-3"], "environment variable LOCAL_RANK='-3' is not a non-negative integer"),
        ]
        for (env, message) in cases {
            XCTAssertThrowsError(try LaunchInfo.detect(environment: env)) { XCTAssertEqual($0.localizedDescription, message) }
        }
    }

    func testMPILibraryCandidates() {
        let c = MPILibrary.candidates(environment: ["LD_LIBRARY_PATH": "/opt/mpi/lib::/x"])
        XCTAssertEqual(Array(c.prefix(3)), ["/opt/mpi/lib/libmpi.so.40", "/x/libmpi.so.40", "libmpi.so.40"])
        XCTAssertTrue(c.contains("libmpi.so.12"))
        XCTAssertEqual(MPILibrary.candidates(environment: ["GPT2_MPI_LIBRARY": "/my/libmpi.so", "LD_LIBRARY_PATH": "/x"]), ["/my/libmpi.so"])
    }
}

final class DistributedTests: XCTestCase {
    static let rootEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "GPT2_NUM_THREADS": "1"]

    static func mpirun() throws -> String {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") + ["/usr/bin", "/usr/local/bin"]
        guard let p = dirs.map({ "\($0)/mpirun" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)")
        }
        return p
    }

    static func gpt() throws -> String {
        let exe = TestPaths.products.appendingPathComponent("gpt").path
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw XCTSkip("gpt executable not built at \(exe)") }
        return exe
    }

    /// A 2-layer, 32-wide model on B=2 T=16, total batch 64 tokens.
    static func trainArguments(data: String, out: String, steps: Int) -> [String] {
        ["train", "--data", data, "--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "2", "-T", "16",
         "--total-batch", "64", "--max-steps", "\(steps)", "--warmup-steps", "2", "--val-every", "1000", "--sample-every", "1000",
         "--precision", "fp32", "--out", out]   // fp32: ranks against one process at 1e-5
    }

    static func metrics(_ dir: String, kind: String) throws -> [(step: Int, value: Double)] {
        let text = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").compactMap { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return o["kind"] as? String == kind ? (o["step"] as! Int, o["value"] as! Double) : nil
        }
    }

    func testTwoRanksMatchOneProcessWithTwiceTheAccumulation() throws {
        let mpirun = try Self.mpirun(), gpt = try Self.gpt()
        let data = try TrainingTests.makeShards(tokens: 4000, vocab: 50257)
        let work = try TestPaths.temporaryDirectory().path
        let hella = ["--hellaswag-every", "1000", "--hellaswag-data", HellaSwagTests.jsonl, "--hellaswag-limit", "3"]
        let one = try runProcess(gpt, Self.trainArguments(data: data, out: work + "/one", steps: 5) + hella,
                                 environment: Self.rootEnvironment)
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertTrue(one.text.contains("= 2 micro-step(s)"), one.text)
        let two = try runProcess(mpirun, ["-np", "2", "--oversubscribe", gpt] + Self.trainArguments(data: data, out: work + "/two", steps: 5) + hella,
                                 environment: Self.rootEnvironment)
        XCTAssertEqual(two.status, 0, two.text + two.stderr)
        XCTAssertTrue(two.text.contains("data parallel: 2 ranks (mpirun (Open MPI))"), two.text)
        XCTAssertTrue(two.text.contains("= 1 micro-step(s)"), two.text)
        // Only rank 0 prints.
        XCTAssertEqual(two.text.components(separatedBy: "step     0 |").count, 2, two.text)

        let a = try Self.metrics(work + "/one", kind: "train"), b = try Self.metrics(work + "/two", kind: "train")
        XCTAssertEqual(a.map(\.step), [0, 1, 2, 3, 4])
        XCTAssertEqual(b.map(\.step), a.map(\.step))
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.value, y.value, accuracy: 1e-5, "train loss at step \(x.step): 1 process \(x.value), 2 ranks \(y.value)")
        }
        // HellaSwag at step 0 (same weights): the examples split across ranks sum to the same counts.
        let ha = try Self.metrics(work + "/one", kind: "hella"), hb = try Self.metrics(work + "/two", kind: "hella")
        XCTAssertEqual(ha.map(\.step), [0, 4])
        XCTAssertEqual(hb.map(\.step), [0, 4])
        XCTAssertEqual(ha.first?.value, hb.first?.value)
        XCTAssertTrue(two.text.contains("HellaSwag accuracy: ") && two.text.contains("/3="), two.text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/two/checkpoint_000005.safetensors"))

        // A 2-rank checkpoint does not resume in one process.
        let resumed = try runProcess(gpt, Self.trainArguments(data: data, out: work + "/two", steps: 6) + ["--resume"],
                                     environment: Self.rootEnvironment)
        XCTAssertNotEqual(resumed.status, 0)
        XCTAssertTrue(resumed.stderr.contains("was written by a run with 2 rank(s); resume it with 2 (this run has 1)"), resumed.stderr)
    }

    func testAKilledRankStopsTheJob() throws {
        #if !os(Linux)
        throw XCTSkip("finds the ranks through /proc")
        #else
        let mpirun = try Self.mpirun(), gpt = try Self.gpt()
        let data = try TrainingTests.makeShards(tokens: 4000, vocab: 50257)
        let out = try TestPaths.temporaryDirectory().path + "/run"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirun)
        p.arguments = ["-np", "2", "--oversubscribe", gpt] + Self.trainArguments(data: data, out: out, steps: 100_000)
        p.environment = ProcessInfo.processInfo.environment.merging(Self.rootEnvironment) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // Wait for training to start, then kill rank 1.
        var rank1: Int32?
        let start = Date()
        while Date().timeIntervalSince(start) < 60 {
            if rank1 == nil { rank1 = Self.child(of: p.processIdentifier, withRank: 1) }
            if rank1 != nil, let log = try? String(contentsOfFile: out + "/log.txt", encoding: .utf8), log.contains(" train ") { break }
            usleep(100_000)
        }
        guard let victim = rank1 else { return XCTFail("rank 1 never appeared") }
        kill(victim, SIGKILL)
        let killed = Date()
        while p.isRunning && Date().timeIntervalSince(killed) < 30 { usleep(100_000) }
        XCTAssertFalse(p.isRunning, "mpirun still running 30 s after rank 1 was killed (a rank hangs)")
        if !p.isRunning { XCTAssertNotEqual(p.terminationStatus, 0) }
        #endif
    }

    /// The child process of `parent` whose environment has OMPI_COMM_WORLD_RANK=`rank`.
    static func child(of parent: Int32, withRank rank: Int) -> Int32? {
        guard let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for name in pids {
            guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8) else { continue }
            // "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == parent,
                  let env = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { continue }
            if env.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == "OMPI_COMM_WORLD_RANK=\(rank)" }) { return pid }
        }
        return nil
    }

    func testMultiRankLaunchWithoutMPIFailsClearly() throws {
        let gpt = try Self.gpt()
        let data = try TrainingTests.makeShards(tokens: 4000, vocab: 50257)
        let r = try runProcess(gpt, Self.trainArguments(data: data, out: try TestPaths.temporaryDirectory().path + "/r", steps: 1),
                               environment: ["OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2",
                                             "GPT2_MPI_LIBRARY": "/nonexistent/libmpi.so"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("a multi-process launch needs MPI, but no MPI library could be loaded (tried /nonexistent/libmpi.so"), r.stderr)
    }
}

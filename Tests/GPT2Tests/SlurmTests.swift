// gpt train under Slurm, on the one-host cluster of .ci/slurm-up.sh (skipped when none is
// reachable through SLURM_CONF): `srun -n 2 --mpi=pmix` against one process with twice the
// accumulation; examples/slurm/train-cpu.sbatch stopped by USR1 (what `--signal=USR1@N` sends
// before the time limit), requeued, and resumed to the same log as an uninterrupted run; a
// cancelled job and a killed rank end the job within a bound and leave a whole checkpoint.
import Foundation
import XCTest
@testable import GPT2
#if canImport(Glibc)
import Glibc
#endif

final class SlurmTests: XCTestCase {
    /// An uninterrupted `srun -n 2` run: its log, its output and each rank's launch environment.
    struct TwoRankRun {
        var log: [String]
        var output: String
        var environments: [[String: String]]
    }

    /// Made once by whichever test needs it first.
    nonisolated(unsafe) static var twoRankRun: Result<TwoRankRun, Error>?

    func uninterruptedTwoRankRun(_ slurm: SlurmCluster) throws -> TwoRankRun {
        if let done = Self.twoRankRun { return try done.get() }
        let result = Result { () throws -> TwoRankRun in
            let gpt = try DistributedTests.gpt(), data = try Cluster.data.get()
            let work = try TestPaths.temporaryDirectory().path
            let name = "gpt2-test-srun-\(UUID().uuidString.prefix(8))"
            defer { slurm.cancel(name: name) }
            let r = try Cluster.run(slurm.srun, ["-n", "2", "--mpi=pmix", "--kill-on-bad-exit=1", "--job-name", name, "--chdir", work,
                                                 Cluster.scripts + "/rank-env.sh", work + "/ranks", gpt]
                                        + Cluster.trainArguments(data: data, steps: Cluster.steps) + ["--out", work + "/two"],
                                    timeout: 180)
            guard r.status == 0 else { throw Cluster.CLIFailure(text: "srun -n 2 gpt train exited \(r.status):\n\(r.output)") }
            let dir = work + "/ranks/host"
            let envs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("env.") }
                .map { Cluster.parseEnvironment(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
            return TwoRankRun(log: try Cluster.logLines(work + "/two"), output: r.output, environments: envs)
        }
        Self.twoRankRun = result
        return try result.get()
    }

    func testSrunTwoRanksMatchOneProcessWithTwiceTheAccumulation() throws {
        let slurm = try SlurmCluster.require()
        let two = try uninterruptedTwoRankRun(slurm)
        XCTAssertTrue(two.output.contains("data parallel: 2 ranks (srun (Slurm)), MPI from "), two.output)
        XCTAssertTrue(two.output.contains("= 1 micro-step(s)"), two.output)
        XCTAssertEqual(two.output.components(separatedBy: "step     0 |").count, 2, "only rank 0 prints:\n\(two.output)")
        Cluster.assertSameTrainLosses(try Cluster.oneProcessLog.get(), two.log, "srun -n 2")

        // What each rank read from srun's variables: ranks 0 and 1 of 2, both on this one node.
        let launches = try two.environments.map { try LaunchInfo.detect(environment: $0) }.sorted { $0.rank < $1.rank }
        XCTAssertEqual(launches.map(\.launcher), [.slurm, .slurm])
        XCTAssertEqual(launches.map(\.rank), [0, 1])
        XCTAssertEqual(launches.map(\.localRank), [0, 1])
        XCTAssertEqual(launches.map(\.worldSize), [2, 2])
        XCTAssertEqual(launches.first?.sizeVariable, "SLURM_STEP_NUM_TASKS")
    }

    /// The GPU scripts cannot run here: they share the CPU script's resume-and-requeue tail word for
    /// word, and their directives ask for the requeue and for USR1 to the ranks (not `B:`, the shell).
    func testExampleScriptsShareTheTestedResumeLogic() throws {
        let marker = "# --auto-resume: continue the run when it has a checkpoint"
        func tail(_ name: String) throws -> String {
            let text = try String(contentsOfFile: Cluster.examples + "/" + name, encoding: .utf8)
            guard let r = text.range(of: marker) else { throw Cluster.CLIFailure(text: "\(name) has no '\(marker)'") }
            return String(text[r.lowerBound...])
        }
        let tested = try tail("train-cpu.sbatch")
        for name in ["train-1node-8gpu.sbatch", "train-multinode-8gpu.sbatch", "train-cpu.sbatch"] {
            XCTAssertEqual(try tail(name), tested, name)
            let text = try String(contentsOfFile: Cluster.examples + "/" + name, encoding: .utf8)
            let directives = text.split(separator: "\n").filter { $0.hasPrefix("#SBATCH ") }.map { String($0.dropFirst(8)) }
            XCTAssertTrue(directives.contains("--requeue"), name)
            XCTAssertTrue(directives.contains { $0.hasPrefix("--signal=USR1@") }, name)
            XCTAssertTrue(directives.contains("--open-mode=append"), name)
            if let bash = Cluster.tool("bash") {
                let r = try Cluster.run(bash, ["-n", Cluster.examples + "/" + name], timeout: 20)
                XCTAssertEqual(r.status, 0, "\(name): \(r.output)")
            }
        }
    }

    /// The CPU example script, made tiny through its environment.
    func submit(_ slurm: SlurmCluster, name: String, work: String, steps: Int, checkpointEvery: Int = 3,
                timeLimit: [String] = ["--time=10"]) throws -> String {
        let gpt = try DistributedTests.gpt(), data = try Cluster.data.get()
        let args = Cluster.trainArguments(data: data, steps: steps, checkpointEvery: checkpointEvery).dropFirst()   // the script adds `train`
        let r = try Cluster.run(slurm.sbatch, ["--parsable", "--job-name", name, "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
                                               "--chdir", work, "--output", work + "/slurm-%j.out"] + timeLimit
                                              + [Cluster.examples + "/train-cpu.sbatch"],
                                environment: ["GPT": gpt, "RUN": work + "/run", "TRAIN_ARGS": args.joined(separator: " ")], timeout: 30)
        let id = r.output.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        guard r.status == 0, Int(id) != nil else { throw Cluster.CLIFailure(text: "sbatch failed: \(r.output)") }
        return id
    }

    func jobOutput(_ work: String, _ job: String) -> String {
        (try? String(contentsOfFile: "\(work)/slurm-\(job).out", encoding: .utf8)) ?? "(no output file)"
    }

    func testBatchScriptStopsOnUSR1RequeuesAndResumesBitIdentically() throws {
        let slurm = try SlurmCluster.require()
        let reference = try uninterruptedTwoRankRun(slurm).log
        let work = try TestPaths.temporaryDirectory().path
        let name = "gpt2-test-requeue-\(UUID().uuidString.prefix(8))"
        defer { slurm.cancel(name: name) }
        let job = try submit(slurm, name: name, work: work, steps: Cluster.steps)

        // Once step 1 is logged, USR1 to the job's steps: what `#SBATCH --signal=USR1@120` sends.
        guard Cluster.waitUntil(120, { ((try? Cluster.logLines(work + "/run")) ?? []).contains { $0.hasPrefix("1 train ") } }) else {
            return XCTFail("step 1 not logged within 120 s:\n\(jobOutput(work, job))")
        }
        let signal = try Cluster.run(slurm.scancel, ["--signal=USR1", job], timeout: 20)
        XCTAssertEqual(signal.status, 0, signal.output)

        // Interrupted, requeued by the script (Slurm holds a requeued job for cred_expire, 10 s
        // here), resumed, finished.
        guard let end = slurm.waitForEnd(of: job, seconds: 150) else {
            return XCTFail("job \(job) not finished 150 s after USR1 (state \(String(describing: slurm.state(of: job)))):\n\(jobOutput(work, job))")
        }
        let output = jobOutput(work, job)
        XCTAssertEqual(end.state, "COMPLETED", output)
        XCTAssertEqual(end.restarts, 1, output)
        XCTAssertTrue(output.contains("interrupted: saved ") && output.contains("continue with: srun -n 2 --mpi=pmix "), output)
        XCTAssertTrue(output.contains("interrupted at a checkpoint; requeueing"), output)
        XCTAssertTrue(output.contains("(restart 1)") && output.contains(" train --resume --out \(work)/run"), output)
        let resumedAt = output.range(of: #"resuming from \S+ at step (\d+)"#, options: .regularExpression).map { String(output[$0]) }
        XCTAssertNotNil(resumedAt, output)
        if let r = resumedAt, let step = Int(r.split(separator: " ").last ?? "") {
            XCTAssertTrue((2..<Cluster.steps).contains(step), "resumed at step \(step), not inside the run: the test did not interrupt it")
        }
        // The log of the interrupted and resumed run is the uninterrupted run's, value for value.
        XCTAssertEqual(try Cluster.logLines(work + "/run"), reference)
    }

    /// The signal before a real time limit: `--time=1 --signal=USR1@20` (the script's own
    /// `--signal=USR1@120`, scaled to a one-minute job) arrives 10 to 40 s after the start, since
    /// slurmctld checks time limits periodically.
    func testTimeLimitSignalCheckpointsAndRequeues() throws {
        let slurm = try SlurmCluster.require()
        let work = try TestPaths.temporaryDirectory().path
        let name = "gpt2-test-timelimit-\(UUID().uuidString.prefix(8))"
        defer { slurm.cancel(name: name) }
        // No checkpoint on the cadence: the only one is the signal's.
        let job = try submit(slurm, name: name, work: work, steps: 100_000, checkpointEvery: 100_000, timeLimit: ["--time=1", "--signal=USR1@20"])
        let requeued = Cluster.waitUntil(90, every: 0.5) { (slurm.state(of: job)?.restarts ?? 0) >= 1 }
        XCTAssertEqual(try Cluster.run(slurm.scancel, [job], timeout: 20).status, 0)
        let output = jobOutput(work, job)
        XCTAssertTrue(requeued, "job \(job) not requeued within 90 s:\n\(output)")
        XCTAssertTrue(output.contains("interrupted: saved \(work)/run/checkpoint_"), output)
        XCTAssertTrue(output.contains("interrupted at a checkpoint; requeueing"), output)
        Cluster.assertNewestCheckpointIsWhole(work + "/run", atLeast: 1)
    }

    func testCancelledJobStopsAtAWholeCheckpoint() throws {
        let slurm = try SlurmCluster.require()
        let work = try TestPaths.temporaryDirectory().path
        let name = "gpt2-test-scancel-\(UUID().uuidString.prefix(8))"
        defer { slurm.cancel(name: name) }
        let job = try submit(slurm, name: name, work: work, steps: 100_000)
        guard Cluster.waitUntil(120, { FileManager.default.fileExists(atPath: work + "/run/checkpoint_000003.safetensors") }) else {
            return XCTFail("no checkpoint after step 3 within 120 s:\n\(jobOutput(work, job))")
        }
        // SIGTERM to every process of the job, SIGKILL KillWait (5 s) later.
        let cancelled = Date()
        XCTAssertEqual(try Cluster.run(slurm.scancel, [job], timeout: 20).status, 0)
        guard let end = slurm.waitForEnd(of: job, seconds: 60) else {
            return XCTFail("job \(job) still not ended 60 s after scancel:\n\(jobOutput(work, job))")
        }
        XCTAssertEqual(end.state, "CANCELLED")
        XCTAssertEqual(end.restarts, 0, "a cancelled job is not requeued")
        XCTAssertTrue(Cluster.waitUntil(30) { Cluster.gptProcesses(matching: ["SLURM_JOB_ID": job]).isEmpty },
                      "ranks of job \(job) still alive \(Int(Date().timeIntervalSince(cancelled))) s after scancel")
        Cluster.assertNewestCheckpointIsWhole(work + "/run", atLeast: 3)
    }

    func testKilledRankFailsTheJobAndLeavesAWholeCheckpoint() throws {
        #if !os(Linux)
        throw XCTSkip("finds the ranks through /proc")
        #else
        let slurm = try SlurmCluster.require()
        let work = try TestPaths.temporaryDirectory().path
        let name = "gpt2-test-kill-\(UUID().uuidString.prefix(8))"
        defer { slurm.cancel(name: name) }
        let job = try submit(slurm, name: name, work: work, steps: 100_000)
        guard Cluster.waitUntil(120, { FileManager.default.fileExists(atPath: work + "/run/checkpoint_000003.safetensors") }) else {
            return XCTFail("no checkpoint after step 3 within 120 s:\n\(jobOutput(work, job))")
        }
        let victims = Cluster.gptProcesses(matching: ["SLURM_JOB_ID": job, "SLURM_PROCID": "1"])
        guard let victim = victims.first, victims.count == 1 else { return XCTFail("rank 1 of job \(job): found \(victims)") }
        kill(victim, SIGKILL)
        let killed = Date()
        // srun --kill-on-bad-exit (in the script) ends the step; the script does not requeue a failure.
        guard let end = slurm.waitForEnd(of: job, seconds: 60) else {
            return XCTFail("job \(job) still not ended 60 s after rank 1 was killed (a rank hangs):\n\(jobOutput(work, job))")
        }
        XCTAssertLessThan(Date().timeIntervalSince(killed), 60)
        let output = jobOutput(work, job)
        XCTAssertEqual(end.state, "FAILED", output)
        XCTAssertEqual(end.restarts, 0, output)
        XCTAssertTrue(output.contains("task 1: Killed"), output)
        XCTAssertFalse(output.contains("requeueing"), output)
        XCTAssertTrue(Cluster.gptProcesses(matching: ["SLURM_JOB_ID": job]).isEmpty, "a rank of job \(job) is still alive")
        Cluster.assertNewestCheckpointIsWhole(work + "/run", atLeast: 3)
        #endif
    }
}

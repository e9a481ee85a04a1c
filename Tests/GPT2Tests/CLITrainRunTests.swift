// `gpt train` as a user drives it: the printed resume command works as printed and continues
// the same run; resume finds the run or says why not; one writer per run directory; kill -9
// leaves nothing in the way; signals stop at a micro-step; a second Ctrl-C exits at once;
// numbers are validated; stdout survives kill -9.
import Foundation
import XCTest
@testable import GPT2

final class CLITrainRunTests: XCTestCase {
    static let tiny = ["--layers", "2", "--heads", "2", "--embd", "32", "--seq", "32", "-B", "2", "-T", "16", "--total-batch", "32"]

    /// A running `gpt train` whose stdout goes to a file.
    final class Training {
        let process = Process()
        let stdout: String
        /// Runs `gpt` with `arguments`, or `/bin/sh -c shellCommand`.
        init(_ arguments: [String], shellCommand: String? = nil) throws {
            let gpt = TestPaths.products.appendingPathComponent("gpt").path
            guard FileManager.default.isExecutableFile(atPath: gpt) else { throw XCTSkip("gpt not built") }
            let exe = shellCommand == nil ? gpt : "/bin/sh"
            stdout = try TestPaths.temporaryDirectory().appendingPathComponent("stdout").path
            FileManager.default.createFile(atPath: stdout, contents: nil)
            process.executableURL = URL(fileURLWithPath: exe)
            process.arguments = shellCommand.map { ["-c", "exec " + $0] } ?? arguments
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdout))
            process.standardError = process.standardOutput
            try process.run()
        }
        var output: String { (try? String(contentsOfFile: stdout, encoding: .utf8)) ?? "" }
        /// Waits (bounded) until `stdout` has `n` step lines.
        func waitForSteps(_ n: Int, file: StaticString = #filePath, line: UInt = #line) {
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline && process.isRunning {
                if output.components(separatedBy: "\nstep ").count - 1 >= n { return }
                Thread.sleep(forTimeInterval: 0.02)
            }
            XCTFail("no \(n) steps: \(output)", file: file, line: line)
        }
        func signal(_ s: Int32) { kill(process.processIdentifier, s) }
        func wait() -> Int32 {
            process.waitUntilExit()
            return process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus
        }
    }

    static func shards() throws -> String { try TrainingTests.makeShards(tokens: 20000, vocab: 50257) }

    static func logSteps(_ run: String, kind: String) throws -> [Int] {
        let lines = try String(contentsOfFile: run + "/log.txt", encoding: .utf8).split(separator: "\n")
        var steps: [Int] = []
        for line in lines {
            let f = line.split(separator: " ")
            if f.count == 3 && f[1] == kind, let s = Int(f[0]) { steps.append(s) }
        }
        return steps
    }

    /// Ctrl-C prints a command; run as printed it continues the same run with its own data and
    /// cadence (not the embedded Shakespeare, not the default cadence), each step logged once.
    func testPrintedResumeCommandContinuesTheSameRun() throws {
        let data = try Self.shards()
        let run = try TestPaths.temporaryDirectory().appendingPathComponent("my run").path
        let first = try Training(["train", "--data", data, "--out", run, "--max-steps", "100000", "--val-every", "3", "--val-steps", "1",
                                  "--sample-every", "100000", "--checkpoint-every", "100000"] + Self.tiny)
        first.waitForSteps(4)
        first.signal(SIGINT)
        XCTAssertEqual(first.wait(), 0, first.output)
        guard let line = first.output.split(separator: "\n").first(where: { $0.contains("continue with: ") }) else {
            return XCTFail("no resume command printed: \(first.output)")
        }
        let command = String(line[line.range(of: "continue with: ")!.upperBound...])
        XCTAssertTrue(command.contains("'\(run)'"), command)   // quoted: the path has a space
        let stopped = try Self.logSteps(run, kind: "train").count
        // Run it exactly as printed, through a shell.
        let second = try Training([], shellCommand: command)
        second.waitForSteps(stopped + 4)
        second.signal(SIGTERM)
        XCTAssertEqual(second.wait(), 0, second.output)
        XCTAssertTrue(second.output.contains("data: \(data)"), second.output)
        XCTAssertTrue(second.output.contains("every: validation 3 (1 batches)"), second.output)
        XCTAssertTrue(second.output.contains("resuming from"), second.output)
        let steps = try Self.logSteps(run, kind: "train")
        XCTAssertEqual(steps, Array(0..<steps.count))        // each step once, in order
        XCTAssertGreaterThan(steps.count, stopped)
        XCTAssertEqual(try Self.logSteps(run, kind: "val"), Array(stride(from: 0, to: steps.count, by: 3)).filter { $0 <= steps.last! })
    }

    func testResumeFindsTheRunOrSaysWhy() throws {
        let cwd = try TestPaths.temporaryDirectory().path
        let missing = try runGPT(["train", "--resume", "--out", cwd + "/runs/nope", "--max-steps", "1"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("'\(cwd)/runs/nope' does not exist"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: cwd + "/runs/nope"))
        let none = try runGPT(["train", "--resume", "--max-steps", "1"], currentDirectory: cwd)
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("no run under 'runs' holds a checkpoint"), none.stderr)

        // Two runs with checkpoints, then a newer one without: --resume takes the second.
        let data = try Self.shards()
        for name in ["a", "b"] {
            let r = try runGPT(["train", "--data", data, "--out", "runs/" + name, "--max-steps", "2", "--val-every", "1000"] + Self.tiny,
                               currentDirectory: cwd)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try FileManager.default.createDirectory(atPath: cwd + "/runs/c", withIntermediateDirectories: true)
        let resumed = try runGPT(["train", "--resume", "--max-steps", "3"], currentDirectory: cwd)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.text.contains("run directory: runs/b"), resumed.text)
        XCTAssertTrue(resumed.text.contains("note: --max-steps 3 replaces the run's 2"), resumed.text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cwd + "/runs/b/checkpoint_000003.safetensors"))
    }

    /// The same command for every requeue of a cluster job: starts, then resumes.
    func testAutoResumeStartsThenResumes() throws {
        let data = try Self.shards()
        let run = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        let args = ["train", "--data", data, "--out", run, "--auto-resume", "--val-every", "1000"] + Self.tiny
        let first = try runGPT(args + ["--max-steps", "2"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertFalse(first.text.contains("resuming"), first.text)
        let second = try runGPT(args + ["--max-steps", "4"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.text.contains("resuming from \(run)/checkpoint_000002.safetensors at step 2"), second.text)
        XCTAssertEqual(try Self.logSteps(run, kind: "train"), [0, 1, 2, 3])
    }

    func testOneWriterPerRunDirectory() throws {
        let data = try Self.shards()
        let run = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        let first = try Training(["train", "--data", data, "--out", run, "--max-steps", "100000", "--val-every", "100000",
                                  "--sample-every", "100000", "--checkpoint-every", "2"] + Self.tiny)
        first.waitForSteps(3)
        for args in [["--resume"], []] {
            let second = try runGPT(["train", "--data", data, "--out", run, "--max-steps", "5"] + args + Self.tiny)
            XCTAssertEqual(second.status, 1)
            XCTAssertTrue(second.stderr.contains("in use by another gpt train (pid \(first.process.processIdentifier))"), second.stderr)
        }
        first.signal(SIGTERM)
        XCTAssertEqual(first.wait(), 0)
    }

    /// kill -9 leaves a lock file (not held) and maybe a checkpoint's temporary file: neither
    /// blocks the resume, and the temporary file is removed.
    func testKillNineLeavesNothingInTheWay() throws {
        let data = try Self.shards()
        let run = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        let first = try Training(["train", "--data", data, "--out", run, "--max-steps", "100000", "--val-every", "100000",
                                  "--sample-every", "100000", "--checkpoint-every", "2"] + Self.tiny)
        first.waitForSteps(5)
        first.signal(SIGKILL)
        _ = first.wait()
        XCTAssertTrue(first.output.contains("step"), "stdout to a file must be line-buffered: \(first.output)")
        let stale = run + "/.checkpoint_000999.safetensors.tmp-\(first.process.processIdentifier)-12345"
        FileManager.default.createFile(atPath: stale, contents: Data(count: 1000))
        let resumed = try runGPT(["train", "--resume", "--out", run, "--max-steps", "8"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.text.contains("removed 1 temporary file(s)"), resumed.text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        let steps = try Self.logSteps(run, kind: "train")
        XCTAssertEqual(steps, Array(0..<8))
    }

    /// SIGUSR1 (Slurm's warning before a time limit) and SIGHUP stop between micro-steps: the
    /// checkpoint is the last whole step and every logged step is whole.
    func testSignalsStopBetweenMicroSteps() throws {
        let data = try Self.shards()
        for sig in [SIGUSR1, SIGHUP] {
            let run = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
            let t = try Training(["train", "--data", data, "--out", run, "--max-steps", "100000", "--val-every", "100000",
                                  "--sample-every", "100000", "--checkpoint-every", "100000", "--layers", "2", "--heads", "2",
                                  "--embd", "32", "--seq", "32", "-B", "2", "-T", "16", "--total-batch", "640"])   // 20 micro-steps
            t.waitForSteps(1)
            t.signal(sig)
            XCTAssertEqual(t.wait(), 0, t.output)
            let steps = try Self.logSteps(run, kind: "train").count
            let files = try FileManager.default.contentsOfDirectory(atPath: run)
            XCTAssertTrue(files.contains(String(format: "checkpoint_%06d.safetensors", steps)), "signal \(sig): \(files)")
        }
    }

    func testSecondInterruptExitsAtOnce() throws {
        let data = try Self.shards()
        let run = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        let t = try Training(["train", "--data", data, "--out", run, "--max-steps", "100000", "--val-every", "100000",
                              "--sample-every", "100000", "--layers", "2", "--heads", "2", "--embd", "128", "--seq", "32",
                              "-B", "4", "-T", "32", "--total-batch", "512"])
        t.waitForSteps(1)
        t.signal(SIGINT)
        Thread.sleep(forTimeInterval: 0.05)   // two pending SIGINTs would merge into one
        t.signal(SIGINT)
        XCTAssertEqual(t.wait(), 130, t.output)
        XCTAssertTrue(t.output.contains("second interrupt"), t.output)
    }

    func testNumbersAreValidatedAndAFailedRunLeavesNoDirectory() throws {
        let data = try Self.shards()
        let root = try TestPaths.temporaryDirectory().path
        for (args, name) in [(["--max-steps", "-5"], "--max-steps"), (["--max-lr=-0.1"], "--max-lr"), (["--warmup-steps=-3"], "--warmup-steps"),
                             (["--val-every", "0"], "--val-every"), (["--max-lr", "nan"], "--max-lr"), (["-B", "-2"], "-B")] {
            let r = try runGPT(["train", "--data", data, "--out", root + "/run"] + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(name), "\(args): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/run"), "\(args) left a run directory")
        }
        // A failure after the run directory was made (T beyond the context) removes it too.
        let r = try runGPT(["train", "--data", data, "--out", root + "/run2", "--layers", "1", "--heads", "1", "--embd", "8", "--seq", "8", "-T", "16"])
        XCTAssertEqual(r.status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/run2"), r.stderr)
        let file = try runGPT(["train", "--data", data + "/t_train_000001.npy", "--out", root + "/run3"])
        XCTAssertEqual(file.status, 1)
        XCTAssertTrue(file.stderr.contains("is a regular file, not a directory; --data takes a directory"), file.stderr)
    }

    /// `--data DIR --model d4` on a small dataset: derived defaults, each explained.
    func testDefaultsForSmallDataAreExplained() throws {
        let data = try Self.shards()
        let root = try TestPaths.temporaryDirectory().path
        let r = try runGPT(["train", "--data", data, "--out", root + "/run", "--model", "d2", "--seq", "64", "--max-steps", "2",
                            "--val-steps", "1", "--sample-tokens", "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.text.contains("note: total batch 256 tokens (1 micro-step(s) of B=4 T=64)"), r.text)
        XCTAssertTrue(r.text.contains("note: warmup 1 steps"), r.text)
        // The default CPU precision is the fastest that passes its start-up check, stated in the header.
        let bf16 = CPUMatmulPath.bf16AVX512.unavailableReason == nil || CPUMatmulPath.bf16AMX.unavailableReason == nil
        XCTAssertTrue(r.text.contains(bf16 ? "device: CPU, precision bf16-" : "device: CPU, precision fp32"), r.text)
    }

    /// --precision bf16 trains where the CPU has bf16 instructions and says why not elsewhere.
    func testBF16TrainingOnTheCPU() throws {
        let data = try Self.shards()
        let run = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        let r = try runGPT(["train", "--data", data, "--out", run, "--max-steps", "3", "--val-every", "1000", "--precision", "bf16"] + Self.tiny)
        if CPUMatmulPath.bf16AVX512.unavailableReason == nil || CPUMatmulPath.bf16AMX.unavailableReason == nil {
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.text.contains("device: CPU, precision bf16-"), r.text)
            XCTAssertEqual(try Self.logSteps(run, kind: "train"), [0, 1, 2])
        } else {
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains("bf16 is unavailable on this CPU"), r.stderr)
        }
    }
}


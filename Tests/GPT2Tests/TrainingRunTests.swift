// The training run in the library, in-process: cadence, checkpoint rotation, stop and resume
// (bit-identical, each step logged once), the spike guard, trainer-state validation, the run
// directory's lock and stale temporary files, whole-line logs, derived defaults.
import Foundation
import XCTest
@testable import GPT2

final class TrainingRunTests: XCTestCase {
    /// A small run's configuration on `data`: B=2 T=16, `micro` micro-steps per step.
    static func configuration(data: String, steps: Int, micro: Int = 1) -> RunConfiguration {
        var o = TrainOptions()
        o.B = 2; o.T = 16; o.totalBatch = 32 * micro; o.maxSteps = steps; o.warmupSteps = 2; o.maxLR = 3e-3; o.shuffle = true
        return RunConfiguration(data: data, options: o, valEvery: 3, valSteps: 2, sampleEvery: 5, samplePrompt: "a", sampleTokens: 4,
                                checkpointEvery: 4, keepCheckpoints: 2, tensorboard: false)
    }

    /// A run of a fresh tiny model (or `model`) in `dir`, resuming from its newest checkpoint when
    /// `resume`. Events go to `events`.
    static func makeRun(dir: String, config: RunConfiguration, resume: Bool, events: @escaping (TrainingRun.Event) -> Void = { _ in }) throws -> TrainingRun {
        let run = RunDirectory(path: dir)
        try run.create()
        var model = TrainingTests.tinyModel()
        var point: ResumePoint?
        if resume {
            point = try ResumePoint.newest(in: run)
            model = point!.model
        }
        let t = config.options
        let trainer = try Trainer(model: model, options: t,
                                  train: DataLoader(directory: config.data, split: .train, B: t.B, T: t.T, shuffle: t.shuffle, seed: t.seed),
                                  val: DataLoader(directory: config.data, split: .val, B: t.B, T: t.T))
        trainer.spikeGuard = SpikeGuard(options: config.spikeGuard, vocabSize: model.config.vocabSize)
        if let point { try trainer.restore(point.state) }
        return try TrainingRun(directory: run, configuration: config, trainer: trainer, host: model, resumedFrom: point,
                               tokenizer: .gpt2, events: events)
    }

    static func trainLines(_ dir: String) throws -> [String] {
        try String(contentsOfFile: dir + "/log.txt", encoding: .utf8).split(separator: "\n").map(String.init).filter { $0.contains(" train ") }
    }

    func testCadenceAndRotation() throws {
        let data = try TrainingTests.makeShards(tokens: 4000)
        let dir = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        var validations: [Int] = [], samples: [Int] = [], checkpoints: [String] = [], steps: [Int] = []
        let run = try Self.makeRun(dir: dir, config: Self.configuration(data: data, steps: 10), resume: false) { e in
            switch e {
            case .validation(let s, _): validations.append(s)
            case .samples(let s, let texts): samples.append(s); XCTAssertEqual(texts.count, 4)
            case .checkpoint(let p): checkpoints.append((p as NSString).lastPathComponent)
            case .step(let s): steps.append(s.step)
            default: break
            }
        }
        XCTAssertEqual(try run.run(stopRequested: { false }), .finished)
        XCTAssertEqual(steps, Array(0..<10))
        XCTAssertEqual(validations, [0, 3, 6, 9])          // every 3 and the last step
        XCTAssertEqual(samples, [5, 9])                     // every 5 (not step 0) and the last
        XCTAssertEqual(checkpoints, ["checkpoint_000004.safetensors", "checkpoint_000008.safetensors", "checkpoint_000010.safetensors"])
        XCTAssertEqual(RunDirectory(path: dir).checkpoints().map { ($0 as NSString).lastPathComponent },
                       ["checkpoint_000008.safetensors", "checkpoint_000010.safetensors"])   // keep 2
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/loss.svg"))
        let (saved, model) = try RunConfiguration.load(path: dir + "/run.json")
        XCTAssertEqual(saved, Self.configuration(data: data, steps: 10))
        XCTAssertEqual(model, TrainingTests.tinyModel().config)
    }

    /// Stop after step 5 (as a signal would), resume in a new process-like object: the losses and
    /// the log equal an uninterrupted run, each step once.
    func testStopAndResumeContinueTheSameRun() throws {
        let data = try TrainingTests.makeShards(tokens: 4000)
        let root = try TestPaths.temporaryDirectory()
        let straight = root.appendingPathComponent("straight").path, split = root.appendingPathComponent("split").path
        let config = Self.configuration(data: data, steps: 10, micro: 2)
        XCTAssertEqual(try Self.makeRun(dir: straight, config: config, resume: false).run(stopRequested: { false }), .finished)

        let first = try Self.makeRun(dir: split, config: config, resume: false)
        let outcome = try first.run(stopRequested: { first.trainer.step >= 6 })
        XCTAssertEqual(outcome, .interrupted(checkpoint: split + "/checkpoint_000006.safetensors"))
        // A crash after the checkpoint may have logged more; the resume trims it.
        try "6 train 9.999999\n6 val 1.0000\n7 train 1.2".appendLine(to: split + "/log.txt")
        XCTAssertEqual(try Self.makeRun(dir: split, config: config, resume: true).run(stopRequested: { false }), .finished)
        XCTAssertEqual(try Self.trainLines(split), try Self.trainLines(straight))   // bit-identical losses, each step once
        let vals = try String(contentsOfFile: split + "/log.txt", encoding: .utf8).split(separator: "\n").filter { $0.contains(" val ") }
        XCTAssertEqual(vals.map { $0.split(separator: " ")[0] }, ["0", "3", "6", "9"])
        let jsonSteps = try String(contentsOfFile: split + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["kind"] as? String == "train" }.map { ($0["step"] as! NSNumber).intValue }
        XCTAssertEqual(jsonSteps, Array(0..<10))
    }

    /// TensorBoard shows what log.txt says, each step once, after a stop and a resume (the resume
    /// marks a restart, so the steps logged after the checkpoint before the stop are dropped).
    func testTensorBoardEqualsTheLogAcrossAResume() throws {
        guard let python = referencePython(importing: ["tensorboard"]) else { throw XCTSkip("needs the tensorboard package (GPT2_PYTHON)") }
        let data = try TrainingTests.makeShards(tokens: 4000)
        let dir = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        var config = Self.configuration(data: data, steps: 10)
        config.tensorboard = true
        config.checkpointEvery = 3
        let first = try Self.makeRun(dir: dir, config: config, resume: false)
        XCTAssertEqual(try first.run(stopRequested: { first.trainer.step >= 5 }), .interrupted(checkpoint: dir + "/checkpoint_000005.safetensors"))
        try FileManager.default.removeItem(atPath: dir + "/checkpoint_000005.safetensors")   // as if killed after step 4's log lines
        XCTAssertEqual(try Self.makeRun(dir: dir, config: config, resume: true).run(stopRequested: { false }), .finished)

        let r = try runProcess(python, [TestPaths.reference.appendingPathComponent("tensorboard_events.py").path, "read", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        struct Events: Decodable { var scalars: [String: [[Double]]] }
        let events = try JSONDecoder().decode(Events.self, from: r.stdout)
        let textTags = ((try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])?["text"] as? [String: Any])?.keys.map { $0 } ?? []
        let lines = try String(contentsOfFile: dir + "/log.txt", encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ") }
        func logged(_ kind: String) -> [(Int, Double)] { lines.filter { $0[1] == kind }.map { (Int($0[0])!, Double($0[2])!) } }
        for (kind, tag) in [("train", "train/loss"), ("val", "val/loss")] {
            let want = logged(kind), got = events.scalars[tag] ?? []
            XCTAssertEqual(got.map { Int($0[0]) }, want.map(\.0), tag)
            for (g, w) in zip(got, want) { XCTAssertEqual(g[1], w.1, accuracy: 1e-4 * max(1, abs(w.1)), "\(tag) step \(w.0)") }
        }
        XCTAssertEqual(events.scalars["train/lr"]?.count, 10)
        XCTAssertEqual(events.scalars["train/grad_norm"]?.count, 10)
        XCTAssertEqual(events.scalars["train/tokens_per_sec"]?.count, 10)
        XCTAssertTrue(textTags.contains { $0.hasPrefix("samples") }, "\(textTags)")
        XCTAssertTrue(textTags.contains { $0.hasPrefix("options") }, "\(textTags)")
    }

    /// A stop between micro-steps drops the partial step and rewinds the data: the checkpoint is
    /// the last whole step and the continuation is bit-identical.
    func testStopBetweenMicroStepsDropsThePartialStep() throws {
        let data = try TrainingTests.makeShards(tokens: 4000)
        let root = try TestPaths.temporaryDirectory()
        let straight = root.appendingPathComponent("a").path, split = root.appendingPathComponent("b").path
        var config = Self.configuration(data: data, steps: 6, micro: 4)
        config.checkpointEvery = 100
        _ = try Self.makeRun(dir: straight, config: config, resume: false).run(stopRequested: { false })
        var asks = 0
        let first = try Self.makeRun(dir: split, config: config, resume: false)
        // Asked between micro-steps (3 per step) and after each step: stop in step 2's middle.
        let outcome = try first.run(stopRequested: { asks += 1; return first.trainer.step == 2 && asks > 9 })
        XCTAssertEqual(outcome, .interrupted(checkpoint: split + "/checkpoint_000002.safetensors"))
        XCTAssertEqual(try Self.trainLines(split).count, 2)
        _ = try Self.makeRun(dir: split, config: config, resume: true).run(stopRequested: { false })
        XCTAssertEqual(try Self.trainLines(split), try Self.trainLines(straight))
    }

    /// A run resumed with a learning rate that blows the model up: updates are skipped, then the
    /// run stops naming the newest checkpoint whose weights gave a healthy loss, which survived
    /// rotation (keep 1) and loads with a sane loss.
    func testSpikeGuardStopsAndKeepsTheLastHealthyCheckpoint() throws {
        let data = try TrainingTests.makeShards(tokens: 4000)
        let dir = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        var config = Self.configuration(data: data, steps: 10)
        config.checkpointEvery = 1
        config.keepCheckpoints = 1
        config.valEvery = 1000
        config.sampleTokens = 0
        config.spikeGuard.maxConsecutive = 3
        XCTAssertEqual(try Self.makeRun(dir: dir, config: config, resume: false).run(stopRequested: { false }), .finished)
        config.options.maxSteps = 40
        config.options.maxLR = 20
        var skips = 0
        let run = try Self.makeRun(dir: dir, config: config, resume: true) { e in
            if case .step(let s) = e, s.skipped != nil { skips += 1 }
        }
        XCTAssertThrowsError(try run.run(stopRequested: { false })) { error in
            guard case .diverged(let reason, let last)? = error as? TrainingRunError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("in a row"), reason)
            XCTAssertEqual(last, dir + "/checkpoint_000010.safetensors")
            guard let last, FileManager.default.fileExists(atPath: last) else { return XCTFail("\(String(describing: last)) was rotated away") }
            let (model, _) = try! loadCheckpoint(path: last)
            let loader = try! DataLoader(directory: data, split: .val, B: 2, T: 16)
            var x: [Int32] = [], y: [Int32] = []
            try! loader.next(inputs: &x, targets: &y)
            let loss = model.forward(inputs: x, targets: y, B: 2, T: 16)
            XCTAssertTrue(loss.isFinite && loss < 6, "loss \(loss)")
        }
        XCTAssertGreaterThan(skips, 0)
    }

    func testSpikeGuardJudgesZScoresOverItsWindow() {
        var g = SpikeGuard(options: { var o = SpikeGuardOptions(); o.lossZ = 3; o.gradZ = 3; o.window = 40; o.maxConsecutive = 2; return o }(),
                           vocabSize: 50257)
        var rng = SplitMix64(seed: 1)
        for _ in 0..<40 { XCTAssertEqual(g.judge(loss: 3 + Double(rng.nextFloat()) * 0.1, gradNorm: 1 + Double(rng.nextFloat()) * 0.1), .update) }
        guard case .skip = g.judge(loss: 4, gradNorm: 1.05) else { return XCTFail("a loss spike passed") }
        guard case .stop = g.judge(loss: 3.05, gradNorm: 9) else { return XCTFail("two skips in a row did not stop") }
        var early = SpikeGuard(options: SpikeGuardOptions(), vocabSize: 50257)
        guard case .skip = early.judge(loss: 1e13, gradNorm: 1) else { return XCTFail("an exploded loss passed at step 0") }
        var off = SpikeGuard(options: { var o = SpikeGuardOptions(); o.lossZ = 0; o.gradZ = 0; return o }(), vocabSize: 50257)
        XCTAssertEqual(off.judge(loss: 1e13, gradNorm: 1), .update)
    }

    /// Damaged trainer state in a checkpoint is refused with a message, not a trap.
    func testRestoreRejectsImpossibleState() throws {
        let data = try TrainingTests.makeShards(tokens: 3000)
        var o = TrainOptions()
        o.B = 2; o.T = 16; o.totalBatch = 32
        let trainer = try Trainer(model: TrainingTests.tinyModel(), options: o,
                                  train: DataLoader(directory: data, split: .train, B: 2, T: 16), val: nil)
        let good = trainer.state
        var cases: [(String, Trainer.State)] = []
        var s = good; s.step = -5; cases.append(("negative", s))
        s = good; s.data.position = 1_000_000_000_000; cases.append(("does not fit", s))
        s = good; s.data.shardCursor = 99; cases.append(("outside", s))
        s = good; s.data.epoch = -1; cases.append(("negative", s))
        s = good; s.data.position = 7; cases.append(("does not fit", s))
        s = good; s.updates = 9; cases.append(("updates", s))
        s = good; s.options.B = 4; cases.append(("batch shape", s))
        for (want, state) in cases {
            XCTAssertThrowsError(try trainer.restore(state)) { e in
                XCTAssertTrue(e.localizedDescription.contains(want), "\(want): \(e.localizedDescription)")
            }
        }
        XCTAssertNoThrow(try trainer.restore(good))
    }

    func testLockHasOneHolderAndNamesIt() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let a = RunDirectory(path: dir), b = RunDirectory(path: dir)
        try a.lock()
        XCTAssertThrowsError(try b.lock()) { e in
            XCTAssertEqual(e as? RunDirectoryError, .locked(path: dir, holder: "pid \(getpid())"))
        }
        a.unlock()
        XCTAssertNoThrow(try b.lock())
    }

    func testStaleTemporariesOfDeadWritersAreRemoved() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let stale = [".checkpoint_000004.safetensors.tmp-99999-1234", ".loss.svg.tmp-4242-1"]
        let kept = [".lock", ".hidden", "checkpoint_000002.safetensors", ".x.tmp-12-ab", ".tmp-5-6", ".mine.tmp-\(getpid())-7"]
        for n in stale + kept { FileManager.default.createFile(atPath: dir + "/" + n, contents: Data()) }
        XCTAssertEqual(RunDirectory(path: dir).removeStaleTemporaries(), stale.sorted())
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir)), Set(kept))
    }

    func testNewestRunWithACheckpointIsChosen() throws {
        let root = try TestPaths.temporaryDirectory().path
        for (name, ckpt) in [("20260101-000000", true), ("20260102-000000", true), ("20260103-000000", false)] {
            try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
            if ckpt { FileManager.default.createFile(atPath: root + "/\(name)/checkpoint_000001.safetensors", contents: Data()) }
            Thread.sleep(forTimeInterval: 0.01)
        }
        XCTAssertEqual(try RunDirectory.newestWithCheckpoint(under: root).path, root + "/20260102-000000")
        XCTAssertThrowsError(try RunDirectory.newestWithCheckpoint(under: root + "/20260103-000000"))
        XCTAssertThrowsError(try RunDirectory(path: root + "/nope").checkExisting()) { e in
            XCTAssertEqual(e as? RunDirectoryError, .missing(path: root + "/nope"))
        }
    }

    /// A write cut short (here by RLIMIT_FSIZE, as a full disk would) leaves only whole lines and
    /// names the file.
    func testLogLinesAreWholeWhenTheDiskFills() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let log = try RunLog(directory: dir, truncate: true)
        try log.record(step: 0, kind: "train", value: 10.5)
        let size = try FileManager.default.attributesOfItem(atPath: dir + "/metrics.jsonl")[.size] as! Int
        var old = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        var limit = rlimit(rlim_cur: rlim_t(size + 20), rlim_max: old.rlim_max)
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
        defer { setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old); signal(SIGXFSZ, oldHandler) }
        XCTAssertThrowsError(try log.record(step: 1, kind: "train", value: 9.5, fields: ["lr": 1e-3, "norm": 1.5])) { e in
            XCTAssertTrue(e.localizedDescription.contains(dir + "/metrics.jsonl"), e.localizedDescription)
        }
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        for line in try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), "partial line: \(line)")
        }
    }

    /// The log cannot grow (a full disk): the run stops with an error naming the log file and
    /// says whether the training so far could be saved.
    func testLogFailureStopsTheRunWithAClearError() throws {
        let data = try TrainingTests.makeShards(tokens: 4000)
        let dir = try TestPaths.temporaryDirectory().appendingPathComponent("run").path
        var config = Self.configuration(data: data, steps: 50)
        config.valEvery = 1000
        var old = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        defer { setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old); signal(SIGXFSZ, oldHandler) }
        let run = try Self.makeRun(dir: dir, config: config, resume: false) { e in
            guard case .step(let s) = e, s.step == 3 else { return }
            let size = (try? FileManager.default.attributesOfItem(atPath: dir + "/log.txt")[.size] as? Int) ?? 0
            var limit = rlimit(rlim_cur: rlim_t(size + 5), rlim_max: old.rlim_max)
            setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
        }
        XCTAssertThrowsError(try run.run(stopRequested: { false })) { e in
            guard case .logFailed(let reason, let checkpoint, _)? = e as? TrainingRunError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains(dir + "/log.txt"), reason)
            XCTAssertNil(checkpoint)   // the limit stops the checkpoint too
            XCTAssertTrue(e.localizedDescription.contains("no checkpoint could be written either"), e.localizedDescription)
        }
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        XCTAssertTrue(DataTestSupport.temporaryFiles(in: dir).isEmpty, "a temporary checkpoint was left behind")
    }

    func testDefaultsFitTheModelAndTheData() {
        let d4 = GPT2Config.preset("d4")!
        var o = RunOverrides()
        o.maxSteps = 300
        let (small, notes) = RunConfiguration.new(overrides: o, context: RunContext(embedded: false, model: d4, trainTokens: 100_000,
                                                                                  valTokens: 10_000, worldSize: 1, gpu: false))
        XCTAssertEqual(small.options.totalBatch, 4096)                 // one micro-step: 100K tokens are too few for 524,288
        XCTAssertEqual(small.options.warmupSteps, 11)                  // 3.75% of 300
        XCTAssertLessThanOrEqual(small.valEvery, 15)
        XCTAssertTrue(notes.contains { $0.contains("too few") }, "\(notes)")
        let (big, _) = RunConfiguration.new(overrides: RunOverrides(), context: RunContext(embedded: false, model: GPT2Config.preset("gpt2")!,
                                                                                           trainTokens: 9_900_000_000, valTokens: 100_000_000, worldSize: 1, gpu: true))
        XCTAssertEqual(big.options.totalBatch, 524_288)
        XCTAssertEqual(big.options.B, 64)
        XCTAssertEqual(big.options.maxSteps, 9_900_000_000 / 524_288)
        XCTAssertEqual(big.valEvery, 250)
        XCTAssertEqual(big.checkpointEvery, 4720)
    }

    func testResumeKeepsTheRunAndNotesOverrides() throws {
        let saved = Self.configuration(data: "d", steps: 10)
        var o = RunOverrides()
        o.maxSteps = 20; o.valEvery = 3; o.sampleEvery = 7
        let (c, notes) = try saved.resumed(with: o)
        XCTAssertEqual(c.options.maxSteps, 20)
        XCTAssertEqual(c.sampleEvery, 7)
        XCTAssertEqual(notes, ["--max-steps 20 replaces the run's 10", "--sample-every 7 replaces the run's 5"])
        o = RunOverrides(); o.B = 8
        XCTAssertThrowsError(try saved.resumed(with: o))
    }
}

private extension String {
    func appendLine(to path: String) throws {
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seekToEnd()
        try h.write(contentsOf: Data(self.utf8))
        try h.close()
    }
}

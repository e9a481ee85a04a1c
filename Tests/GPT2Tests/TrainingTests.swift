// Training pieces: build-nanogpt's learning-rate schedule, the data loader, gradient
// accumulation, bit-identical resume, overfitting one batch, non-finite losses, the SVG plot.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import GPT2

final class TrainingTests: XCTestCase {
    /// A directory with one val and one train shard of `tokens` ids below `vocab` (documents
    /// start with EOT when `vocab` covers it, else with 0).
    static func makeShards(tokens: Int, vocab: Int = 256, seed: UInt64 = 7, format: ShardFormat = .npy) throws -> String {
        let dir = try TestPaths.temporaryDirectory()
        var rng = SplitMix64(seed: seed)
        let eot = vocab > 50256 ? UInt16(50256) : 0
        for (name, n) in [("t_val_000000", tokens / 4), ("t_train_000001", tokens)] {
            var t = [UInt16](repeating: 0, count: n)
            for i in 0..<n { t[i] = i % 37 == 0 ? eot : UInt16(1 + rng.next() % UInt64(min(vocab, 200) - 1)) }
            try TokenShard.write(t, to: dir.path + "/" + name + "." + format.rawValue, format: format)
        }
        return dir.path
    }

    static func tinyModel(vocab: Int = 256, seed: UInt64 = 1) -> GPT2 {
        let m = GPT2(config: GPT2Config(maxSeqLen: 32, vocabSize: vocab, numLayers: 2, numHeads: 2, channels: 16))
        m.initializeRandom(seed: seed)
        return m
    }

    func testLRScheduleMatchesBuildNanoGPT() throws {
        let url = TestPaths.fixtures.appendingPathComponent("training/lr_schedule.json")
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [[String: Any]]
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            let s = LRSchedule(maxLR: c["max_lr"] as! Double, minLR: c["min_lr"] as! Double,
                               warmupSteps: c["warmup"] as! Int, maxSteps: c["max_steps"] as! Int)
            for (step, want) in zip(c["steps"] as! [Int], c["lr"] as! [Double]) {
                XCTAssertEqual(s(step), want, accuracy: 1e-15, "step \(step) of \(s)")
            }
        }
    }

    func testLoaderWalksShardsLikeDataLoaderLite() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let a = (0..<50).map { UInt16($0) }, b = (100..<130).map { UInt16($0) }
        try TokenShard.write(a, to: dir + "/x_train_000001.bin", format: .bin)
        try TokenShard.write(b, to: dir + "/x_train_000002.bin", format: .bin)
        let loader = try DataLoader(directory: dir, split: .train, B: 2, T: 4)
        var x: [Int32] = [], y: [Int32] = []
        var firsts: [Int32] = []
        for _ in 0..<10 {
            try loader.next(inputs: &x, targets: &y)
            XCTAssertEqual(Array(y.dropLast()), Array(x.dropFirst()))
            firsts.append(x[0])
        }
        // 50 tokens: batches at 0, 8, ..., 40 (then 48+8+1 > 50), shard 2 (30 tokens): 100, 108, 116 (then 24+9 > 30), wrap.
        XCTAssertEqual(firsts, [0, 8, 16, 24, 32, 40, 100, 108, 116, 0])
        let rank1 = try DataLoader(directory: dir, split: .train, B: 2, T: 4, rank: 1, worldSize: 2)
        try rank1.next(inputs: &x, targets: &y)
        XCTAssertEqual(x[0], 8)
        try rank1.next(inputs: &x, targets: &y)
        XCTAssertEqual(x[0], 24)
    }

    func testShuffleIsDeterministicAndPermutesDocuments() throws {
        let dir = try Self.makeShards(tokens: 2000, vocab: 50257)
        func batches(_ seed: UInt64, _ n: Int) throws -> [[Int32]] {
            let l = try DataLoader(directory: dir, split: .train, B: 2, T: 16, shuffle: true, seed: seed)
            var x: [Int32] = [], y: [Int32] = []
            return try (0..<n).map { _ in try l.next(inputs: &x, targets: &y); return x }
        }
        XCTAssertEqual(try batches(1, 150), try batches(1, 150))
        XCTAssertNotEqual(try batches(1, 5), try batches(2, 5))
        let plain = try DataLoader(directory: dir, split: .train, B: 2, T: 16)
        var x: [Int32] = [], y: [Int32] = []
        try plain.next(inputs: &x, targets: &y)
        XCTAssertNotEqual(try batches(1, 1)[0], x)
        // one epoch is 62 batches (2000 tokens, 32 per batch): epochs are ordered differently
        let all = try batches(1, 124)
        XCTAssertNotEqual(Array(all[0..<62]), Array(all[62..<124]))
        XCTAssertEqual(all[0..<62].flatMap { $0 }.sorted(), all[62..<124].flatMap { $0 }.sorted().count == 62 * 32 ? all[0..<62].flatMap { $0 }.sorted() : [])
    }

    func testGradientAccumulationEqualsOneBigBatch() throws {
        let dir = try Self.makeShards(tokens: 4000)
        func oneStep(B: Int) throws -> [Float] {
            let m = Self.tinyModel()
            var o = TrainOptions()
            o.B = B; o.T = 16; o.totalBatch = 64; o.maxSteps = 10; o.warmupSteps = 1; o.maxLR = 1e-2
            let t = try Trainer(model: m, options: o, train: DataLoader(directory: dir, split: .train, B: B, T: 16), val: nil)
            XCTAssertEqual(t.gradAccumSteps, 4 / B)
            _ = try t.trainStep()
            return withExtendedLifetime(m) { Array(UnsafeBufferPointer(start: m.params.memory, count: m.params.count)) }
        }
        let big = try oneStep(B: 4), accumulated = try oneStep(B: 1)
        let initial = Self.tinyModel()
        let before = Array(UnsafeBufferPointer(start: initial.params.memory, count: initial.params.count))
        XCTAssertNotEqual(big, before)
        var maxDiff: Float = 0
        for i in 0..<big.count { maxDiff = max(maxDiff, abs(big[i] - accumulated[i])) }
        XCTAssertLessThan(maxDiff, 1e-5)
    }

    func testIndivisibleTotalBatchIsRejected() throws {
        let dir = try Self.makeShards(tokens: 1000)
        var o = TrainOptions()
        o.B = 3; o.T = 16; o.totalBatch = 100
        XCTAssertThrowsError(try Trainer(model: Self.tinyModel(), options: o,
                                         train: DataLoader(directory: dir, split: .train, B: 3, T: 16), val: nil)) {
            XCTAssertEqual($0 as? TrainingError, .indivisibleBatch(total: 100, B: 3, T: 16, world: 1))
        }
    }

    func testResumeFromCheckpointIsBitIdentical() throws {
        let dir = try Self.makeShards(tokens: 3000)
        var o = TrainOptions()
        o.B = 2; o.T = 16; o.totalBatch = 64; o.maxSteps = 8; o.warmupSteps = 2; o.maxLR = 3e-3; o.shuffle = true
        func trainer(_ m: GPT2) throws -> Trainer {
            try Trainer(model: m, options: o, train: DataLoader(directory: dir, split: .train, B: 2, T: 16, shuffle: true, seed: o.seed),
                        val: DataLoader(directory: dir, split: .val, B: 2, T: 16))
        }
        let straight = try trainer(Self.tinyModel())
        let want = try (0..<8).map { _ in try straight.trainStep()!.loss }

        let first = try trainer(Self.tinyModel())
        var got = try (0..<4).map { _ in try first.trainStep()!.loss }
        _ = try first.validationLoss(steps: 2)   // evaluation in between must not disturb training
        let path = try TestPaths.temporaryDirectory().appendingPathComponent("ckpt.safetensors").path
        let state = String(decoding: try JSONEncoder().encode(first.state), as: UTF8.self)
        try saveCheckpoint(first.model, includeOptimizer: true, metadata: ["trainer": state], to: path)

        let (model, meta) = try loadCheckpoint(path: path)
        let second = try trainer(model)
        try second.restore(JSONDecoder().decode(Trainer.State.self, from: Data(meta["trainer"]!.utf8)))
        got += try (0..<4).map { _ in try second.trainStep()!.loss }
        XCTAssertEqual(got, want)   // exact
    }

    func testOverfitOneBatch() throws {
        let dir = try Self.makeShards(tokens: 2000)
        var o = TrainOptions()
        o.B = 2; o.T = 16; o.totalBatch = 32; o.maxSteps = 150; o.warmupSteps = 5; o.maxLR = 1e-2; o.overfitBatch = true
        o.weightDecay = 0
        let m = GPT2(config: GPT2Config(maxSeqLen: 32, vocabSize: 256, numLayers: 2, numHeads: 2, channels: 64))
        m.initializeRandom(seed: 3)
        let t = try Trainer(model: m, options: o, train: DataLoader(directory: dir, split: .train, B: 2, T: 16), val: nil)
        var loss: Float = .infinity
        for _ in 0..<150 { loss = try t.trainStep()!.loss; if loss < 0.1 { break } }
        XCTAssertLessThan(loss, 0.1)
    }

    func testNonFiniteLossStopsBeforeTheUpdate() throws {
        let dir = try Self.makeShards(tokens: 2000)
        var o = TrainOptions()
        o.B = 2; o.T = 16; o.totalBatch = 32; o.maxSteps = 50; o.warmupSteps = 1; o.maxLR = 1e30; o.gradClip = 1e30
        let m = Self.tinyModel()
        let t = try Trainer(model: m, options: o, train: DataLoader(directory: dir, split: .train, B: 2, T: 16), val: nil)
        var failure: Error?
        for _ in 0..<50 {
            do { _ = try t.trainStep() } catch { failure = error; break }
        }
        guard case .nonFinite? = failure as? TrainingError else { return XCTFail("expected a non-finite error, got \(String(describing: failure))") }
        XCTAssertTrue(failure!.localizedDescription.contains("step"))
    }
}

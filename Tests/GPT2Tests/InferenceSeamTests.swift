// The CPU engine's inference side: forward-only scoring equals the training forward's per-token
// losses (and skips unscored positions); bad ids and shapes are errors, not traps.
import Foundation
import XCTest
@testable import GPT2

final class InferenceSeamTests: XCTestCase {
    func testScoringEqualsTheTrainingForward() throws {
        let model = GPT2(config: GPT2Config(maxSeqLen: 32, vocabSize: 96, numLayers: 2, numHeads: 2, channels: 32))
        model.initializeRandom(seed: 11)
        let B = 3, T = 20
        var rng = SplitMix64(seed: 5)
        let inputs = (0..<B * T).map { _ in Int32(rng.next() % 96) }
        let targets = (0..<B * T).map { _ in Int32(rng.next() % 96) }
        model.forward(inputs: inputs, targets: targets, B: B, T: T)
        let want = Array(model.losses)
        let got = try model.tokenLosses(inputs: inputs, targets: targets, B: B, T: T)
        for i in 0..<B * T { XCTAssertEqual(got[i], want[i], accuracy: 1e-5 * max(1, abs(want[i])), "position \(i)") }
        // Unscored positions: loss 0, the others unchanged.
        let masked = targets.enumerated().map { $0.offset % 3 == 0 ? -1 : $0.element }
        let partial = try model.tokenLosses(inputs: inputs, targets: masked, B: B, T: T)
        for i in 0..<B * T { XCTAssertEqual(partial[i], i % 3 == 0 ? 0 : got[i], "position \(i)") }
    }

    func testBadInputsAreErrors() {
        let model = GPT2(config: GPT2Config(maxSeqLen: 8, vocabSize: 96, numLayers: 1, numHeads: 2, channels: 16))
        XCTAssertThrowsError(try model.tokenLosses(inputs: [1, 200], targets: [1, 2], B: 1, T: 2)) {
            XCTAssertEqual($0 as? InferenceError, .tokenOutOfVocabulary(id: 200, index: 1, vocabSize: 96))
        }
        XCTAssertThrowsError(try model.tokenLosses(inputs: [1, 2], targets: [1, 96], B: 1, T: 2))
        XCTAssertThrowsError(try model.tokenLosses(inputs: Array(repeating: 1, count: 9), targets: Array(repeating: 1, count: 9), B: 1, T: 9)) {
            XCTAssertEqual($0 as? InferenceError, .tooLong(T: 9, maxSeqLen: 8))
        }
        XCTAssertThrowsError(try model.tokenLosses(inputs: [1, 2, 3], targets: [1, 2], B: 1, T: 3))
        XCTAssertThrowsError(try windowedLoss(engine: model, ids: [5]))
        XCTAssertThrowsError(try model.makeDecoder(samples: 1, maxLength: 9))
    }

    /// The windowed loss batches full windows; it equals scoring each window alone.
    func testWindowedLossEqualsOneWindowAtATime() throws {
        let model = GPT2(config: GPT2Config(maxSeqLen: 8, vocabSize: 96, numLayers: 1, numHeads: 2, channels: 16))
        model.initializeRandom(seed: 2)
        let ids = (0..<45).map { Int32($0 * 7 % 96) }
        var total = 0.0
        for start in stride(from: 0, to: 44, by: 8) {
            let n = min(8, 44 - start)
            let l = try model.tokenLosses(inputs: Array(ids[start..<start + n]), targets: Array(ids[start + 1...start + n]), B: 1, T: n)
            total += l.reduce(0.0) { $0 + Double($1) }
        }
        XCTAssertEqual(try windowedLoss(engine: model, ids: ids), total / 44, accuracy: 1e-6)   // GEMV vs SGEMM rounding
    }

    /// The CPU's shared-context scoring equals scoring whole rows (hellaswag.py's method), for
    /// contexts and continuations of every length (continuations of one token included) and
    /// groups split by the token budget.
    func testSharedContextScoringEqualsWholeRows() throws {
        let model = GPT2(config: GPT2Config(maxSeqLen: 24, vocabSize: 96, numLayers: 2, numHeads: 2, channels: 32))
        model.initializeRandom(seed: 8)
        var rng = SplitMix64(seed: 3)
        func ids(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next() % 96) } }
        var items: [ContinuationItem] = []
        for i in 0..<9 {
            let ctx = 1 + i * 2
            items.append(ContinuationItem(context: ids(ctx), continuations: (0..<(1 + i % 4)).map { k in ids(1 + (i + k) % (25 - ctx)) }))
        }
        for budget in [1, 40, 10_000] {
            let shared = try model.continuationLosses(items, maxTokensPerCall: budget)
            let rows = try model.continuationLossesByRows(items, maxTokensPerCall: budget)
            XCTAssertEqual(shared.map { $0.map(\.count) }, rows.map { $0.map(\.count) })
            for (a, b) in zip(shared.joined().joined(), rows.joined().joined()) {
                XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "budget \(budget)")
            }
        }
        XCTAssertThrowsError(try model.continuationLosses([ContinuationItem(context: ids(20), continuations: [ids(6)])], maxTokensPerCall: 100))
        XCTAssertThrowsError(try model.continuationLosses([ContinuationItem(context: [], continuations: [ids(2)])], maxTokensPerCall: 100))
    }
}

// Model-level behaviour on a tiny config: presets, initialisation, gradient accumulation,
// clipping, shape changes, padded vocabulary.
import Foundation
import XCTest
@testable import GPT2

final class ModelTests: XCTestCase {
    let tiny = GPT2Config(maxSeqLen: 16, vocabSize: 64, numLayers: 2, numHeads: 4, channels: 32)

    func batch(B: Int, T: Int, V: Int, seed: UInt64) -> (inputs: [Int32], targets: [Int32]) {
        var s = seed
        let ids = (0..<B * T + 1).map { _ -> Int32 in s = s &* 6364136223846793005 &+ 1; return Int32((s >> 33) % UInt64(V)) }
        return (Array(ids[0..<B * T]), Array(ids[1...]))
    }

    func testPresetsAndSizes() {
        let g = GPT2Config.preset("gpt2")!
        XCTAssertEqual(g, GPT2Config(maxSeqLen: 1024, vocabSize: 50257, paddedVocabSize: 50304, numLayers: 12, numHeads: 12, channels: 768))
        XCTAssertEqual(g.parameterCount, 124_439_808)   // nanoGPT's count for GPT-2 small
        XCTAssertEqual(GPT2Config.preset("d12"), g)
        XCTAssertEqual(GPT2Config.preset("d6")?.channels, 384)
        XCTAssertEqual(GPT2Config.preset("gpt2-xl")?.numHeads, 25)
        XCTAssertNil(GPT2Config.preset("gpt5"))
        XCTAssertEqual(tiny.paddedVocabSize, 128)
        XCTAssertEqual(ParameterName.qkvw.shape(g), [12, 2304, 768])
        XCTAssertEqual(ParameterName.fcprojw.shape(g), [12, 768, 3072])
        let p = ParameterTensors(config: tiny)
        XCTAssertEqual(p.count, ParameterName.allCases.reduce(0) { $0 + $1.count(tiny) })
        XCTAssertEqual(p.pointer(.lnfb) + p.count(.lnfb), p.memory + p.count)
        // Codable round trip
        let data = try! JSONEncoder().encode(g)
        XCTAssertEqual(try! JSONDecoder().decode(GPT2Config.self, from: data), g)
    }

    func testInitializationAndInitialLoss() {
        let model = GPT2(config: tiny)
        model.initializeRandom(seed: 42)
        let wte = model.params.buffer(.wte)
        XCTAssert(wte[(tiny.vocabSize * tiny.channels)...].allSatisfy { $0 == 0 }, "padded wte rows must be 0")
        let real = Array(wte[..<(tiny.vocabSize * tiny.channels)])
        let std = (real.map { $0 * $0 }.reduce(0, +) / Float(real.count)).squareRoot()
        XCTAssertEqual(std, 0.02, accuracy: 0.002)
        let proj = Array(model.params.buffer(.attprojw))
        XCTAssertEqual((proj.map { $0 * $0 }.reduce(0, +) / Float(proj.count)).squareRoot(), 0.02 / 2, accuracy: 0.001)
        XCTAssert(model.params.buffer(.ln1w).allSatisfy { $0 == 1 } && model.params.buffer(.qkvb).allSatisfy { $0 == 0 })
        let other = GPT2(config: tiny)
        other.initializeRandom(seed: 42)
        XCTAssertEqual(Array(other.params.buffer(.fcw)), Array(model.params.buffer(.fcw)))   // deterministic
        let (x, y) = batch(B: 2, T: 8, V: tiny.vocabSize, seed: 1)
        let loss = model.forward(inputs: x, targets: y, B: 2, T: 8)
        XCTAssertEqual(loss, log(Float(tiny.vocabSize)), accuracy: 0.05)   // ≈ ln V at init
        XCTAssert(model.forward(inputs: x, targets: nil, B: 2, T: 8).isNaN)
    }

    func testGradientAccumulationMatchesFullBatch() {
        let model = GPT2(config: tiny)
        model.initializeRandom(seed: 3)
        let (x, y) = batch(B: 4, T: 8, V: tiny.vocabSize, seed: 2)
        model.zeroGrad()
        model.forward(inputs: x, targets: y, B: 4, T: 8)
        model.backward()
        let full = Array(UnsafeBufferPointer(start: model.grads.memory, count: model.grads.count))
        model.zeroGrad()
        for half in 0..<2 {   // two micro-batches of B=2, each scaled by 1/2
            let r = half * 16..<(half + 1) * 16
            model.forward(inputs: Array(x[r]), targets: Array(y[r]), B: 2, T: 8)
            model.backward(lossScale: 0.5)
        }
        let accumulated = Array(UnsafeBufferPointer(start: model.grads.memory, count: model.grads.count))
        assertClose(accumulated, full, tol: 1e-5, "accumulated gradients")
    }

    func testClipGradients() {
        let model = GPT2(config: tiny)
        model.initializeRandom(seed: 4)
        let (x, y) = batch(B: 1, T: 16, V: tiny.vocabSize, seed: 5)
        model.zeroGrad()
        model.forward(inputs: x, targets: y, B: 1, T: 16)
        model.backward(lossScale: 100)
        let g = Array(UnsafeBufferPointer(start: model.grads.memory, count: model.grads.count))
        let norm = Float(g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
        XCTAssertEqual(model.gradNorm(), norm, accuracy: norm * 1e-5)
        XCTAssertEqual(model.clipGradients(maxNorm: 1), norm, accuracy: norm * 1e-5)
        XCTAssertEqual(model.gradNorm(), 1, accuracy: 1e-4)
        XCTAssertEqual(model.clipGradients(maxNorm: 5), model.gradNorm())   // below the limit: untouched
    }

    func testShapeChangesAndLogits() {
        let model = GPT2(config: tiny)
        model.initializeRandom(seed: 6)
        let (x, _) = batch(B: 1, T: 16, V: tiny.vocabSize, seed: 7)
        model.forward(inputs: x, targets: nil, B: 1, T: 16)
        let last = Array(model.logits(b: 0, t: 5))
        XCTAssertEqual(last.count, tiny.paddedVocabSize)
        XCTAssert(last[tiny.vocabSize...].allSatisfy { $0 == 0 })
        // causal: the prefix alone gives the same logits at t=5
        model.forward(inputs: Array(x[0..<6]), targets: nil, B: 1, T: 6)
        assertClose(Array(model.logits(b: 0, t: 5)), last, tol: 1e-5, "prefix logits")
        // batch rows are independent
        model.forward(inputs: Array(x[0..<6]) + Array(x[0..<6]), targets: nil, B: 2, T: 6)
        assertClose(Array(model.logits(b: 1, t: 5)), last, tol: 1e-5, "batch row 1 logits")
    }

    func testTrainingReducesLoss() {
        let model = GPT2(config: tiny)
        model.initializeRandom(seed: 8)
        let (x, y) = batch(B: 2, T: 16, V: tiny.vocabSize, seed: 9)
        var losses: [Float] = []
        for step in 1...10 {
            losses.append(model.forward(inputs: x, targets: y, B: 2, T: 16))
            model.zeroGrad()
            model.backward()
            model.clipGradients(maxNorm: 1)
            model.update(learningRate: 1e-2, weightDecay: 0.1, step: step)
        }
        XCTAssertLessThan(losses.last!, losses.first! - 0.5, "loss did not drop: \(losses)")
    }
}

// Training-step throughput on random data (forward + backward + AdamW), for `gpt bench`-style
// commands and performance checks. Timings use the monotonic clock; warm-up steps are excluded.
import Foundation

/// Result of `benchmarkTrainStep`.
public struct TrainStepBenchmark: Sendable, CustomStringConvertible {
    public let config: GPT2Config
    public let B: Int, T: Int, steps: Int
    /// Tokens (B·T) per second over the timed steps.
    public let tokPerSec: Double
    /// Mean milliseconds per step and per phase.
    public let msPerStep: Double, forwardMs: Double, backwardMs: Double, updateMs: Double
    /// Loss of the last step.
    public let loss: Float
    /// Threads and SGEMM provider used.
    public let threads: Int
    public let blas: String

    public var description: String {
        String(format: "B=%d T=%d: %.1f tok/s, %.1f ms/step (forward %.1f, backward %.1f, update %.1f), loss %.4f, %d threads, %@",
               B, T, tokPerSec, msPerStep, forwardMs, backwardMs, updateMs, loss, threads, blas)
    }
}

/// Times `steps` training steps (after `warmup` untimed ones) of a randomly initialised model
/// on random tokens.
/// - Returns: throughput and a per-phase breakdown.
public func benchmarkTrainStep(config: GPT2Config, B: Int, T: Int, steps: Int = 5, warmup: Int = 1,
                               seed: UInt64 = 1337) -> TrainStepBenchmark {
    let model = GPT2(config: config)
    model.initializeRandom(seed: seed)
    var rng = NormalRNG(seed: seed ^ 0x5EED)
    let tokens = (0...B * T).map { _ in Int32(rng.nextUInt64() % UInt64(config.vocabSize)) }
    let inputs = Array(tokens[0..<B * T]), targets = Array(tokens[1...])
    var fwd = 0.0, bwd = 0.0, upd = 0.0, loss: Float = .nan
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }
    for step in 1...(warmup + steps) {
        let t0 = now()
        loss = model.forward(inputs: inputs, targets: targets, B: B, T: T)
        let t1 = now()
        model.zeroGrad()
        model.backward()
        let t2 = now()
        model.clipGradients(maxNorm: 1)
        model.update(learningRate: 1e-4, weightDecay: 0.1, step: step)
        let t3 = now()
        if step > warmup { fwd += t1 - t0; bwd += t2 - t1; upd += t3 - t2 }
    }
    let n = Double(steps), total = (fwd + bwd + upd) / n
    return TrainStepBenchmark(config: config, B: B, T: T, steps: steps, tokPerSec: Double(B * T) / (total / 1000),
                              msPerStep: total, forwardMs: fwd / n, backwardMs: bwd / n, updateMs: upd / n, loss: loss,
                              threads: Parallel.threadCount, blas: BLAS.backendDescription)
}

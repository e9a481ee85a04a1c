// The two-pass LM head (bf16 scores, then exact fp32 rescoring of the candidates) must pick
// exactly the tokens the full fp32 head picks, for greedy and top-k sampling alike.
import Foundation
import XCTest
@testable import GPT2

final class GeneratorTests: XCTestCase {
    func testTwoPassHeadSamplesExactlyLikeTheFullHead() throws {
        let trained = try loadHFModel(directory: TestPaths.fixtures.appendingPathComponent("model/hub_v50257_bf16").path)
        let random = GPT2(config: GPT2Config(maxSeqLen: 64, numLayers: 2, numHeads: 2, channels: 32))
        random.initializeRandom(seed: 5)
        let prompt = GPT2Tokenizer.gpt2.encode("Hello, I'm a language model,")
        for model in [trained, random] {
            for sampler in [Sampler(topK: 50, temperature: 1), Sampler(topK: 5, temperature: 0.7), Sampler(topK: 50, temperature: 0)] {
                for seed: UInt64 in [1, 2] {
                    func run(_ twoPass: Bool) -> [[Int32]] {
                        let g = Generator(model: model, samples: 3, maxLength: 22)
                        g.twoPassHead = twoPass
                        return g.generate(prompt: prompt, maxNewTokens: 14, sampler: sampler, seed: seed)
                    }
                    XCTAssertEqual(run(true), run(false), "sampler \(sampler) seed \(seed)")
                }
            }
        }
    }

    func testSamplerPicksFromCandidatesLikeFromFullLogits() {
        var rng = SplitMix64(seed: 9)
        let V = 1000
        let logits = (0..<V).map { _ in Float(rng.next() % 1000) / 100 }   // many ties on purpose
        for sampler in [Sampler(topK: 10, temperature: 1), Sampler(topK: 1, temperature: 1), Sampler(topK: 3, temperature: 0)] {
            let k = sampler.decisiveCount(V: V)!
            let kth = logits.sorted(by: >)[k - 1]
            let candidates = (0..<V).filter { logits[$0] >= kth - 0.05 }.map { (logits[$0], Int32($0)) }
            for seed: UInt64 in 0..<20 {
                var a = SplitMix64(seed: seed), b = SplitMix64(seed: seed)
                let full = logits.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, V: V, rng: &a) }
                XCTAssertEqual(sampler.sample(candidates: candidates, rng: &b), full)
            }
        }
    }
}

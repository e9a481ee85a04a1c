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
                    func run(_ twoPass: Bool) throws -> [[Int32]] {
                        let d = try CPUDecoder(model: model, samples: 3, maxLength: 22)
                        d.twoPassHead = twoPass
                        var rng = SplitMix64(seed: seed), out: [[Int32]] = [[], [], []]
                        var next = try d.next(tokens: Array([prompt, prompt, prompt].joined()), n: prompt.count, sampler: sampler, rng: &rng)
                        for _ in 0..<14 {
                            for s in 0..<3 { out[s].append(next[s]) }
                            next = try d.next(tokens: next, n: 1, sampler: sampler, rng: &rng)
                        }
                        return out
                    }
                    XCTAssertEqual(try run(true), try run(false), "sampler \(sampler) seed \(seed)")
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

final class GeneratorContextTests: XCTestCase {
    /// Past the context, each token is predicted from the last block_size tokens, as nanoGPT's
    /// generate does (checked against that loop on transformers' model).
    func testSamplingPastTheContextCropsLikeNanoGPT() throws {
        guard let python = referencePython(importing: ["torch", "transformers"]) else {
            throw XCTSkip("needs torch + transformers (GPT2_PYTHON)")
        }
        let dir = TestPaths.fixtures.appendingPathComponent("model/tiny_v96").path
        let model = try loadHFModel(directory: dir)
        XCTAssertEqual(model.config.maxSeqLen, 64)
        let prompt: [Int32] = (0..<10).map { Int32($0 * 13 % 96) }
        let new = 150   // crosses the 64-token context twice
        let r = try runProcess(python, [TestPaths.reference.appendingPathComponent("nanogpt_generate_reference.py").path,
                                        dir, String(new)] + prompt.map(String.init))
        XCTAssertEqual(r.status, 0, r.stderr)
        struct Ref: Decodable { var ids: [Int32]; var min_margin: Double }
        let ref = try JSONDecoder().decode(Ref.self, from: r.stdout)
        XCTAssertGreaterThan(ref.min_margin, 1e-4, "the reference has a near-tie; pick another prompt")
        let got = try Generator(engine: model, samples: 2).generate(prompt: prompt, maxNewTokens: new,
                                                                    sampler: Sampler(topK: 0, temperature: 0), seed: 1)
        XCTAssertEqual(got[0].count, new)
        XCTAssertEqual(got[0], ref.ids)
        XCTAssertEqual(got[1], ref.ids)
    }

    /// Seeded sampling draws one number per sample and token, so two runs agree and a prompt
    /// longer than the context is cropped rather than refused.
    func testSeededSamplingPastTheContextIsDeterministic() throws {
        let model = GPT2(config: GPT2Config(maxSeqLen: 16, vocabSize: 96, numLayers: 1, numHeads: 2, channels: 16))
        model.initializeRandom(seed: 4)
        let prompt: [Int32] = (0..<20).map { Int32($0 % 96) }
        let g = Generator(engine: model, samples: 3)
        let a = try g.generate(prompt: prompt, maxNewTokens: 40, sampler: Sampler(topK: 5, temperature: 1), seed: 9)
        let b = try g.generate(prompt: prompt, maxNewTokens: 40, sampler: Sampler(topK: 5, temperature: 1), seed: 9)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.map(\.count), [40, 40, 40])
        XCTAssertThrowsError(try g.generate(prompt: [200], maxNewTokens: 1, sampler: Sampler(), seed: 1)) { e in
            XCTAssertEqual(e as? InferenceError, .tokenOutOfVocabulary(id: 200, index: 0, vocabSize: 96))
        }
    }
}

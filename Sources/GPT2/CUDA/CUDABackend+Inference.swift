// The CUDA training engine on the inference seam, through its training forward pass: a scoring
// call's rows are placed in the top-left corner of the engine's (B, T) grid (causal attention:
// positions before T never see the padding after them) and chunked over B. Decoding with a KV
// cache on the device is not built yet.
import Foundation

extension CUDABackend: InferenceEngine {
    public var preferredTokensPerCall: Int { B * T }

    public func tokenLosses(inputs: [Int32], targets: [Int32], B rows: Int, T cols: Int) throws -> [Float] {
        try checkScoring(inputs: inputs, targets: targets, B: rows, T: cols)
        guard cols <= T else { throw InferenceError.tooLong(T: cols, maxSeqLen: T) }
        var out = [Float](repeating: 0, count: rows * cols)
        var gridIn = [Int32](repeating: 0, count: B * T), gridTg = [Int32](repeating: 0, count: B * T)
        for r0 in stride(from: 0, to: rows, by: B) {
            let n = min(B, rows - r0)
            for i in gridIn.indices { gridIn[i] = 0; gridTg[i] = 0 }
            for r in 0..<n {
                for t in 0..<cols {
                    gridIn[r * T + t] = inputs[(r0 + r) * cols + t]
                    gridTg[r * T + t] = max(0, targets[(r0 + r) * cols + t])   // unscored: any valid id, loss dropped below
                }
            }
            try forward(inputs: gridIn, targets: gridTg)
            let losses = try downloadLosses()
            for r in 0..<n {
                for t in 0..<cols where targets[(r0 + r) * cols + t] >= 0 { out[(r0 + r) * cols + t] = losses[r * T + t] }
            }
        }
        return out
    }

    public func makeDecoder(samples: Int, maxLength: Int) throws -> any TokenDecoder {
        throw InferenceError.badShape("KV-cache decoding on the CUDA training engine is not available yet; sample on the CPU")
    }
}

/// An inference engine on the GPU of `context` holding `model`'s weights.
public func makeCUDAInferenceEngine(model: GPT2, context: CUDAContext) throws -> any InferenceEngine {
    let engine = try CUDABackend(config: model.config, B: 8, T: model.config.maxSeqLen, context: context)
    try engine.loadState(from: model, includeOptimizer: false)
    return engine
}

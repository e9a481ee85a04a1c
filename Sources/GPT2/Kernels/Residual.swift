// Residual connection out = inp1 + inp2; backward accumulates (+=) dout into both inputs.
// The model fuses the residual add into the projection matmuls (Matmul.forward's `residual`),
// so these standalone kernels serve tests and callers outside the model.
// Legend: N = number of elements.
import GPT2Kernels

public enum Residual {
    /// - Parameters: out (N); inp1, inp2 (N).
    public static func forward(out: UnsafeMutablePointer<Float>, inp1: UnsafePointer<Float>,
                               inp2: UnsafePointer<Float>, N: Int) {
        Parallel.chunks(N, minChunk: 1 << 14, align: 16) { r in
            let o = r.lowerBound
            gpt2k_residual_forward(out + o, inp1 + o, inp2 + o, r.count)
        }
    }

    /// - Parameters: dinp1, dinp2 (N) +=; dout (N).
    public static func backward(dinp1: UnsafeMutablePointer<Float>, dinp2: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, N: Int) {
        Parallel.chunks(N, minChunk: 1 << 14, align: 16) { r in
            let o = r.lowerBound
            gpt2k_residual_backward(dinp1 + o, dinp2 + o, dout + o, r.count)
        }
    }
}

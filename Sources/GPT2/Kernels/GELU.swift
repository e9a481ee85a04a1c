// GELU, tanh approximation (GPT-2's "gelu_new"):
// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Backward writes dinp = gelu'(inp) * dout (=, may alias dout). Reference: llm.c gelu_forward.
// Legend: N = number of elements (B*T*4C).
import GPT2Kernels

public enum GELU {
    /// - Parameters: out (N); inp (N).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, N: Int) {
        Parallel.chunks(N, minChunk: 1 << 14, align: 16) { r in
            gpt2k_gelu_forward(out + r.lowerBound, inp + r.lowerBound, r.count)
        }
    }

    /// - Parameters: dinp (N) =; inp (N) the pre-activation; dout (N).
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, N: Int) {
        Parallel.chunks(N, minChunk: 1 << 14, align: 16) { r in
            gpt2k_gelu_backward(dinp + r.lowerBound, inp + r.lowerBound, dout + r.lowerBound, r.count)
        }
    }
}

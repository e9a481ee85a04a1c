// Fused softmax + cross-entropy over the first V of Vp logit columns (padded columns are never
// part of the softmax and get zero gradient). Forward saves each row's log-sum-exp; backward
// overwrites the logits in place with dlogits = (softmax - onehot(target)) · dloss, as llm.c's
// fused_classifier does on the GPU, so no (B,T,Vp) probs buffer exists.
// Reference: llm.c crossentropy_forward / crossentropy_softmax_backward.
// Legend: B batch, T time, V vocab, Vp padded vocab.
import GPT2Kernels

public enum CrossEntropy {
    /// - Parameters: losses (B,T) (ignored when targets is nil); lse (B,T); logits (B,T,Vp);
    ///   targets (B,T) or nil.
    public static func forward(losses: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>?,
                               B: Int, T: Int, V: Int, Vp: Int) {
        Parallel.chunks(B * T, minChunk: 1) { r in
            let o = r.lowerBound
            gpt2k_crossentropy_forward(losses + o, lse + o, logits + o * Vp, targets.map { $0 + o }, r.count, V, Vp)
        }
    }

    /// In place: logits (B,T,Vp) become dlogits; dloss is the gradient of each position's loss
    /// (1/(B·T) for a mean loss).
    public static func backward(logits: UnsafeMutablePointer<Float>, lse: UnsafePointer<Float>,
                                targets: UnsafePointer<Int32>, dloss: Float, B: Int, T: Int, V: Int, Vp: Int) {
        Parallel.chunks(B * T, minChunk: 1) { r in
            let o = r.lowerBound
            gpt2k_crossentropy_softmax_backward(logits + o * Vp, lse + o, targets + o, dloss, r.count, V, Vp)
        }
    }

    /// probs (V) = softmax(logits[0..<V] / temperature), for sampling.
    public static func softmax(probs: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>, V: Int,
                               temperature: Float = 1) {
        gpt2k_softmax(probs, logits, V, temperature)
    }
}

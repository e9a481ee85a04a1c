// Token + position embedding: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:].
// Backward accumulates into dwte and dwpe (+=). Threads own disjoint vocab / position ranges,
// so repeated tokens never race. Reference: llm.c encoder_forward / encoder_backward.
// Legend: B batch, T time, C channels, Vp padded vocab.
import GPT2Kernels

public enum Encoder {
    /// - Parameters: out (B,T,C); inp (B,T) token ids; wte (Vp,C); wpe (maxT,C).
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Int32>,
                               wte: UnsafePointer<Float>, wpe: UnsafePointer<Float>, B: Int, T: Int, C: Int) {
        Parallel.chunks(B * T, minChunk: 64) { r in
            gpt2k_encoder_forward(out + r.lowerBound * C, inp + r.lowerBound, wte, wpe, r.lowerBound, r.count, T, C)
        }
    }

    /// - Parameters: dwte (Vp,C) +=; dwpe (maxT,C) +=; dout (B,T,C); inp (B,T).
    public static func backward(dwte: UnsafeMutablePointer<Float>, dwpe: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Int32>, B: Int, T: Int, C: Int, Vp: Int) {
        let nt = Parallel.threadCount
        Parallel.forEach(nt) { i in
            // thread i owns vocab rows [vlo, vhi) and positions [tlo, thi)
            let vlo = Vp * i / nt, vhi = Vp * (i + 1) / nt
            gpt2k_encoder_backward_wte(dwte, dout, inp, B * T, C, Int32(vlo), Int32(vhi))
            let tlo = T * i / nt, thi = T * (i + 1) / nt
            gpt2k_encoder_backward_wpe(dwpe, dout, B, T, C, tlo, thi)
        }
    }
}

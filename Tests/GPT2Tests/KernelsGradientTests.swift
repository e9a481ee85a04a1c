// Finite-difference checks of every CPU kernel's backward at tiny sizes, plus forward checks
// against naive reference loops (attention across a row-block boundary, SGEMM in all transpose
// combinations for BLAS and the built-in fallback, AdamW against its scalar formula).
import Foundation
import XCTest
@testable import GPT2

/// A heap Float buffer for kernel tests.
final class KBuf {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, fill: Float = 0) {
        self.count = count
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: fill, count: max(count, 1))
    }
    convenience init(random count: Int, scale: Float = 1, rng: inout KRNG) {
        self.init(count)
        for i in 0..<count { p[i] = scale * rng.normal() }
    }
    deinit { p.deallocate() }
    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
    func zero() { p.update(repeating: 0, count: count) }
}

struct KRNG {
    var state: UInt64
    mutating func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 11 }
    mutating func uniform() -> Float { Float(Double(next()) / Double(1 << 53)) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

final class KernelsGradientTests: XCTestCase {
    /// Central differences of `f` w.r.t. every element (or `indices`) of `x`, compared with `analytic`.
    func checkGradient(_ what: String, x: KBuf, analytic: [Float], indices: [Int]? = nil, eps: Float = 1e-2,
                       tol: Float = 2e-2, f: () -> Double, file: StaticString = #filePath, line: UInt = #line) {
        var numeric: [Float] = [], ours: [Float] = []
        for i in indices ?? Array(0..<x.count) {
            let old = x.p[i]
            x.p[i] = old + eps; let fp = f()
            x.p[i] = old - eps; let fm = f()
            x.p[i] = old
            numeric.append(Float((fp - fm) / Double(2 * eps)))
            ours.append(analytic[i])
        }
        assertClose(ours, numeric, tol: tol, "\(what) finite differences", file: file, line: line)
    }

    /// Σ w·y in Double.
    func dot(_ w: KBuf, _ y: UnsafePointer<Float>) -> Double {
        (0..<w.count).reduce(0.0) { $0 + Double(w.p[$1]) * Double(y[$1]) }
    }

    func testLayerNormGradients() {
        var rng = KRNG(state: 1)
        let B = 2, T = 3, C = 8, N = B * T * C
        let inp = KBuf(random: N, rng: &rng), w = KBuf(random: C, rng: &rng), b = KBuf(random: C, rng: &rng)
        let out = KBuf(N), mean = KBuf(B * T), rstd = KBuf(B * T), dout = KBuf(random: N, rng: &rng)
        let f: () -> Double = {
            LayerNorm.forward(out: out.p, mean: mean.p, rstd: rstd.p, inp: inp.p, weight: w.p, bias: b.p, B: B, T: T, C: C)
            return self.dot(dout, out.p)
        }
        _ = f()
        // mean/rstd match a direct computation
        let row = Array(inp.array[0..<C]), m = row.reduce(0, +) / Float(C)
        XCTAssertEqual(mean.p[0], m, accuracy: 1e-6)
        XCTAssertEqual(rstd.p[0], 1 / (row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Float(C) + 1e-5).squareRoot(), accuracy: 1e-4)
        let dinp = KBuf(N), dw = KBuf(C), db = KBuf(C), scratch = KBuf(Parallel.threadCount * 2 * C)
        LayerNorm.backward(dinp: dinp.p, dweight: dw.p, dbias: db.p, dout: dout.p, inp: inp.p, weight: w.p,
                           mean: mean.p, rstd: rstd.p, B: B, T: T, C: C, scratch: scratch.p)
        checkGradient("layernorm dinp", x: inp, analytic: dinp.array, f: f)
        checkGradient("layernorm dweight", x: w, analytic: dw.array, f: f)
        checkGradient("layernorm dbias", x: b, analytic: db.array, f: f)
        // parameter grads accumulate, dinp accumulates (residual stream)
        LayerNorm.backward(dinp: dinp.p, dweight: dw.p, dbias: db.p, dout: dout.p, inp: inp.p, weight: w.p,
                           mean: mean.p, rstd: rstd.p, B: B, T: T, C: C, scratch: scratch.p)
        checkGradient("layernorm dweight accumulated", x: w, analytic: dw.array.map { $0 / 2 }, f: f)
        checkGradient("layernorm dinp accumulated", x: inp, analytic: dinp.array.map { $0 / 2 }, f: f)
    }

    func testMatmulGradients() {
        var rng = KRNG(state: 2)
        for (B, T, C, OC) in [(2, 3, 5, 7), (2, 32, 48, 96)] {   // the second is split across threads
            let inp = KBuf(random: B * T * C, rng: &rng), w = KBuf(random: OC * C, rng: &rng), b = KBuf(random: OC, rng: &rng)
            let res = KBuf(random: B * T * OC, rng: &rng)
            let out = KBuf(B * T * OC), dout = KBuf(random: B * T * OC, rng: &rng)
            // forward vs a naive loop, with the fused residual
            Matmul.forward(out: out.p, inp: inp.p, weight: w.p, bias: b.p, B: B, T: T, C: C, OC: OC, residual: res.p)
            var naive = [Float](repeating: 0, count: B * T * OC)
            for n in 0..<B * T { for o in 0..<OC {
                var s = Double(b.p[o]) + Double(res.p[n * OC + o])
                for c in 0..<C { s += Double(inp.p[n * C + c]) * Double(w.p[o * C + c]) }
                naive[n * OC + o] = Float(s)
            } }
            assertClose(out.array, naive, tol: 1e-5, "matmul forward \(B)x\(T)x\(C)x\(OC)")
            let f: () -> Double = {
                Matmul.forward(out: out.p, inp: inp.p, weight: w.p, bias: b.p, B: B, T: T, C: C, OC: OC)
                return self.dot(dout, out.p)
            }
            let dinp = KBuf(B * T * C, fill: 7), dw = KBuf(OC * C), db = KBuf(OC)
            Matmul.backward(dinp: dinp.p, dweight: dw.p, dbias: db.p, dout: dout.p, inp: inp.p, weight: w.p, B: B, T: T, C: C, OC: OC)
            let idx = { (n: Int) in (0..<min(n, 60)).map { $0 * n / min(n, 60) } }
            checkGradient("matmul dinp", x: inp, analytic: dinp.array, indices: idx(inp.count), f: f)
            checkGradient("matmul dweight", x: w, analytic: dw.array, indices: idx(w.count), f: f)
            checkGradient("matmul dbias", x: b, analytic: db.array, indices: idx(b.count), f: f)
        }
    }

    /// Naive causal attention: out (B,T,C) from qkv (B,T,3C).
    func naiveAttention(_ qkv: KBuf, B: Int, T: Int, C: Int, NH: Int) -> [Float] {
        let hs = C / NH, scale = 1 / Double(hs).squareRoot()
        var out = [Float](repeating: 0, count: B * T * C)
        for b in 0..<B { for h in 0..<NH { for t in 0..<T {
            let q = b * T * 3 * C + t * 3 * C + h * hs
            var s = [Double](repeating: 0, count: t + 1)
            for j in 0...t {
                let k = b * T * 3 * C + j * 3 * C + C + h * hs
                s[j] = (0..<hs).reduce(0.0) { $0 + Double(qkv.p[q + $1]) * Double(qkv.p[k + $1]) } * scale
            }
            let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
            for d in 0..<hs {
                var acc = 0.0
                for j in 0...t { acc += e[j] / z * Double(qkv.p[b * T * 3 * C + j * 3 * C + 2 * C + h * hs + d]) }
                out[b * T * C + t * C + h * hs + d] = Float(acc)
            }
        } } }
        return out
    }

    func testAttentionGradients() {
        var rng = KRNG(state: 3)
        for (B, T, C, NH, sampled) in [(2, 5, 8, 2, false), (1, 70, 8, 2, true)] {   // 70 > rowBlock (64)
            let qkv = KBuf(random: B * T * 3 * C, rng: &rng), out = KBuf(B * T * C), lse = KBuf(B * NH * T)
            let scratch = KBuf(Parallel.threadCount * Attention.scratchCount(T: T, C: C))
            let dout = KBuf(random: B * T * C, rng: &rng)
            let f: () -> Double = {
                Attention.forward(out: out.p, lse: lse.p, inp: qkv.p, B: B, T: T, C: C, NH: NH, scratch: scratch.p)
                return self.dot(dout, out.p)
            }
            _ = f()
            assertClose(out.array, naiveAttention(qkv, B: B, T: T, C: C, NH: NH), tol: 1e-5, "attention forward T=\(T)")
            let dqkv = KBuf(B * T * 3 * C, fill: 3)
            Attention.backward(dinp: dqkv.p, dout: dout.p, inp: qkv.p, out: out.p, lse: lse.p, B: B, T: T, C: C, NH: NH, scratch: scratch.p)
            var indices: [Int]? = nil
            if sampled { indices = (0..<150).map { _ in Int(rng.next() % UInt64(qkv.count)) } }
            checkGradient("attention dqkv T=\(T)", x: qkv, analytic: dqkv.array, indices: indices, eps: 5e-3, f: f)
        }
    }

    func testGELUGradients() {
        var rng = KRNG(state: 4)
        let N = 40
        let inp = KBuf(random: N, scale: 3, rng: &rng), out = KBuf(N), dout = KBuf(random: N, rng: &rng)
        inp.p[0] = -12; inp.p[1] = 12; inp.p[2] = 0   // saturated tails and the origin
        GELU.forward(out: out.p, inp: inp.p, N: N)
        for i in 0..<N {
            let x = Double(inp.p[i])
            let ref = 0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
            XCTAssertEqual(Double(out.p[i]), ref, accuracy: 2e-6 * max(1, abs(ref)), "gelu(\(x))")
        }
        let f: () -> Double = { GELU.forward(out: out.p, inp: inp.p, N: N); return self.dot(dout, out.p) }
        let dinp = KBuf(N)
        GELU.backward(dinp: dinp.p, inp: inp.p, dout: dout.p, N: N)
        checkGradient("gelu", x: inp, analytic: dinp.array, eps: 1e-3, f: f)
    }

    func testCrossEntropyGradients() {
        var rng = KRNG(state: 5)
        let B = 2, T = 3, V = 10, Vp = 16
        let logits = KBuf(random: B * T * Vp, scale: 2, rng: &rng)
        for i in 0..<B * T { for v in V..<Vp { logits.p[i * Vp + v] = 1000 } }   // padding must never matter
        let targets: [Int32] = [0, 9, 3, 3, 5, 1]
        let losses = KBuf(B * T), lse = KBuf(B * T)
        let f: () -> Double = {
            targets.withUnsafeBufferPointer { tg in
                CrossEntropy.forward(losses: losses.p, lse: lse.p, logits: logits.p, targets: tg.baseAddress!, B: B, T: T, V: V, Vp: Vp)
            }
            return losses.array.reduce(0.0) { $0 + Double($1) } / Double(B * T)
        }
        _ = f()
        // loss of row 0 against a direct log-softmax
        let row = (0..<V).map { Double(logits.p[$0]) }, m = row.max()!
        XCTAssertEqual(Double(losses.p[0]), m + log(row.map { exp($0 - m) }.reduce(0, +)) - row[0], accuracy: 1e-5)
        let saved = logits.array
        let grad = KBuf(B * T * Vp)
        grad.p.update(from: logits.p, count: grad.count)
        targets.withUnsafeBufferPointer { tg in
            CrossEntropy.backward(logits: grad.p, lse: lse.p, targets: tg.baseAddress!, dloss: 1 / Float(B * T), B: B, T: T, V: V, Vp: Vp)
        }
        XCTAssertEqual(logits.array, saved)
        for i in 0..<B * T { for v in V..<Vp { XCTAssertEqual(grad.p[i * Vp + v], 0) } }
        let real = (0..<B * T * Vp).filter { $0 % Vp < V }
        checkGradient("crossentropy dlogits", x: logits, analytic: grad.array, indices: real, eps: 1e-2, f: f)
    }

    func testEncoderGradients() {
        var rng = KRNG(state: 6)
        let B = 2, T = 4, C = 3, Vp = 8, maxT = 6
        let wte = KBuf(random: Vp * C, rng: &rng), wpe = KBuf(random: maxT * C, rng: &rng)
        let inp: [Int32] = [1, 1, 7, 0, 7, 2, 1, 5]   // repeated tokens accumulate
        let out = KBuf(B * T * C), dout = KBuf(random: B * T * C, rng: &rng)
        let f: () -> Double = {
            inp.withUnsafeBufferPointer { Encoder.forward(out: out.p, inp: $0.baseAddress!, wte: wte.p, wpe: wpe.p, B: B, T: T, C: C) }
            return self.dot(dout, out.p)
        }
        _ = f()
        XCTAssertEqual(out.p[5 * C + 1], wte.p[2 * C + 1] + wpe.p[1 * C + 1])
        let dwte = KBuf(Vp * C), dwpe = KBuf(maxT * C)
        inp.withUnsafeBufferPointer {
            Encoder.backward(dwte: dwte.p, dwpe: dwpe.p, dout: dout.p, inp: $0.baseAddress!, B: B, T: T, C: C, Vp: Vp)
        }
        checkGradient("encoder dwte", x: wte, analytic: dwte.array, f: f)
        checkGradient("encoder dwpe", x: wpe, analytic: dwpe.array, f: f)
    }

    func testResidual() {
        var rng = KRNG(state: 7)
        let N = 33
        let a = KBuf(random: N, rng: &rng), b = KBuf(random: N, rng: &rng), out = KBuf(N), dout = KBuf(random: N, rng: &rng)
        Residual.forward(out: out.p, inp1: a.p, inp2: b.p, N: N)
        XCTAssertEqual(out.array, zip(a.array, b.array).map { $0 + $1 })
        let da = KBuf(N, fill: 1), db = KBuf(N)
        Residual.backward(dinp1: da.p, dinp2: db.p, dout: dout.p, N: N)
        XCTAssertEqual(da.array, dout.array.map { $0 + 1 })
        XCTAssertEqual(db.array, dout.array)
    }

    func testAdamWMatchesScalarFormula() {
        var rng = KRNG(state: 8)
        let N = 37
        let p = KBuf(random: N, rng: &rng), m = KBuf(N), v = KBuf(N)
        var rp = p.array.map(Double.init), rm = [Double](repeating: 0, count: N), rv = rm
        let lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1
        for step in 1...3 {
            let g = KBuf(random: N, rng: &rng)
            AdamW.update(params: p.p, grads: g.p, m: m.p, v: v.p, N: N, learningRate: Float(lr), beta1: Float(b1),
                         beta2: Float(b2), eps: Float(eps), weightDecay: Float(wd), step: step)
            for i in 0..<N {
                let gi = Double(g.p[i])
                rp[i] *= 1 - lr * wd
                rm[i] = b1 * rm[i] + (1 - b1) * gi
                rv[i] = b2 * rv[i] + (1 - b2) * gi * gi
                let mh = rm[i] / (1 - pow(b1, Double(step))), vh = rv[i] / (1 - pow(b2, Double(step)))
                rp[i] -= lr * mh / (vh.squareRoot() + eps)
            }
        }
        assertClose(p.array, rp.map(Float.init), tol: 1e-5, "AdamW params")
        assertClose(m.array, rm.map(Float.init), tol: 1e-5, "AdamW m")
        assertClose(v.array, rv.map(Float.init), tol: 1e-5, "AdamW v")
    }

    func testSgemmAllTransposesBLASAndFallback() {
        var rng = KRNG(state: 9)
        // Partial 12x32 tiles; then several K (256), M (96) blocks and full tiles of the AVX-512 kernel.
        for (M, N, K, pad) in [(37, 53, 29, 3), (110, 70, 300, 5)] {
        for transA in [false, true] { for transB in [false, true] { for beta: Float in [0, 1, 0.5] {
            let lda = (transA ? M : K) + pad, ldb = (transB ? K : N) + pad, ldc = N + pad
            let A = KBuf(random: (transA ? K : M) * lda, rng: &rng), Bm = KBuf(random: (transB ? N : K) * ldb, rng: &rng)
            let C0 = KBuf(random: M * ldc, rng: &rng)
            var ref = [Float](repeating: 0, count: M * N)
            for i in 0..<M { for j in 0..<N {
                var s = 0.0
                for k in 0..<K {
                    let a = transA ? A.p[k * lda + i] : A.p[i * lda + k], b = transB ? Bm.p[j * ldb + k] : Bm.p[k * ldb + j]
                    s += Double(a) * Double(b)
                }
                ref[i * N + j] = Float(0.75 * s + Double(beta) * Double(C0.p[i * ldc + j]))
            } }
            for fallback in [false, true] {
                let Cm = KBuf(M * ldc)
                Cm.p.update(from: C0.p, count: Cm.count)
                if beta == 0 { for i in 0..<M { Cm.p[i * ldc] = .nan } }   // beta 0 must overwrite, not scale
                BLAS.sgemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: 0.75, A: A.p, lda: lda, B: Bm.p, ldb: ldb,
                           beta: beta, C: Cm.p, ldc: ldc, useFallback: fallback)
                let got = (0..<M).flatMap { i in (0..<N).map { Cm.p[i * ldc + $0] } }
                assertClose(got, ref, tol: 1e-5, "sgemm tA=\(transA) tB=\(transB) beta=\(beta) fallback=\(fallback)")
                XCTAssertEqual(Cm.p[N], C0.p[N], "sgemm wrote into the ldc padding")
            }
        } } } }
    }
}

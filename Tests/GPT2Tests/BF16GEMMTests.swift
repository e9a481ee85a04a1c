// bf16 GEMM kernels against an fp64 product of the same bf16-rounded operands (the rounding is
// re-implemented here from the bf16 definition, and checked against PyTorch when available), at odd
// shapes, for every transpose / operand-type combination; the fused AdamW against the fp32 one;
// the model's bf16 mode against fp32 and its weight copy across parameter loads.
import Foundation
import XCTest
@testable import GPT2
import GPT2Kernels

final class BF16GEMMTests: XCTestCase {
    /// Kernels this CPU can run (the test is skipped where there is none).
    func paths() throws -> [CPUMatmulPath] {
        let p = [CPUMatmulPath.bf16AVX512, .bf16AMX].filter { $0.unavailableReason == nil }
        if p.isEmpty { throw XCTSkip("no bf16 kernel on this CPU: \(CPUMatmulPath.bf16AVX512.unavailableReason ?? "")") }
        return p
    }

    /// bf16 by definition: keep the top 16 bits after round-to-nearest-even of the low 16; zero
    /// and subnormal inputs flush to a signed zero (VCVTNEPS2BF16's behaviour).
    static func referenceBF16(_ x: Float) -> Float {
        if x.isNaN { return x }
        if x == 0 || x.isSubnormal { return x.sign == .minus ? -0.0 : 0.0 }
        let bits = x.bitPattern
        let low = bits & 0xFFFF, keep = bits & 0xFFFF_0000
        var rounded = keep
        if low > 0x8000 || (low == 0x8000 && (keep >> 16) & 1 == 1) { rounded &+= 0x1_0000 }
        return Float(bitPattern: rounded)
    }

    func testRoundingMatchesDefinition() {
        var rng = NormalRNG(seed: 3)
        var xs: [Float] = [0, -0.0, 1, -1, 1.00390625, 1.01171875, 3.4e38, -3.4e38, .infinity, -.infinity,
                           Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x0000_1234),
                           Float(bitPattern: 0x8040_0000), Float.leastNormalMagnitude, Float.greatestFiniteMagnitude]
        for s in [1e-30, 1e-6, 1, 1e6, 1e30] as [Float] { for _ in 0..<200 { xs.append(rng.next() * s) } }
        let got = BF16.round(xs)
        for (i, x) in xs.enumerated() {
            XCTAssertEqual(BF16.float(got[i]).bitPattern, Self.referenceBF16(x).bitPattern, "bf16(\(x))")
        }
        XCTAssertTrue(BF16.float(BF16.round([.nan])[0]).isNaN)
    }

    /// torch's float32 -> bfloat16 (round to nearest even; it keeps subnormals, so none are used).
    func testRoundingMatchesTorch() throws {
        guard let python = referencePython(importing: ["torch"]) else { throw XCTSkip("no Python with torch") }
        var rng = NormalRNG(seed: 5)
        var xs: [Float] = [1.00390625, 1.01171875, -2.00781250, 65504, 3.0e38]
        for s in [1e-20, 1e-3, 1, 1e4, 1e20] as [Float] { for _ in 0..<100 { xs.append(rng.next() * s) } }
        let list = xs.map { String(Int32(bitPattern: $0.bitPattern)) }
        let script = "import torch\nx = torch.tensor([\(list.joined(separator: ","))], dtype=torch.int32).view(torch.float32)\n"
            + "print(' '.join(str(int(v)) for v in x.to(torch.bfloat16).view(torch.int16).tolist()))"
        let r = try runProcess(python, ["-c", script])
        XCTAssertEqual(r.status, 0, r.stderr)
        let theirs = String(decoding: r.stdout, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int16($0) }.map { UInt16(bitPattern: $0) }
        XCTAssertEqual(theirs, BF16.round(xs))
    }

    /// C = alpha·op(A)·op(B) + beta·C against fp64 with bf16-rounded operands. Per element the
    /// bound is the fp32 accumulation error, (K + 2)·2⁻²⁴·Σ|a·b| plus the rounding of beta·C.
    func checkGEMM(_ path: CPUMatmulPath, M: Int, N: Int, K: Int, transA: Bool, transB: Bool,
                   aBF16: Bool, bBF16: Bool, beta: Float) {
        var rng = NormalRNG(seed: UInt64(M * 1000 + N * 10 + K))
        let lda = (transA ? M : K) + 3, ldb = (transB ? K : N) + 1, ldc = N + 5
        let a = (0..<(transA ? K : M) * lda).map { _ in rng.next() }, b = (0..<(transB ? N : K) * ldb).map { _ in rng.next() }
        let c0 = (0..<M * ldc).map { _ in rng.next() }
        let ar = a.map(Self.referenceBF16), br = b.map(Self.referenceBF16)
        let ah = BF16.round(a), bh = BF16.round(b)
        var c = c0
        let alpha: Float = 0.75
        a.withUnsafeBufferPointer { af in ah.withUnsafeBufferPointer { ahp in b.withUnsafeBufferPointer { bf in
            bh.withUnsafeBufferPointer { bhp in c.withUnsafeMutableBufferPointer { cp in
                BF16.gemm(path: path, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha,
                          A: aBF16 ? .bf16(ahp.baseAddress!) : .f32(af.baseAddress!), lda: lda,
                          B: bBF16 ? .bf16(bhp.baseAddress!) : .f32(bf.baseAddress!), ldb: ldb,
                          beta: beta, C: cp.baseAddress!, ldc: ldc)
            } }
        } } }
        var worst = 0.0
        for i in 0..<M {
            for j in 0..<ldc {
                let got = Double(c[i * ldc + j])
                if j >= N {   // columns past N are left alone
                    XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "\(path) column \(j) >= N written")
                    continue
                }
                var s = 0.0, mag = 0.0
                for k in 0..<K {
                    let x = Double(ar[transA ? k * lda + i : i * lda + k]), y = Double(br[transB ? j * ldb + k : k * ldb + j])
                    s += x * y
                    mag += abs(x * y)
                }
                let ref = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                let bound = Double(K + 2) * 0x1p-24 * mag + 0x1p-23 * abs(Double(beta) * Double(c0[i * ldc + j])) + 1e-30
                worst = max(worst, abs(got - ref) / bound)
            }
        }
        XCTAssertLessThanOrEqual(worst, 1, "\(path) M\(M) N\(N) K\(K) transA \(transA) transB \(transB) aBF16 \(aBF16) bBF16 \(bBF16): error \(worst)x the fp32 bound")
    }

    /// Shapes with edges everywhere: K odd, below and above the 512 k block and not a multiple of
    /// 2 or 32; M, N not multiples of 12/16/32; N past one 1024-column block.
    func testGEMMAgainstRoundedReferenceAtOddShapes() throws {
        for path in try paths() {
            for (M, N, K) in [(1, 1, 1), (13, 33, 3), (5, 17, 31), (37, 45, 70), (25, 1030, 33), (40, 50, 515)] {
                for transA in [false, true] { for transB in [false, true] {
                    for (aBF16, bBF16) in [(false, false), (false, true), (true, true)] {
                        checkGEMM(path, M: M, N: N, K: K, transA: transA, transB: transB, aBF16: aBF16, bBF16: bBF16,
                                  beta: K % 2 == 0 ? 0 : 0.5)
                    }
                } }
            }
        }
    }

    /// Rounding fp32 activations while packing (VCVTNE2PS2BF16) gives the same bits as the copy
    /// made with BF16.round, so the products are identical.
    func testPackingRoundsLikeTheWeightCopy() throws {
        for path in try paths() {
            var rng = NormalRNG(seed: 11)
            let M = 20, N = 40, K = 66
            var a = (0..<M * K).map { _ in rng.next() }
            a[0] = Float(bitPattern: 0x3F80_8000); a[1] = Float(bitPattern: 0x0000_1234); a[2] = 1e-39; a[3] = Float(bitPattern: 0x3F81_8000)
            let ah = BF16.round(a), bh = BF16.round((0..<K * N).map { _ in rng.next() })
            var c1 = [Float](repeating: 0, count: M * N), c2 = c1
            a.withUnsafeBufferPointer { af in ah.withUnsafeBufferPointer { ahp in bh.withUnsafeBufferPointer { bhp in
                BF16.gemm(path: path, transA: false, transB: false, M: M, N: N, K: K, A: .f32(af.baseAddress!), lda: K,
                          B: .bf16(bhp.baseAddress!), ldb: N, beta: 0, C: &c1, ldc: N)
                BF16.gemm(path: path, transA: false, transB: false, M: M, N: N, K: K, A: .bf16(ahp.baseAddress!), lda: K,
                          B: .bf16(bhp.baseAddress!), ldb: N, beta: 0, C: &c2, ldc: N)
            } } }
            XCTAssertEqual(c1, c2, "\(path)")
        }
    }

    /// The fused AdamW leaves params, m, v bit-identical to gpt2k_adamw and writes bf16(params).
    func testFusedAdamWMatchesFP32AndWritesTheCopy() {
        var rng = NormalRNG(seed: 8)
        let n = 1003
        let p0 = (0..<n).map { _ in rng.next() }, g = (0..<n).map { _ in rng.next() * 0.1 }
        let m0 = (0..<n).map { _ in rng.next() * 0.01 }, v0 = (0..<n).map { _ in abs(rng.next()) * 1e-4 }
        var p1 = p0, m1 = m0, v1 = v0, p2 = p0, m2 = m0, v2 = v0
        var copy = [UInt16](repeating: 0, count: n)
        gpt2k_adamw(&p1, g, &m1, &v1, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.19, 0.0975, 0.5)
        gpt2k_adamw_bf16(&p2, g, &m2, &v2, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, 0.19, 0.0975, 0.5, &copy)
        XCTAssertEqual(p1.map(\.bitPattern), p2.map(\.bitPattern))
        XCTAssertEqual(m1.map(\.bitPattern), m2.map(\.bitPattern))
        XCTAssertEqual(v1.map(\.bitPattern), v2.map(\.bitPattern))
        XCTAssertEqual(copy.map(BF16.float).map(\.bitPattern), p2.map(Self.referenceBF16).map(\.bitPattern))
    }

    /// A bf16 model trains like the fp32 one, and its weight copy follows parameter loads.
    func testModelBF16TracksFP32AndParameterLoads() throws {
        guard let path = try paths().first else { return }
        let config = GPT2Config(maxSeqLen: 16, vocabSize: 64, numLayers: 2, numHeads: 4, channels: 32)
        let ref = GPT2(config: config), low = GPT2(config: config)
        ref.initializeRandom(seed: 1)
        low.initializeRandom(seed: 1)
        low.precision = path
        var rng = NormalRNG(seed: 2)
        let B = 2, T = 16
        for step in 1...3 {
            let tok = (0...B * T).map { _ in Int32(rng.nextUInt64() % 64) }
            let x = Array(tok[0..<B * T]), y = Array(tok[1...])
            let l0 = ref.forward(inputs: x, targets: y, B: B, T: T), l1 = low.forward(inputs: x, targets: y, B: B, T: T)
            XCTAssertEqual(l1, l0, accuracy: 2e-3 * l0, "loss at step \(step)")
            for m in [ref, low] {
                m.zeroGrad(); m.backward(); m.clipGradients(maxNorm: 1)
                m.update(learningRate: 1e-2, weightDecay: 0.1, step: step)
            }
        }
        // replace the parameters wholesale (as a checkpoint load does): the next forward must use them
        let other = GPT2(config: config)
        other.initializeRandom(seed: 99)
        let x = (0..<B * T).map { Int32($0 % 64) }, y = (0..<B * T).map { Int32(($0 * 7) % 64) }
        low.params.copy(from: other.params)
        other.precision = path
        XCTAssertEqual(low.forward(inputs: x, targets: y, B: B, T: T), other.forward(inputs: x, targets: y, B: B, T: T))
        // an edit of one weight is announced with parametersDidChange()
        low.params.pointer(.fcw, layer: 1)[5] += 0.5
        other.params.pointer(.fcw, layer: 1)[5] += 0.5
        low.parametersDidChange()
        let fresh = GPT2(config: config)
        fresh.params.copy(from: other.params)
        fresh.precision = path
        XCTAssertEqual(low.forward(inputs: x, targets: y, B: B, T: T), fresh.forward(inputs: x, targets: y, B: B, T: T))
    }

    /// The AMX kernel's packing and tiling, with the tile instructions emulated in C from the SDM
    /// (Tests/native/amx_emulation.c): the only check of that code on CPUs without AMX.
    func testAMXKernelUnderEmulation() throws {
        guard CPUFeatures.current.canRunAVX512BF16 else { throw XCTSkip("the AMX packers need AVX512-BF16") }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        guard let clang = path.map({ "\($0)/clang" }).first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw XCTSkip("no clang in PATH")
        }
        let root = TestPaths.root.path
        let exe = FileManager.default.temporaryDirectory.appendingPathComponent("amx-emulation-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: exe) }
        let build = try runProcess(clang, ["-O1", "-DGPT2K_AMX_EMULATE", "-I\(root)/Sources/GPT2Kernels/include",
                                           "-I\(root)/Sources/GPT2Kernels", "-I\(root)/Tests/native",
                                           "\(root)/Tests/native/amx_emulation.c", "\(root)/Sources/GPT2Kernels/sgemm_amx.c",
                                           "\(root)/Sources/GPT2Kernels/sgemm_bf16.c", "-lm", "-lpthread", "-o", exe])
        XCTAssertEqual(build.status, 0, build.stderr)
        let run = try runProcess(exe, [])
        XCTAssertEqual(run.status, 0, run.text)
        XCTAssertTrue(run.text.contains("96 passed, 0 failed"), run.text)
    }
}

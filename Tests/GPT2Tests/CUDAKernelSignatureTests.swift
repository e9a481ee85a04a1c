// Every typed launcher against its kernel's C signature, without a GPU: the launchers run on a
// recording `CUDAKernelLauncher`, and the argument kinds each packs (pointer / int / size_t /
// float, in order) must equal those of the `extern "C" __global__` declaration parsed from the
// kernel source. Every kernel of every source must be launched by the test, so a new kernel
// without a launcher (or a launcher missing here) fails too.
import Foundation
import XCTest
@testable import GPT2

/// Records launches instead of running them.
final class RecordingLauncher: CUDAKernelLauncher {
    struct Call { let kernel: String; let launch: CUDALaunchConfig.Launch; let args: [CUDAKernelArg] }
    var calls: [Call] = []
    let sms = 132
    let precision: CUDAPrecision
    let headSize = 64
    let attentionTCAvailable = true

    init(precision: CUDAPrecision) { self.precision = precision }

    func enqueue(kernel: String, launch: CUDALaunchConfig.Launch, args: [CUDAKernelArg], file: String, line: Int) throws {
        calls.append(Call(kernel: kernel, launch: launch, args: args))
    }
}

final class CUDAKernelSignatureTests: XCTestCase {
    /// name → argument kinds of every `extern "C" __global__ void NAME(ARGS)` in `program`.
    static func signatures(_ program: String) throws -> [String: [CUDAKernelArg.Kind]] {
        let regex = try NSRegularExpression(pattern: #"extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)"#)
        var out: [String: [CUDAKernelArg.Kind]] = [:]
        let ns = program as NSString
        for m in regex.matches(in: program, range: NSRange(location: 0, length: ns.length)) {
            let name = ns.substring(with: m.range(at: 1)), params = ns.substring(with: m.range(at: 2))
            var kinds: [CUDAKernelArg.Kind] = []
            for p in params.split(separator: ",") {
                let words = p.replacingOccurrences(of: "*", with: " * ").split(whereSeparator: { $0.isWhitespace }).map(String.init)
                if words.contains("*") { kinds.append(.pointer); continue }
                let type = words.dropLast().filter { $0 != "const" && $0 != "unsigned" }
                switch type.last {
                case "int": kinds.append(.int)
                case "size_t": kinds.append(.size)
                case "float": kinds.append(.float)
                default: throw XCTSkip("unknown parameter type in \(name): \(p)")
                }
            }
            out[name] = kinds
        }
        return out
    }

    /// Calls every launcher once with plausible arguments.
    static func launchEverything(_ l: RecordingLauncher) throws {
        let p: CUdeviceptr = 0x1000   // any 16-byte-aligned address: nothing is dereferenced
        let B = 2, T = 64, C = 128, NH = 2
        let scratch = CUDAContext.ClassifierScratch(runMax: p, runSum: p, targetLogit: p)
        // encoder
        try l.encoderForward(out: p, inp: p, wte: p, wpe: p, B: B, T: T, C: C)
        try l.encoderBackwardWPE(dwpe: p, dout: p, B: B, T: T, C: C)
        try l.encoderBackwardWTE(dwte: p, dout: p, starts: p, positions: p, tokens: p, buckets: 5, C: C)
        // layernorm
        try l.layerNormForward(out: p, mean: p, rstd: p, inp: p, weight: p, bias: p, B: B, T: T, C: C)
        try l.fusedResidualLayerNormForward(residual: p, out: p, mean: p, rstd: p, inp1: p, inp2: p, weight: p, bias: p, B: B, T: T, C: C)
        let lnBlock = CUDALaunchConfig.layerNormBackward(rows: B * T, C: C, multiprocessors: l.sms)
        try l.layerNormBackwardBlocks(dinp: p, scratch: p, dout: p, inp: p, weight: p, mean: p, rstd: p, N: B * T, C: C, launch: lnBlock)
        let lnWarp = try XCTUnwrap(CUDALaunchConfig.layerNormBackwardWarp(rows: B * T, C: C, elementSize: 2, multiprocessors: l.sms))
        try l.layerNormBackwardWarps(dinp: p, scratch: p, dout: p, inp: p, weight: p, mean: p, rstd: p, N: B * T, C: C, launch: lnWarp)
        // gelu, bias, reductions, conversion
        try l.geluForward(out: p, inp: p, N: 100)
        try l.geluBackward(dinp: p, inp: p, dout: p, N: 100)
        try l.addBias(out: p, bias: p, N: B * T, OC: C)
        try l.biasBackward(dbias: p, dout: p, B: B, T: T, OC: C, scratch: p)
        try l.gradNormPartial(partials: p, grads: p, N: 1000)
        try l.gradNormFinal(out: p, partials: p, n: CUDALaunchConfig.gradNormBlocks)
        try l.columnSum(out: p, partials: p, rows: 3, cols: C, ld: C)
        try l.floatToFloatX(out: p, inp: p, N: 10)
        try l.floatXToFloat(out: p, inp: p, N: 10)
        // classifier
        try l.classifierInit(scratch, N: B * T)
        try l.classifierChunkForward(scratch, logits: p, targets: p, N: B * T, Vc: 256, v0: 0, V: 1000)
        try l.classifierFinalize(scratch, losses: p, lse: p, N: B * T)
        try l.classifierChunkBackward(logits: p, lse: p, targets: p, dloss: 0.5, N: B * T, Vc: 256, v0: 0, V: 1000)
        // attention, both implementations
        try l.attentionForward(out: p, lse: p, inp: p, B: B, T: T, C: C, NH: NH)
        try l.attentionBackward(dinp: p, dout: p, inp: p, out: p, lse: p, B: B, T: T, C: C, NH: NH, scratch: p)
        try l.attentionForwardTC(out: p, lse: p, inp: p, B: B, T: T, C: C, NH: NH)
        try l.attentionBackwardTC(dinp: p, dout: p, inp: p, out: p, lse: p, B: B, T: T, C: C, NH: NH, scratch: p)
        // optimizer
        try l.adamW(params: p, paramsOut: p, grads: p, m: p, v: p, N: 100, learningRate: 1e-3, beta1: AdamWDefaults.beta1,
                    beta2: AdamWDefaults.beta2, eps: AdamWDefaults.eps, weightDecay: 0.1, step: 1)
        // decoding
        try l.kvCacheWrite(kcache: p, vcache: p, qkv: p, S: 3, n: 2, pos0: 5, maxLength: 16, C: C)
        try l.decodeAttention(out: p, qkv: p, kcache: p, vcache: p, S: 3, n: 2, pos0: 5, maxLength: 16, C: C, NH: NH)
        try l.sample(ids: p, weights: p, logits: p, uniforms: p, S: 3, V: 1000, Vp: 1024, topK: 50, temperature: 0.8)
    }

    func testEveryLauncherMatchesItsKernelSignature() throws {
        var declared: [String: [CUDAKernelArg.Kind]] = [:]
        for source in CUDAKernelSource.all {
            let sigs = try Self.signatures(source.program)
            XCTAssertEqual(Set(sigs.keys), Set(source.kernels), "\(source.name): declared kernels vs the source's list")
            declared.merge(sigs) { a, _ in a }
        }
        for precision in CUDAPrecision.allCases {
            let l = RecordingLauncher(precision: precision)
            try Self.launchEverything(l)
            for call in l.calls {
                guard let kinds = declared[call.kernel] else {
                    XCTFail("\(call.kernel) is launched but declared by no source")
                    continue
                }
                XCTAssertEqual(call.args.map(\.kind), kinds, "\(call.kernel): launcher arguments vs the C signature")
                XCTAssertEqual(call.launch.block.count % 32, 0, "\(call.kernel): block \(call.launch.block) is not whole warps")
                XCTAssertLessThanOrEqual(call.launch.block.count, 1024, "\(call.kernel)")
                XCTAssertLessThanOrEqual(call.launch.sharedBytes, 49152, "\(call.kernel): dynamic shared memory above the default limit")
            }
            XCTAssertEqual(Set(l.calls.map(\.kernel)), Set(declared.keys), "kernels no launcher reached")
        }
    }

    /// The parser itself: kinds of a hand-written declaration, and a mismatch is visible.
    func testSignatureParser() throws {
        let sigs = try Self.signatures(#"extern "C" __global__ void k(floatX* out, const int* inp, size_t N, int C, float lr) {}"#)
        XCTAssertEqual(sigs["k"], [.pointer, .pointer, .size, .int, .float])
        XCTAssertNotEqual(sigs["k"], [CUDAKernelArg.pointer(0), .pointer(0), .int32(1), .int32(1), .float(1)].map(\.kind))
    }
}

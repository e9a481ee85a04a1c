import ArgumentParser
import Foundation
import GPT2

/// `gpt selftest --device cuda`: every CUDA kernel, then full training steps of a small model,
/// against the CPU engine; prints each comparison's max relative error and exits non-zero when
/// one exceeds its tolerance (or when there is no usable GPU, after printing `gpt info`'s report).
/// `gpt selftest --device cpu --precision bf16`: the same for the CPU's bf16 matmul kernels
/// (each one this CPU can run: AMX, AVX512-BF16) against the fp32 CPU engine.
struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the CUDA kernels (or the CPU's bf16 kernels) and training step against the fp32 CPU engine.",
        discussion: """
        Error = max |test - reference| / max |reference| per tensor. CUDA fp32 mode must agree to \
        1e-5 (AdamW parameter updates 1e-3); CUDA bf16 tolerances are listed in docs/GPU.md. \
        --device cpu checks every bf16 kernel this CPU can run (AMX, AVX512-BF16): 1e-5 against \
        fp32 on the same bf16-rounded operands, 2e-2 against fp32 originals, model steps as CUDA bf16.
        """)

    enum Device: String, ExpressibleByArgument, CaseIterable { case cuda, cpu }
    enum Precision: String, ExpressibleByArgument, CaseIterable { case fp32, bf16, both }

    @Option(help: "Device to test: cuda, or cpu (its bf16 kernels; the fp32 CPU engine is the reference).")
    var device: Device = .cuda
    @Option(help: "Activation precision: fp32 (parity), bf16 (training), or both.")
    var precision: Precision = .both
    @Option(parsing: .unconditional, help: "GPU ordinal.")
    var gpu: Int = 0
    @Option(parsing: .unconditional, help: "Training steps of the small model.")
    var steps: Int = 3
    @Flag(help: "Skip the model steps (kernels only).")
    var kernelsOnly = false

    func validate() throws {
        try NumberOption.check("--gpu", gpu, atLeast: 0)
        try NumberOption.check("--steps", steps, atLeast: 1, atMost: NumberLimit.count)
    }

    func run() throws {
        if device == .cpu { return try runCPU() }
        let precisions: [CUDAPrecision] = precision == .both ? [.fp32, .bf16] : [precision == .fp32 ? .fp32 : .bf16]
        var failures: [String] = []
        for p in precisions {
            let ctx: CUDAContext
            do {
                ctx = try CUDAContext(ordinal: gpu, precision: p, headSize: 64)
            } catch let e as CUDAUnavailable {
                print(e.report.description, terminator: "")
                FileHandle.standardError.write(Data("error: gpt selftest --device cuda needs a usable CUDA GPU:\n\(e.report.problems.map { "  - \($0)" }.joined(separator: "\n"))\n".utf8))
                throw ExitCode.failure
            }
            let d = ctx.device
            print("== \(p.rawValue) on [\(d.ordinal)] \(d.name) (sm_\(d.arch), \(d.multiprocessors) SMs)")
            for line in ctx.compileLog { print("   " + line) }
            let record: (CUDASelftestResult) -> Void = { r in
                let status = r.passed ? "PASS" : "FAIL"
                let name = r.name.count < 58 ? r.name + String(repeating: " ", count: 58 - r.name.count) : r.name
                print("  \(status)  \(name) " + String(format: "max rel err %.3e  (tol %.0e)", r.maxRelativeError, r.tolerance))
                if !r.passed { failures.append("\(p.rawValue): \(r.name)") }
            }
            let t0 = Date()
            try CUDASelftest.runKernels(context: ctx, record: record)
            try CUDASelftest.runAttentionTC(context: ctx, record: record)   // bf16, head size 64, sm_80+ only
            if !kernelsOnly {
                try CUDASelftest.runModel(context: ctx, steps: steps, vocabChunk: 256, record: record)
                try CUDASelftest.runModel(context: ctx, steps: steps, vocabChunk: nil, record: record)
            }
            if p == precisions.last, !kernelsOnly, try !CUDASelftest.runNCCL(context: ctx, record: record) {
                print("   (NCCL not found: all-reduce not checked)")
            }
            print(String(format: "   (%.2f s)", Date().timeIntervalSince(t0)))
        }
        if failures.isEmpty {
            print("selftest: all comparisons within tolerance")
        } else {
            print("selftest: \(failures.count) comparison(s) out of tolerance:\n" + failures.map { "  - \($0)" }.joined(separator: "\n"))
            throw ExitCode.failure
        }
    }

    /// Every bf16 kernel this CPU can run against the fp32 engine.
    func runCPU() throws {
        if precision == .fp32 {
            throw ValidationError("--device cpu checks the bf16 kernels against fp32: use --precision bf16 (or both)")
        }
        let f = CPUFeatures.current
        print("CPU: \(f.brand.isEmpty ? "unknown" : f.brand); threads \(Parallel.threadCount); fp32 reference: \(BLAS.backendDescription)")
        var failures: [String] = []
        var ran = 0
        for path in [CPUMatmulPath.bf16AMX, .bf16AVX512] {
            if let why = path.unavailableReason {
                print("== \(path.rawValue): not checked: \(why)")
                continue
            }
            ran += 1
            print("== \(path.rawValue): \(path.displayName)")
            let record: (CPUSelftestResult) -> Void = { r in
                let status = r.passed ? "PASS" : "FAIL"
                let name = r.name.count < 64 ? r.name + String(repeating: " ", count: 64 - r.name.count) : r.name
                print("  \(status)  \(name) " + String(format: "max rel err %.3e  (tol %.1e)", r.maxRelativeError, r.tolerance))
                if !r.passed { failures.append("\(path.rawValue): \(r.name)") }
            }
            let t0 = Date()
            CPUSelftest.runKernels(path: path, record: record)
            if !kernelsOnly { CPUSelftest.runModel(path: path, steps: steps, record: record) }
            print(String(format: "   (%.2f s)", Date().timeIntervalSince(t0)))
        }
        if ran == 0 {
            FileHandle.standardError.write(Data("error: no bf16 kernel can run on this CPU (see above); the CPU engine runs fp32 here\n".utf8))
            throw ExitCode.failure
        }
        if failures.isEmpty {
            print("selftest: all comparisons within tolerance")
        } else {
            print("selftest: \(failures.count) comparison(s) out of tolerance:\n" + failures.map { "  - \($0)" }.joined(separator: "\n"))
            throw ExitCode.failure
        }
    }
}

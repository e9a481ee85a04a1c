import ArgumentParser
import Foundation
import GPT2

/// `gpt selftest --device cuda`: every CUDA kernel, then full training steps of a small model,
/// against the CPU engine; prints each comparison's max relative error and exits non-zero when
/// one exceeds its tolerance (or when there is no usable GPU, after printing `gpt info`'s report).
struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the CUDA kernels and training step against the CPU engine (needs a GPU).",
        discussion: """
        Error = max |gpu - cpu| / max |cpu| per tensor. fp32 mode must agree to 1e-5 (AdamW \
        parameter updates 1e-3); bf16 tolerances are listed in docs/GPU.md.
        """)

    enum Device: String, ExpressibleByArgument, CaseIterable { case cuda }
    enum Precision: String, ExpressibleByArgument, CaseIterable { case fp32, bf16, both }

    @Option(help: "Device to test (only cuda: the CPU engine is the reference).")
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
}

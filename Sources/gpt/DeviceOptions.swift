import ArgumentParser
import Foundation
import GPT2

/// `--precision`: the matmul precision. auto: bf16 on a GPU (llm.c's mixed precision); on the
/// CPU, fp32.
enum PrecisionChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, fp32, bf16
}

/// The option group every command that runs a model shares: where it runs and in what precision.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Device: auto (CUDA when `gpt info` finds a usable GPU, else the CPU; GPT2_CUDA_AUTO=0 keeps the CPU), cpu, or cuda (one GPU per rank, LOCAL_RANK picks it).")
    var device: ComputeDevice = .auto

    @Option(help: "Matmul precision: auto, fp32, or bf16 (bf16 operands, fp32 accumulation and master weights, as llm.c's mixed precision). auto: bf16 on a GPU, fp32 on the CPU.")
    var precision: PrecisionChoice = .auto

    /// The CUDA report when the command runs on a GPU, nil for the CPU.
    func cudaReport() throws -> CUDAReport? { try wantsCUDA(device) }

    /// The precision of CUDA activations for this choice.
    var cudaPrecision: CUDAPrecision { precision == .fp32 ? .fp32 : .bf16 }

    /// Checks the CPU can run the requested precision.
    func checkCPUPrecision() throws {
        if precision == .bf16 { throw CLIError("--precision bf16 runs on CUDA only so far; use --precision fp32 on the CPU") }
    }
}

/// An inference engine for `gpt` on the device `options` choose: the CPU model itself, or a GPU
/// copy of its weights. Prints the GPU's description on stderr.
func makeInferenceEngine(_ gpt: GPT2, _ options: DeviceOptions) throws -> any InferenceEngine {
    guard try options.cudaReport() != nil else {
        try options.checkCPUPrecision()
        return gpt
    }
    let ctx = try openCUDA(ordinal: 0, precision: options.cudaPrecision, headSize: gpt.config.headSize)
    FileHandle.standardError.write(Data((describeCUDA(ctx) + "\n").utf8))
    return try makeCUDAInferenceEngine(model: gpt, context: ctx)
}

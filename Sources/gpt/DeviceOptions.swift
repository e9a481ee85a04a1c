import ArgumentParser
import Foundation
import GPT2

/// `--precision`: the matmul precision.
enum PrecisionChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, fp32, bf16

    /// The CPU request for this choice, where `auto` means `autoOnCPU`.
    func cpu(autoOnCPU: CPUPrecision) -> CPUPrecision {
        switch self {
        case .auto: return autoOnCPU
        case .fp32: return .fp32
        case .bf16: return .bf16
        }
    }
}

/// The option group every command that runs a model shares: where it runs and in what precision.
struct DeviceOptions: ParsableArguments {
    @Option(help: "Device: auto (CUDA when `gpt info` finds a usable GPU, else the CPU; GPT2_CUDA_AUTO=0 keeps the CPU), cpu, or cuda (one GPU per rank, LOCAL_RANK picks it).")
    var device: ComputeDevice = .auto

    @Option(help: "Matmul precision: auto, fp32, or bf16 (bf16 operands, fp32 accumulation and master weights, llm.c's mixed precision; on the CPU with AMX or AVX512-BF16). auto: bf16 on a GPU; on the CPU, bf16 for training when this CPU's bf16 kernel passes its start-up check, else fp32, and fp32 for evaluation, sampling and benchmarks (exact against the references).")
    var precision: PrecisionChoice = .auto

    /// The CUDA report when the command runs on a GPU, nil for the CPU.
    func cudaReport() throws -> CUDAReport? { try wantsCUDA(device) }

    /// The precision of CUDA activations for this choice.
    var cudaPrecision: CUDAPrecision { precision == .fp32 ? .fp32 : .bf16 }

    /// The CPU path for this choice (`auto` meaning `autoOnCPU`), checked on this CPU.
    func cpuPrecision(autoOnCPU: CPUPrecision = .fp32) throws -> CPUPrecisionChoice {
        do {
            return try precision.cpu(autoOnCPU: autoOnCPU).resolve()
        } catch let e as CPUPrecisionError {
            throw CLIError(e.localizedDescription)
        }
    }
}

/// An inference engine for `gpt` on the device `options` choose: the CPU model itself (in the
/// chosen precision), or a GPU copy of its weights. Prints the GPU, or a bf16 CPU path, on stderr.
func makeInferenceEngine(_ gpt: GPT2, _ options: DeviceOptions) throws -> any InferenceEngine {
    guard try options.cudaReport() != nil else {
        let choice = try options.cpuPrecision()
        gpt.precision = choice.path
        if choice.path.isBF16 { FileHandle.standardError.write(Data((choice.description + "\n").utf8)) }
        return gpt
    }
    let ctx = try openCUDA(ordinal: 0, precision: options.cudaPrecision, headSize: gpt.config.headSize)
    FileHandle.standardError.write(Data((describeCUDA(ctx) + "\n").utf8))
    return try makeCUDAInferenceEngine(model: gpt, context: ctx)
}

import ArgumentParser
import Foundation
import GPT2

/// `gpt info`: what this machine offers the engine — CUDA devices (via the driver API), the CUDA
/// libraries found with versions and paths, and the CPU side (model, BLAS, threads, the matmul
/// paths: fp32, bf16 on AMX or AVX512-BF16, and what `--precision auto` picks here).
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show CUDA devices, the CUDA libraries found (versions, paths) and the CPU backend.",
        discussion: """
        CUDA libraries are searched in GPT2_CUDA_LIB_DIRS, LD_LIBRARY_PATH, $CUDA_HOME/lib64, \
        /usr/local/cuda/lib64, the nvidia-* wheels of the active Python (GPT2_PYTHON or python3) and \
        the system library directories; NVRTC's headers in GPT2_CUDA_INCLUDE or beside it. See docs/GPU.md.
        """)

    func run() throws {
        print(CUDAProbe.run().description, terminator: "")
        let f = CPUFeatures.current
        print("CPU:\n  model        \(f.brand.isEmpty ? "unknown (no CPUID brand string)" : f.brand)")
        print("  BLAS         \(BLAS.backendDescription)\n  threads      \(ProcessInfo.processInfo.activeProcessorCount)")
        print("  fp32 matmul  \(BLAS.backendDescription)")
        for path in [CPUMatmulPath.bf16AMX, .bf16AVX512] {
            let label = path == .bf16AMX ? "bf16 AMX    " : "bf16 AVX512 "
            print("  \(label) \(path.unavailableReason.map { "unavailable: \($0)" } ?? "available (\(path.displayName))")")
        }
        do {
            let choice = try CPUPrecision.auto.resolve()
            print("  --precision auto -> \(choice.path.rawValue): \(choice.reason)")
        } catch {
            print("  --precision auto -> error: \(error.localizedDescription)")
        }
    }
}

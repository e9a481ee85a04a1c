import ArgumentParser
import Foundation
import GPT2

/// `gpt info`: what this machine offers the engine — CUDA devices (via the driver API), the CUDA
/// libraries found with versions and paths, and the CPU side (BLAS, threads).
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
        print("CPU:\n  BLAS         \(BLAS.backendDescription)\n  threads      \(ProcessInfo.processInfo.activeProcessorCount)")
    }
}

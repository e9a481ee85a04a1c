// Builds the CUDA emulator (Tests/CUDAEmulator: a driver, NVRTC and cuBLASLt that run our kernel
// sources on the CPU with the host C++ compiler) and opens `CUDAContext`s on it, so the GPU
// engine's host code and kernels run end to end in CI without a GPU. Needs a C++17 compiler
// (clang++ ships with the Swift toolchain; $CUDA_EMU_CXX overrides). The libraries and the
// kernels compiled for them are cached in the temporary directory under a hash of the emulator's
// sources.
import Foundation
import XCTest
@testable import GPT2

enum CUDAEmulator {
    struct Build {
        let libraries: String
        let include: String
        let kernelCache: String
        let compiler: String
    }

    nonisolated(unsafe) static var cached: Result<Build, Error>?

    /// The emulator's sources.
    static let sourceDirectory = TestPaths.root.appendingPathComponent("Tests/CUDAEmulator")

    /// A C++ compiler: $CUDA_EMU_CXX, else clang++ or g++ on PATH or beside the Swift toolchain.
    static func compiler() -> String? {
        let env = ProcessInfo.processInfo.environment
        if let c = env["CUDA_EMU_CXX"], !c.isEmpty { return c }
        let dirs = (env["PATH"] ?? "").split(separator: ":").map(String.init) + ["/opt/swift/usr/bin", "/usr/bin"]
        for name in ["clang++", "g++"] {
            for d in dirs where FileManager.default.isExecutableFile(atPath: d + "/" + name) { return d + "/" + name }
        }
        return nil
    }

    /// Builds (once per source version) and returns the emulator; throws XCTSkip without a compiler.
    static func build() throws -> Build {
        if let cached { return try cached.get() }
        let result = Result<Build, Error> { try makeBuild() }
        cached = result
        return try result.get()
    }

    private static func makeBuild() throws -> Build {
        guard let cxx = compiler() else { throw XCTSkip("no C++ compiler for the CUDA emulator (set CUDA_EMU_CXX)") }
        let files = ["driver.cpp", "nvrtc.cpp", "cublaslt.cpp", "include/cuda_bf16.h", "include/gpt2_cuda_emu.h"]
        var bytes: [UInt8] = Array(cxx.utf8)
        for f in files { bytes += [UInt8](try Data(contentsOf: sourceDirectory.appendingPathComponent(f))) }
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-cuda-emulator-\(String(h, radix: 16))").path
        let libs = dir + "/lib"
        try FileManager.default.createDirectory(atPath: libs, withIntermediateDirectories: true)
        for (source, library) in [("driver", "libcuda.so.1"), ("nvrtc", "libnvrtc.so.13"), ("cublaslt", "libcublasLt.so.13")] {
            let out = libs + "/" + library
            if FileManager.default.fileExists(atPath: out) { continue }
            let tmp = out + ".tmp\(getpid())"
            let r = try runProcess(cxx, ["-std=c++17", "-O3", "-fPIC", "-shared", sourceDirectory.appendingPathComponent(source + ".cpp").path,
                                         "-o", tmp])
            guard r.status == 0 else { throw CUDAEmulatorError(message: "\(cxx) failed on \(source).cpp:\n\(r.stderr)") }
            guard rename(tmp, out) == 0 else { throw CUDAEmulatorError(message: "cannot move \(tmp) into place") }
        }
        setenv("CUDA_EMU_CXX", cxx, 1)
        return Build(libraries: libs, include: sourceDirectory.appendingPathComponent("include").path,
                     kernelCache: dir + "/kernels", compiler: cxx)
    }

    /// The library search that finds only the emulator.
    static func search(_ b: Build) -> CUDALibrarySearch {
        CUDALibrarySearch(environment: ["GPT2_CUDA_LIB_DIRS": b.libraries, "GPT2_CUDA_INCLUDE": b.include],
                          sitePackages: [], toolkitDirectories: [], systemDirectories: [])
    }

    /// A context on the emulated device with every kernel compiled for `precision`.
    static func context(_ precision: CUDAPrecision, headSize: Int = 64) throws -> CUDAContext {
        let b = try build()
        return try CUDAContext(ordinal: 0, precision: precision, headSize: headSize, search: search(b), cacheDirectory: b.kernelCache)
    }

    /// Environment for running `gpt` on the emulator.
    static func environment() throws -> [String: String] {
        let b = try build()
        return ["GPT2_CUDA_LIB_DIRS": b.libraries, "GPT2_CUDA_INCLUDE": b.include, "GPT2_CUDA_NO_PYTHON": "1",
                "GPT2_CUDA_CACHE": b.kernelCache, "CUDA_EMU_CXX": b.compiler, "LD_LIBRARY_PATH": ""]
    }
}

struct CUDAEmulatorError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

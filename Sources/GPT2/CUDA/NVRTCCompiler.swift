// Compiles the embedded kernel sources with NVRTC for the device's architecture and caches the
// result on disk, keyed by a hash of the program text, the options (architecture, precision,
// head size, include directory) and the NVRTC version, so start-up compiles once per machine.
// CUBIN for the exact sm_XX when NVRTC knows the architecture (no driver JIT, and no PTX newer
// than the driver understands — NVRTC 13.5 emits PTX 9.5, which a CUDA 13.0 driver rejects);
// otherwise PTX for the newest compute_XX it knows that is not above the device's.
// Cache: GPT2_CUDA_CACHE, else $XDG_CACHE_HOME/gpt2-swift/cuda, else ~/.cache/gpt2-swift/cuda.
import Foundation

/// NVRTC options, cache keys and the on-disk cache (the pure parts are static and unit-tested).
public struct NVRTCCompiler: Sendable {
    public let nvrtc: NVRTC
    /// Directory holding cuda_bf16.h.
    public let includeDirectory: String
    /// Cache directory, or nil to compile every time.
    public let cacheDirectory: String?

    public init(nvrtc: NVRTC, includeDirectory: String, cacheDirectory: String? = NVRTCCompiler.defaultCacheDirectory()) {
        self.nvrtc = nvrtc
        self.includeDirectory = includeDirectory
        self.cacheDirectory = cacheDirectory
    }

    /// One compiled unit.
    public struct Compiled: Sendable {
        public let source: CUDAKernelSource
        public let image: [UInt8]
        public let format: CUDAImageFormat
        /// "sm_90" or "compute_90".
        public let target: String
        public let log: String
        public let fromCache: Bool
    }

    // MARK: Pure helpers

    /// The NVRTC command line: target, C++17, device code by default, headers, defines.
    /// NVRTC optimises by default and rejects -O3, so no optimisation flag is passed.
    public static func options(target: String, includeDirectory: String, defines: [String]) -> [String] {
        ["--gpu-architecture=\(target)", "--std=c++17", "-default-device", "-I\(includeDirectory)"] + defines.map { "-D\($0)" }
    }

    /// Preprocessor defines for `precision` and head size `headSize` (attention's ATT_HS).
    public static func defines(precision: CUDAPrecision, headSize: Int) -> [String] {
        precision.defines + ["ATT_HS=\(headSize)"]
    }

    /// The target to compile for on a device of `arch` (e.g. 90): the exact sm_XX as CUBIN when
    /// NVRTC supports it (or cannot list what it supports), else PTX for the newest supported
    /// architecture not above the device's. nil when NVRTC supports nothing at or below it.
    public static func target(deviceArch: Int, supported: [Int], canEmitCUBIN: Bool) -> (target: String, format: CUDAImageFormat)? {
        if canEmitCUBIN && (supported.isEmpty || supported.contains(deviceArch)) { return ("sm_\(deviceArch)", .cubin) }
        if supported.isEmpty { return ("compute_\(deviceArch)", .ptx) }
        guard let best = supported.filter({ $0 <= deviceArch }).max() else { return nil }
        return ("compute_\(best)", .ptx)
    }

    /// Hex digest of everything that determines the compiled image: 128 bits from two
    /// independent FNV-1a-64 passes (different offset bases) over the fields, NUL-separated.
    public static func cacheKey(program: String, options: [String], nvrtcVersion: (major: Int, minor: Int)) -> String {
        var bytes = Array(program.utf8)
        for field in options + ["nvrtc \(nvrtcVersion.major).\(nvrtcVersion.minor)"] {
            bytes.append(0)
            bytes += Array(field.utf8)
        }
        func fnv(_ basis: UInt64) -> UInt64 {
            var h = basis
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
            return h
        }
        let a = fnv(0xCBF2_9CE4_8422_2325), b = fnv(0x6C62_272E_07BB_0142)
        return String(format: "%016llx%016llx", a, b)
    }

    /// File name of a cache entry, readable enough to tell entries apart by eye.
    public static func cacheFileName(unit: String, target: String, format: CUDAImageFormat, precision: CUDAPrecision,
                                     nvrtcVersion: (major: Int, minor: Int), key: String) -> String {
        "\(unit)-\(precision.rawValue)-\(target)-nvrtc\(nvrtcVersion.major).\(nvrtcVersion.minor)-\(key).\(format.rawValue)"
    }

    /// GPT2_CUDA_CACHE ("" or "none" disables), $XDG_CACHE_HOME/gpt2-swift/cuda, ~/.cache/gpt2-swift/cuda.
    public static func defaultCacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let dir = Settings(environment: environment).cudaCache { return dir.isEmpty || dir == "none" ? nil : dir }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/gpt2-swift/cuda" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.cache/gpt2-swift/cuda" }
        return nil
    }

    // MARK: Compile

    /// Compiles `source` for `target`, or reads it from the cache.
    /// - Throws: `NVRTCCompileError` with NVRTC's log when the source does not compile.
    public func compile(_ source: CUDAKernelSource, precision: CUDAPrecision, headSize: Int = 64,
                        target: String, format: CUDAImageFormat) throws -> Compiled {
        let program = source.program
        let opts = NVRTCCompiler.options(target: target, includeDirectory: includeDirectory,
                                         defines: NVRTCCompiler.defines(precision: precision, headSize: headSize))
        let version = try nvrtc.version()
        let key = NVRTCCompiler.cacheKey(program: program, options: opts, nvrtcVersion: version)
        let file = cacheDirectory.map {
            $0 + "/" + NVRTCCompiler.cacheFileName(unit: source.name, target: target, format: format, precision: precision,
                                                   nvrtcVersion: version, key: key)
        }
        if let file, let data = FileManager.default.contents(atPath: file), !data.isEmpty {
            return Compiled(source: source, image: [UInt8](data), format: format, target: target, log: "", fromCache: true)
        }
        let out = try nvrtc.compile(source: program, name: source.name + ".cu", options: opts, format: format)
        if let file, let dir = cacheDirectory {
            // best effort, atomic: a half-written entry must never be loaded
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let tmp = file + ".tmp\(getpid())"
            if FileManager.default.createFile(atPath: tmp, contents: Data(out.image)) {
                if rename(tmp, file) != 0 { try? FileManager.default.removeItem(atPath: tmp) }
            }
        }
        return Compiled(source: source, image: out.image, format: format, target: target, log: out.log, fromCache: false)
    }
}

// NVRTC (libnvrtc.so.N): compiles our CUDA C kernel sources to CUBIN or PTX without a GPU.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The NVRTC twin of `cudaCheck`.
@inline(__always)
func nvrtcCheck(_ nvrtc: NVRTC, _ result: Int32, _ call: String, file: String = #fileID, line: Int = #line) throws {
    if result != 0 { throw CUDAError(api: .nvrtc, code: result, call: call, message: nvrtc.errorText(result), file: file, line: line) }
}

/// NVRTC (libnvrtc.so.N): compiles CUDA C to CUBIN or PTX without a GPU.
public final class NVRTC: @unchecked Sendable {
    typealias Status = Int32
    typealias FnVersion = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Status
    typealias FnIntOut = @convention(c) (UnsafeMutablePointer<Int32>?) -> Status
    typealias FnCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
                                         Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
    typealias FnCompile = @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
    typealias FnSize = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Status
    typealias FnGet = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Status
    typealias FnDestroy = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Status
    typealias FnErrorString = @convention(c) (Status) -> UnsafePointer<CChar>?

    let library: DynamicLibrary
    let nvrtcVersion: FnVersion
    let nvrtcCreateProgram: FnCreate
    let nvrtcCompileProgram: FnCompile
    let nvrtcGetProgramLogSize: FnSize
    let nvrtcGetProgramLog: FnGet
    let nvrtcGetPTXSize: FnSize
    let nvrtcGetPTX: FnGet
    let nvrtcGetCUBINSize: FnSize?      // NVRTC >= 11.1
    let nvrtcGetCUBIN: FnGet?
    let nvrtcDestroyProgram: FnDestroy
    let nvrtcGetErrorString: FnErrorString
    let nvrtcGetNumSupportedArchs: FnIntOut?
    let nvrtcGetSupportedArchs: FnIntOut?

    /// Loads NVRTC from `path` (a full path or a soname).
    public init(path: String) throws {
        let lib = try DynamicLibrary(path: path)
        lib.resolvedPathProbe = "nvrtcVersion"
        library = lib
        nvrtcVersion = try lib.required("nvrtcVersion")
        nvrtcCreateProgram = try lib.required("nvrtcCreateProgram")
        nvrtcCompileProgram = try lib.required("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try lib.required("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try lib.required("nvrtcGetProgramLog")
        nvrtcGetPTXSize = try lib.required("nvrtcGetPTXSize")
        nvrtcGetPTX = try lib.required("nvrtcGetPTX")
        nvrtcGetCUBINSize = lib.optional("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = lib.optional("nvrtcGetCUBIN")
        nvrtcDestroyProgram = try lib.required("nvrtcDestroyProgram")
        nvrtcGetErrorString = try lib.required("nvrtcGetErrorString")
        nvrtcGetNumSupportedArchs = lib.optional("nvrtcGetNumSupportedArchs")
        nvrtcGetSupportedArchs = lib.optional("nvrtcGetSupportedArchs")
    }

    /// The file the loader mapped.
    public var path: String { library.resolvedPath }

    func errorText(_ status: Int32) -> String {
        nvrtcGetErrorString(status).map { String(cString: $0) } ?? "nvrtcResult \(status)"
    }

    /// (major, minor), e.g. (13, 0).
    public func version() throws -> (major: Int, minor: Int) {
        var major: Int32 = 0, minor: Int32 = 0
        try nvrtcCheck(self, nvrtcVersion(&major, &minor), "nvrtcVersion")
        return (Int(major), Int(minor))
    }

    /// The sm_XX numbers this NVRTC can compile for (empty when it cannot say).
    public func supportedArchs() -> [Int] {
        guard let count = nvrtcGetNumSupportedArchs, let get = nvrtcGetSupportedArchs else { return [] }
        var n: Int32 = 0
        guard count(&n) == 0, n > 0 else { return [] }
        var archs = [Int32](repeating: 0, count: Int(n))
        guard get(&archs) == 0 else { return [] }
        return archs.map(Int.init)
    }

    /// Whether `nvrtcGetCUBIN` exists.
    public var canEmitCUBIN: Bool { nvrtcGetCUBIN != nil && nvrtcGetCUBINSize != nil }

    /// Result of one compilation.
    public struct Output: Sendable {
        /// CUBIN (ELF) or NUL-terminated PTX text.
        public let image: [UInt8]
        public let format: CUDAImageFormat
        /// The compiler's log (warnings), possibly empty.
        public let log: String
    }

    /// Compiles `source` with `options`. Throws `NVRTCCompileError` (with the log) when the
    /// source does not compile, `CUDAError` for other failures.
    /// - Parameter format: `.cubin` needs a real architecture option (sm_XX), `.ptx` either.
    public func compile(source: String, name: String, options: [String], format: CUDAImageFormat) throws -> Output {
        var prog: OpaquePointer?
        try nvrtcCheck(self, nvrtcCreateProgram(&prog, source, name, 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = nvrtcDestroyProgram(&prog) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer {
            nvrtcCompileProgram(prog, Int32(options.count), $0.baseAddress)
        }
        var logSize = 0
        try nvrtcCheck(self, nvrtcGetProgramLogSize(prog, &logSize), "nvrtcGetProgramLogSize")
        var logBytes = [CChar](repeating: 0, count: max(logSize, 1))
        try nvrtcCheck(self, nvrtcGetProgramLog(prog, &logBytes), "nvrtcGetProgramLog")
        let log = cString(logBytes).trimmingCharacters(in: .whitespacesAndNewlines)
        if status != 0 {
            throw NVRTCCompileError(program: name, options: options, status: errorText(status), log: log)
        }
        let getSize: FnSize, get: FnGet, call: String
        switch format {
        case .cubin:
            guard let s = nvrtcGetCUBINSize, let g = nvrtcGetCUBIN else {
                throw CUDAError(api: .nvrtc, code: -1, call: "nvrtcGetCUBIN", message: "this NVRTC cannot emit CUBIN", file: #fileID, line: #line)
            }
            (getSize, get, call) = (s, g, "nvrtcGetCUBIN")
        case .ptx:
            (getSize, get, call) = (nvrtcGetPTXSize, nvrtcGetPTX, "nvrtcGetPTX")
        }
        var size = 0
        try nvrtcCheck(self, getSize(prog, &size), call + "Size")
        var image = [UInt8](repeating: 0, count: max(size, 1))
        try image.withUnsafeMutableBytes { raw in
            try nvrtcCheck(self, get(prog, raw.baseAddress!.assumingMemoryBound(to: CChar.self)), call)
        }
        return Output(image: image, format: format, log: log)
    }
}

/// A kernel source that did not compile; `log` is NVRTC's full diagnostic output.
public struct NVRTCCompileError: Error, CustomStringConvertible, Sendable {
    public let program: String
    public let options: [String]
    public let status: String
    public let log: String
    public var description: String {
        "NVRTC could not compile \(program) (\(status)) with options \(options.joined(separator: " ")):\n\(log)"
    }
}

/// What NVRTC produced: an exact-architecture binary or PTX for the driver to JIT.
public enum CUDAImageFormat: String, Sendable {
    case cubin, ptx
}

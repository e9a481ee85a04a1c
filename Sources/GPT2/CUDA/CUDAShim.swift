// The only file that calls CUDA: the driver API, NVRTC, cuBLASLt, NCCL and cuDNN are opened with
// dlopen at run time and their symbols bound to @convention(c) function types (nothing is linked,
// so the binary builds and runs without CUDA). Every call's status goes through `cudaCheck` (or
// its NVRTC / cuBLAS twins), which throws a `CUDAError` naming the call, the status and our
// source location — llm.c's cudaCheck as a Swift error. Driver symbols use their versioned names
// (cuMemAlloc_v2, …); contexts come from cuDevicePrimaryCtxRetain, which has no versioned twin.
// Reference: llm.c llmc/cuda_common.h, cublas_common.h; swift-system Internals/Syscalls.swift.
import Foundation
import GPT2Kernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A device address (CUdeviceptr).
public typealias CUdeviceptr = UInt64

/// A failed CUDA call: which library and call, the status code and its name, where we made it.
public struct CUDAError: Error, CustomStringConvertible, Sendable {
    /// Which API returned the status.
    public enum API: String, Sendable { case driver, nvrtc, cublasLt, nccl, loader }
    public let api: API
    /// Status code (CUresult, nvrtcResult, cublasStatus_t; -1 for loader errors).
    public let code: Int32
    /// The call that failed, e.g. "cuMemAlloc_v2".
    public let call: String
    /// The status name and text as the library spells them, or the loader's message.
    public let message: String
    public let file: String
    public let line: Int

    public var description: String {
        "\(call) failed: \(message) (\(api.rawValue) status \(code)) at \(file):\(line)"
    }
}

/// Throws a `CUDAError` when a driver call returned anything but CUDA_SUCCESS.
/// - Parameters: result: the CUresult; call: the function's name.
@inline(__always)
func cudaCheck(_ result: Int32, _ call: String, file: String = #fileID, line: Int = #line) throws {
    if result != 0 { throw CUDAError(api: .driver, code: result, call: call, message: CUDADriver.errorText(result), file: file, line: line) }
}

/// The NVRTC twin of `cudaCheck`.
@inline(__always)
func nvrtcCheck(_ nvrtc: NVRTC, _ result: Int32, _ call: String, file: String = #fileID, line: Int = #line) throws {
    if result != 0 { throw CUDAError(api: .nvrtc, code: result, call: call, message: nvrtc.errorText(result), file: file, line: line) }
}

/// The cuBLASLt twin of `cudaCheck`.
@inline(__always)
func cublasCheck(_ lt: CuBLASLt, _ result: Int32, _ call: String, file: String = #fileID, line: Int = #line) throws {
    if result != 0 { throw CUDAError(api: .cublasLt, code: result, call: call, message: lt.errorText(result), file: file, line: line) }
}

// MARK: - dlopen

/// A dlopen'ed library; symbols are looked up by name and cast to a C function type.
final class DynamicLibrary: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// The path passed to dlopen (a bare soname when the loader searched).
    let path: String

    init(path: String, file: String = #fileID, line: Int = #line) throws {
        // RTLD_GLOBAL is not needed: each library resolves its own dependencies (libnvrtc finds
        // libnvrtc-builtins through its RUNPATH $ORIGIN, cuBLASLt finds nothing else it needs).
        guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let msg = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw CUDAError(api: .loader, code: -1, call: "dlopen(\(path))", message: msg, file: file, line: line)
        }
        handle = h
        self.path = path
    }

    /// The symbol cast to `T` (an @convention(c) function type), or nil.
    func optional<T>(_ name: String, as type: T.Type = T.self) -> T? {
        guard let sym = dlsym(handle, name) else { return nil }
        return unsafeBitCast(sym, to: T.self)
    }

    /// The symbol cast to `T`; throws when the library lacks it (e.g. a too-old version).
    func required<T>(_ name: String, as type: T.Type = T.self, file: String = #fileID, line: Int = #line) throws -> T {
        guard let f: T = optional(name) else {
            throw CUDAError(api: .loader, code: -1, call: "dlsym(\(name))", message: "symbol missing from \(path)", file: file, line: line)
        }
        return f
    }

    /// The file the dynamic loader actually mapped (resolves sonames to full paths): the
    /// /proc/self/maps entry containing a symbol of this library (glibc's dladdr is not
    /// visible from Swift's Glibc module).
    var resolvedPath: String {
        guard let sym = dlsym(handle, resolvedPathProbe),
              let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return path }
        let address = UInt(bitPattern: sym)
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, let dash = fields[0].firstIndex(of: "-"),
                  let lo = UInt(fields[0][..<dash], radix: 16),
                  let hi = UInt(fields[0][fields[0].index(after: dash)...], radix: 16) else { continue }
            if address >= lo && address < hi { return fields[5...].joined(separator: " ") }
        }
        return path
    }
    /// Set by the owner to a symbol known to be in this library.
    var resolvedPathProbe = ""
}

// MARK: - Driver API

/// The CUDA driver API (libcuda.so.1).
final class CUDADriver: @unchecked Sendable {
    typealias Status = Int32
    typealias FnInit = @convention(c) (UInt32) -> Status
    typealias FnIntOut = @convention(c) (UnsafeMutablePointer<Int32>?) -> Status
    typealias FnDeviceGet = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Status
    typealias FnDeviceGetName = @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32) -> Status
    typealias FnDeviceTotalMem = @convention(c) (UnsafeMutablePointer<Int>?, Int32) -> Status
    typealias FnDeviceGetAttribute = @convention(c) (UnsafeMutablePointer<Int32>?, Int32, Int32) -> Status
    typealias FnPrimaryCtxRetain = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32) -> Status
    typealias FnPrimaryCtxRelease = @convention(c) (Int32) -> Status
    typealias FnCtxSetCurrent = @convention(c) (OpaquePointer?) -> Status
    typealias FnVoid = @convention(c) () -> Status
    typealias FnMemAlloc = @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int) -> Status
    typealias FnMemFree = @convention(c) (CUdeviceptr) -> Status
    typealias FnMemcpyHtoD = @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> Status
    typealias FnMemcpyDtoH = @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> Status
    typealias FnMemcpyDtoD = @convention(c) (CUdeviceptr, CUdeviceptr, Int) -> Status
    typealias FnMemsetD32 = @convention(c) (CUdeviceptr, UInt32, Int) -> Status
    typealias FnMemGetInfo = @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> Status
    typealias FnModuleLoadData = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UnsafeRawPointer?) -> Status
    typealias FnModuleUnload = @convention(c) (OpaquePointer?) -> Status
    typealias FnModuleGetFunction = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, OpaquePointer?, UnsafePointer<CChar>?) -> Status
    typealias FnFuncSetAttribute = @convention(c) (OpaquePointer?, Int32, Int32) -> Status
    typealias FnLaunchKernel = @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
                                               OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                               UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Status
    typealias FnStreamCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32) -> Status
    typealias FnStream = @convention(c) (OpaquePointer?) -> Status
    typealias FnGetErrorText = @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Status

    // CUdevice_attribute / CUfunction_attribute values (cuda.h, stable ABI)
    static let attrMaxThreadsPerBlock: Int32 = 1
    static let attrMultiprocessorCount: Int32 = 16
    static let attrPCIBusID: Int32 = 33
    static let attrComputeCapabilityMajor: Int32 = 75
    static let attrComputeCapabilityMinor: Int32 = 76
    static let attrMaxSharedMemoryPerBlockOptin: Int32 = 97
    static let funcAttrMaxDynamicSharedSizeBytes: Int32 = 8

    let library: DynamicLibrary
    let cuInit: FnInit
    let cuDriverGetVersion: FnIntOut
    let cuDeviceGetCount: FnIntOut
    let cuDeviceGet: FnDeviceGet
    let cuDeviceGetName: FnDeviceGetName
    let cuDeviceTotalMem: FnDeviceTotalMem
    let cuDeviceGetAttribute: FnDeviceGetAttribute
    let cuDevicePrimaryCtxRetain: FnPrimaryCtxRetain
    let cuDevicePrimaryCtxRelease: FnPrimaryCtxRelease
    let cuCtxSetCurrent: FnCtxSetCurrent
    let cuCtxSynchronize: FnVoid
    let cuMemAlloc: FnMemAlloc
    let cuMemFree: FnMemFree
    let cuMemcpyHtoD: FnMemcpyHtoD
    let cuMemcpyDtoH: FnMemcpyDtoH
    let cuMemcpyDtoD: FnMemcpyDtoD
    let cuMemsetD32: FnMemsetD32
    let cuMemGetInfo: FnMemGetInfo
    let cuModuleLoadData: FnModuleLoadData
    let cuModuleUnload: FnModuleUnload
    let cuModuleGetFunction: FnModuleGetFunction
    let cuFuncSetAttribute: FnFuncSetAttribute
    let cuLaunchKernel: FnLaunchKernel
    let cuStreamCreate: FnStreamCreate
    let cuStreamDestroy: FnStream
    let cuStreamSynchronize: FnStream
    let cuGetErrorName: FnGetErrorText?
    let cuGetErrorString: FnGetErrorText?

    /// The driver loaded by the first `CUDADriver(path:)`, for error texts.
    nonisolated(unsafe) private static var current: CUDADriver?

    init(path: String) throws {
        let lib = try DynamicLibrary(path: path)
        lib.resolvedPathProbe = "cuInit"
        library = lib
        cuInit = try lib.required("cuInit")
        cuDriverGetVersion = try lib.required("cuDriverGetVersion")
        cuDeviceGetCount = try lib.required("cuDeviceGetCount")
        cuDeviceGet = try lib.required("cuDeviceGet")
        cuDeviceGetName = try lib.required("cuDeviceGetName")
        cuDeviceTotalMem = try lib.required("cuDeviceTotalMem_v2")
        cuDeviceGetAttribute = try lib.required("cuDeviceGetAttribute")
        cuDevicePrimaryCtxRetain = try lib.required("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try lib.required("cuDevicePrimaryCtxRelease_v2")
        cuCtxSetCurrent = try lib.required("cuCtxSetCurrent")
        cuCtxSynchronize = try lib.required("cuCtxSynchronize")
        cuMemAlloc = try lib.required("cuMemAlloc_v2")
        cuMemFree = try lib.required("cuMemFree_v2")
        cuMemcpyHtoD = try lib.required("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try lib.required("cuMemcpyDtoH_v2")
        cuMemcpyDtoD = try lib.required("cuMemcpyDtoD_v2")
        cuMemsetD32 = try lib.required("cuMemsetD32_v2")
        cuMemGetInfo = try lib.required("cuMemGetInfo_v2")
        cuModuleLoadData = try lib.required("cuModuleLoadData")
        cuModuleUnload = try lib.required("cuModuleUnload")
        cuModuleGetFunction = try lib.required("cuModuleGetFunction")
        cuFuncSetAttribute = try lib.required("cuFuncSetAttribute")
        cuLaunchKernel = try lib.required("cuLaunchKernel")
        cuStreamCreate = try lib.required("cuStreamCreate")
        cuStreamDestroy = try lib.required("cuStreamDestroy_v2")
        cuStreamSynchronize = try lib.required("cuStreamSynchronize")
        cuGetErrorName = lib.optional("cuGetErrorName")
        cuGetErrorString = lib.optional("cuGetErrorString")
        CUDADriver.current = self
    }

    /// "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected", from the loaded driver.
    static func errorText(_ status: Int32) -> String {
        guard let d = current else { return "CUresult \(status)" }
        var name: UnsafePointer<CChar>?, text: UnsafePointer<CChar>?
        _ = d.cuGetErrorName?(status, &name)
        _ = d.cuGetErrorString?(status, &text)
        let n = name.map { String(cString: $0) } ?? "CUresult \(status)"
        return text.map { n + ": " + String(cString: $0) } ?? n
    }

    // MARK: Calls

    func initialize() throws { try cudaCheck(cuInit(0), "cuInit") }

    /// Driver version as an integer (13000 = 13.0).
    func driverVersion() throws -> Int {
        var v: Int32 = 0
        try cudaCheck(cuDriverGetVersion(&v), "cuDriverGetVersion")
        return Int(v)
    }

    func deviceCount() throws -> Int {
        var n: Int32 = 0
        try cudaCheck(cuDeviceGetCount(&n), "cuDeviceGetCount")
        return Int(n)
    }

    /// Name, compute capability, SM count, memory and opt-in shared memory of device `ordinal`.
    func properties(ordinal: Int) throws -> CUDADeviceProperties {
        var dev: Int32 = 0
        try cudaCheck(cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet")
        var name = [CChar](repeating: 0, count: 256)
        try cudaCheck(cuDeviceGetName(&name, 255, dev), "cuDeviceGetName")
        var mem = 0
        try cudaCheck(cuDeviceTotalMem(&mem, dev), "cuDeviceTotalMem_v2")
        func attr(_ a: Int32) throws -> Int {
            var v: Int32 = 0
            try cudaCheck(cuDeviceGetAttribute(&v, a, dev), "cuDeviceGetAttribute(\(a))")
            return Int(v)
        }
        return CUDADeviceProperties(
            ordinal: ordinal, name: cString(name), totalMemory: mem,
            computeCapability: (try attr(CUDADriver.attrComputeCapabilityMajor), try attr(CUDADriver.attrComputeCapabilityMinor)),
            multiprocessors: try attr(CUDADriver.attrMultiprocessorCount),
            maxSharedMemoryPerBlockOptin: try attr(CUDADriver.attrMaxSharedMemoryPerBlockOptin),
            pciBusID: try attr(CUDADriver.attrPCIBusID))
    }

    /// Retains the device's primary context and makes it current on this thread.
    func retainPrimaryContext(ordinal: Int) throws -> OpaquePointer? {
        var ctx: OpaquePointer?
        try cudaCheck(cuDevicePrimaryCtxRetain(&ctx, Int32(ordinal)), "cuDevicePrimaryCtxRetain")
        try cudaCheck(cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        return ctx
    }

    func releasePrimaryContext(ordinal: Int) { _ = cuDevicePrimaryCtxRelease(Int32(ordinal)) }

    /// Makes `ctx` current on the calling thread (needed once per thread that issues calls).
    func setCurrent(_ ctx: OpaquePointer?) throws { try cudaCheck(cuCtxSetCurrent(ctx), "cuCtxSetCurrent") }

    func synchronize() throws { try cudaCheck(cuCtxSynchronize(), "cuCtxSynchronize") }

    /// (free, total) bytes of device memory.
    func memoryInfo() throws -> (free: Int, total: Int) {
        var free = 0, total = 0
        try cudaCheck(cuMemGetInfo(&free, &total), "cuMemGetInfo_v2")
        return (free, total)
    }

    func allocate(bytes: Int) throws -> CUdeviceptr {
        var p: CUdeviceptr = 0
        try cudaCheck(cuMemAlloc(&p, max(bytes, 1)), "cuMemAlloc_v2(\(bytes) bytes)")
        return p
    }

    func free(_ p: CUdeviceptr) { if p != 0 { _ = cuMemFree(p) } }

    func copyToDevice(_ dst: CUdeviceptr, _ src: UnsafeRawPointer, bytes: Int) throws {
        try cudaCheck(cuMemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD_v2")
    }

    func copyToHost(_ dst: UnsafeMutableRawPointer, _ src: CUdeviceptr, bytes: Int) throws {
        try cudaCheck(cuMemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH_v2")
    }

    func copyOnDevice(_ dst: CUdeviceptr, _ src: CUdeviceptr, bytes: Int) throws {
        try cudaCheck(cuMemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD_v2")
    }

    /// Fills `count` 32-bit words with `value` (0 for zeroing any buffer of whole words).
    func fill32(_ dst: CUdeviceptr, _ value: UInt32, count: Int) throws {
        try cudaCheck(cuMemsetD32(dst, value, count), "cuMemsetD32_v2")
    }

    func loadModule(image: UnsafeRawPointer) throws -> OpaquePointer? {
        var m: OpaquePointer?
        try cudaCheck(cuModuleLoadData(&m, image), "cuModuleLoadData")
        return m
    }

    func unloadModule(_ m: OpaquePointer?) { _ = cuModuleUnload(m) }

    func function(_ module: OpaquePointer?, named name: String) throws -> OpaquePointer? {
        var f: OpaquePointer?
        try cudaCheck(cuModuleGetFunction(&f, module, name), "cuModuleGetFunction(\(name))")
        return f
    }

    func createStream() throws -> OpaquePointer? {
        var s: OpaquePointer?
        try cudaCheck(cuStreamCreate(&s, 0), "cuStreamCreate")
        return s
    }

    func destroyStream(_ s: OpaquePointer?) { _ = cuStreamDestroy(s) }

    func synchronize(stream: OpaquePointer?) throws { try cudaCheck(cuStreamSynchronize(stream), "cuStreamSynchronize") }

    /// Launches `function` with `args` packed as cuLaunchKernel's `kernelParams` (one pointer to
    /// each argument's value). The launch is asynchronous; errors inside the kernel surface at
    /// the next synchronising call.
    func launch(_ function: OpaquePointer?, name: String, grid: CUDALaunchConfig.Dim3, block: CUDALaunchConfig.Dim3,
                sharedBytes: Int = 0, stream: OpaquePointer?, args: [CUDAKernelArg],
                file: String = #fileID, line: Int = #line) throws {
        // every argument gets an 8-byte, 8-aligned slot
        let slots = UnsafeMutableRawPointer.allocate(byteCount: max(1, args.count) * 8, alignment: 8)
        defer { slots.deallocate() }
        var params = [UnsafeMutableRawPointer?](repeating: nil, count: args.count)
        for (i, a) in args.enumerated() {
            let slot = slots + i * 8
            switch a {
            case .pointer(let p): slot.storeBytes(of: p, as: UInt64.self)
            case .int32(let v): slot.storeBytes(of: v, as: Int32.self)
            case .int64(let v): slot.storeBytes(of: v, as: Int64.self)
            case .float(let v): slot.storeBytes(of: v, as: Float.self)
            }
            params[i] = slot
        }
        let status = params.withUnsafeMutableBufferPointer { p in
            cuLaunchKernel(function, grid.x, grid.y, grid.z, block.x, block.y, block.z, UInt32(sharedBytes), stream,
                           p.baseAddress, nil)
        }
        try cudaCheck(status, "cuLaunchKernel(\(name))", file: file, line: line)
    }
}

/// A NUL-terminated C buffer as a String.
func cString(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// One kernel argument, as the kernel's C signature declares it.
public enum CUDAKernelArg: Sendable {
    case pointer(CUdeviceptr)
    case int32(Int32)
    case int64(Int64)
    case float(Float)

    /// A C `int` from an Int (checked).
    static func int(_ v: Int) -> CUDAKernelArg {
        precondition(v >= Int(Int32.min) && v <= Int(Int32.max), "kernel argument \(v) does not fit in int")
        return .int32(Int32(v))
    }
    /// A C `size_t` from an Int.
    static func size(_ v: Int) -> CUDAKernelArg { .int64(Int64(v)) }
}

/// What `gpt info` shows about a device.
public struct CUDADeviceProperties: Sendable {
    public let ordinal: Int
    public let name: String
    public let totalMemory: Int
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessors: Int
    public let maxSharedMemoryPerBlockOptin: Int
    public let pciBusID: Int
    /// 90 for compute capability 9.0.
    public var arch: Int { computeCapability.major * 10 + computeCapability.minor }
}

// MARK: - NVRTC

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

// MARK: - cuBLASLt

/// cuBLASLt (libcublasLt.so.N): the matmuls, with fp32 accumulation.
final class CuBLASLt: @unchecked Sendable {
    typealias Status = Int32
    typealias FnCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Status
    typealias FnDestroy = @convention(c) (OpaquePointer?) -> Status
    typealias FnGetVersion = @convention(c) () -> Int
    typealias FnDescCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, Int32) -> Status
    typealias FnSetAttribute = @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer?, Int) -> Status
    typealias FnLayoutCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, UInt64, UInt64, Int64) -> Status
    typealias FnHeuristic = @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                            OpaquePointer?, OpaquePointer?, Int32, UnsafeMutableRawPointer?,
                                            UnsafeMutablePointer<Int32>?) -> Status
    typealias FnMatmul = @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer?, CUdeviceptr, OpaquePointer?,
                                         CUdeviceptr, OpaquePointer?, UnsafeRawPointer?, CUdeviceptr, OpaquePointer?,
                                         CUdeviceptr, OpaquePointer?, UnsafeRawPointer?, CUdeviceptr, Int, OpaquePointer?) -> Status
    typealias FnStatusName = @convention(c) (Status) -> UnsafePointer<CChar>?

    // cublasLt.h / library_types.h / cublas_api.h values (stable ABI)
    static let computeType32F: Int32 = 68          // CUBLAS_COMPUTE_32F (no TF32)
    static let dataTypeR32F: Int32 = 0             // CUDA_R_32F
    static let dataTypeR16BF: Int32 = 14           // CUDA_R_16BF
    static let descTransA: Int32 = 3               // CUBLASLT_MATMUL_DESC_TRANSA (int32)
    static let descTransB: Int32 = 4               // CUBLASLT_MATMUL_DESC_TRANSB (int32)
    static let descEpilogue: Int32 = 7             // CUBLASLT_MATMUL_DESC_EPILOGUE (uint32)
    static let descBiasPointer: Int32 = 8          // CUBLASLT_MATMUL_DESC_BIAS_POINTER (void*)
    static let epilogueDefault: UInt32 = 1         // CUBLASLT_EPILOGUE_DEFAULT
    static let epilogueBias: UInt32 = 4            // CUBLASLT_EPILOGUE_BIAS
    static let epilogueGELUAuxBias: UInt32 = 164   // CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 32 | 128 | 4
    static let epilogueDGELU: UInt32 = 192         // CUBLASLT_EPILOGUE_DGELU = 64 | 128
    static let descEpilogueAuxPointer: Int32 = 11  // CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER (void*)
    static let descEpilogueAuxLd: Int32 = 12       // CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD (int64)
    static let prefMaxWorkspaceBytes: Int32 = 1    // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64)
    static let opN: Int32 = 0, opT: Int32 = 1      // CUBLAS_OP_N / CUBLAS_OP_T
    /// sizeof(cublasLtMatmulHeuristicResult_t): algo (64) + workspaceSize (8) + state (4) + wavesCount (4) + reserved (16).
    static let heuristicResultSize = 96

    let library: DynamicLibrary
    let cublasLtCreate: FnCreate
    let cublasLtDestroy: FnDestroy
    let cublasLtGetVersion: FnGetVersion
    let cublasLtMatmulDescCreate: FnDescCreate
    let cublasLtMatmulDescDestroy: FnDestroy
    let cublasLtMatmulDescSetAttribute: FnSetAttribute
    let cublasLtMatrixLayoutCreate: FnLayoutCreate
    let cublasLtMatrixLayoutDestroy: FnDestroy
    let cublasLtMatmulPreferenceCreate: FnCreate
    let cublasLtMatmulPreferenceDestroy: FnDestroy
    let cublasLtMatmulPreferenceSetAttribute: FnSetAttribute
    let cublasLtMatmulAlgoGetHeuristic: FnHeuristic
    let cublasLtMatmul: FnMatmul
    let cublasLtGetStatusName: FnStatusName?

    init(path: String) throws {
        let lib = try DynamicLibrary(path: path)
        lib.resolvedPathProbe = "cublasLtCreate"
        library = lib
        cublasLtCreate = try lib.required("cublasLtCreate")
        cublasLtDestroy = try lib.required("cublasLtDestroy")
        cublasLtGetVersion = try lib.required("cublasLtGetVersion")
        cublasLtMatmulDescCreate = try lib.required("cublasLtMatmulDescCreate")
        cublasLtMatmulDescDestroy = try lib.required("cublasLtMatmulDescDestroy")
        cublasLtMatmulDescSetAttribute = try lib.required("cublasLtMatmulDescSetAttribute")
        cublasLtMatrixLayoutCreate = try lib.required("cublasLtMatrixLayoutCreate")
        cublasLtMatrixLayoutDestroy = try lib.required("cublasLtMatrixLayoutDestroy")
        cublasLtMatmulPreferenceCreate = try lib.required("cublasLtMatmulPreferenceCreate")
        cublasLtMatmulPreferenceDestroy = try lib.required("cublasLtMatmulPreferenceDestroy")
        cublasLtMatmulPreferenceSetAttribute = try lib.required("cublasLtMatmulPreferenceSetAttribute")
        cublasLtMatmulAlgoGetHeuristic = try lib.required("cublasLtMatmulAlgoGetHeuristic")
        cublasLtMatmul = try lib.required("cublasLtMatmul")
        cublasLtGetStatusName = lib.optional("cublasLtGetStatusName")
    }

    var version: Int { cublasLtGetVersion() }

    func errorText(_ status: Int32) -> String {
        cublasLtGetStatusName?(status).map { String(cString: $0) } ?? "cublasStatus \(status)"
    }

    func createHandle() throws -> OpaquePointer? {
        var h: OpaquePointer?
        try cublasCheck(self, cublasLtCreate(&h), "cublasLtCreate")
        return h
    }

    func destroyHandle(_ h: OpaquePointer?) { _ = cublasLtDestroy(h) }

    /// GELU fused into a matmul (cuBLASLt's tanh-approximation GELU, as GPT-2's).
    enum GELUEpilogue {
        /// D = gelu(op(A)·op(B) + bias); the pre-activation goes to `aux` (m, n), leading dimension `ld`.
        case forward(aux: CUdeviceptr, ld: Int)
        /// D = (op(A)·op(B)) ∘ gelu'(aux), aux the forward's pre-activation.
        case backward(aux: CUdeviceptr, ld: Int)
    }

    /// Column-major D (m,n) = op(A) · op(B) + beta · C (+ bias per row when `bias` != 0), fp32
    /// compute and scale; A/B in `abType`, C/D in `cdType`. C and D may differ (D = C + A·B for a
    /// residual). Descriptors are created per call: cheap next to a GPT-2 sized matmul.
    /// - Parameters: lda/ldb/ldc/ldd leading dimensions of the matrices as stored; `gelu` fuses
    ///   GELU forward (with the bias) or its gradient.
    func matmul(handle: OpaquePointer?, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                a: CUdeviceptr, lda: Int, b: CUdeviceptr, ldb: Int, beta: Float, c: CUdeviceptr, ldc: Int,
                d: CUdeviceptr, ldd: Int, abType: Int32, cdType: Int32, bias: CUdeviceptr, gelu: GELUEpilogue? = nil,
                workspace: CUdeviceptr, workspaceBytes: Int, stream: OpaquePointer?) throws {
        var desc: OpaquePointer?
        try cublasCheck(self, cublasLtMatmulDescCreate(&desc, CuBLASLt.computeType32F, CuBLASLt.dataTypeR32F), "cublasLtMatmulDescCreate")
        defer { _ = cublasLtMatmulDescDestroy(desc) }
        var opA = transA ? CuBLASLt.opT : CuBLASLt.opN, opB = transB ? CuBLASLt.opT : CuBLASLt.opN
        try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descTransA, &opA, 4), "cublasLtMatmulDescSetAttribute(TRANSA)")
        try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descTransB, &opB, 4), "cublasLtMatmulDescSetAttribute(TRANSB)")
        var epilogue = bias != 0 ? CuBLASLt.epilogueBias : CuBLASLt.epilogueDefault
        if let gelu {
            var aux: CUdeviceptr, ld: Int64
            switch gelu {
            case .forward(let p, let l):
                precondition(bias != 0, "the GELU forward epilogue is GELU_AUX_BIAS: give a bias")
                epilogue = CuBLASLt.epilogueGELUAuxBias; aux = p; ld = Int64(l)
            case .backward(let p, let l):
                precondition(bias == 0, "the DGELU epilogue takes no bias")
                epilogue = CuBLASLt.epilogueDGELU; aux = p; ld = Int64(l)
            }
            try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogueAuxPointer, &aux, 8),
                            "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)")
            try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogueAuxLd, &ld, 8),
                            "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)")
        }
        try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descEpilogue, &epilogue, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)")
        if bias != 0 {
            var p = bias
            try cublasCheck(self, cublasLtMatmulDescSetAttribute(desc, CuBLASLt.descBiasPointer, &p, 8), "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")
        }
        // stored shapes: op(A) is (m,k), so A is (m,k) or, transposed, (k,m); likewise B
        func layout(_ type: Int32, _ rows: Int, _ cols: Int, _ ld: Int) throws -> OpaquePointer? {
            var l: OpaquePointer?
            try cublasCheck(self, cublasLtMatrixLayoutCreate(&l, type, UInt64(rows), UInt64(cols), Int64(ld)), "cublasLtMatrixLayoutCreate")
            return l
        }
        let la = try transA ? layout(abType, k, m, lda) : layout(abType, m, k, lda)
        defer { _ = cublasLtMatrixLayoutDestroy(la) }
        let lb = try transB ? layout(abType, n, k, ldb) : layout(abType, k, n, ldb)
        defer { _ = cublasLtMatrixLayoutDestroy(lb) }
        let lc = try layout(cdType, m, n, ldc)
        defer { _ = cublasLtMatrixLayoutDestroy(lc) }
        let ld = try layout(cdType, m, n, ldd)
        defer { _ = cublasLtMatrixLayoutDestroy(ld) }
        var pref: OpaquePointer?
        try cublasCheck(self, cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate")
        defer { _ = cublasLtMatmulPreferenceDestroy(pref) }
        var ws = UInt64(workspaceBytes)
        try cublasCheck(self, cublasLtMatmulPreferenceSetAttribute(pref, CuBLASLt.prefMaxWorkspaceBytes, &ws, 8),
                        "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
        let result = UnsafeMutableRawPointer.allocate(byteCount: CuBLASLt.heuristicResultSize, alignment: 16)
        defer { result.deallocate() }
        result.initializeMemory(as: UInt8.self, repeating: 0, count: CuBLASLt.heuristicResultSize)
        var found: Int32 = 0
        try cublasCheck(self, cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, ld, pref, 1, result, &found),
                        "cublasLtMatmulAlgoGetHeuristic(m \(m) n \(n) k \(k) transA \(transA) transB \(transB) epilogue \(epilogue))")
        if found == 0 {
            throw CUDAError(api: .cublasLt, code: -1, call: "cublasLtMatmulAlgoGetHeuristic", message: "no algorithm for m \(m) n \(n) k \(k)", file: #fileID, line: #line)
        }
        var alpha: Float = 1, betaValue = beta
        // the algo is the first 64 bytes of the result
        try cublasCheck(self, cublasLtMatmul(handle, desc, &alpha, a, la, b, lb, &betaValue, c, lc, d, ld, result,
                                             workspace, workspaceBytes, stream), "cublasLtMatmul")
    }
}

// MARK: - NCCL

/// The NCCL entry points data-parallel training uses (libnccl.so.2). ncclUniqueId is 128 bytes
/// passed by value to ncclCommInitRank: `gpt2_nccl_unique_id` (GPT2Kernels.h) gives Swift its C layout.
/// Checked with one rank on an H100 (selftest) and two ranks reaching ncclCommInitRank; a real
/// multi-GPU all-reduce has not run (docs/GPU.md).
final class NCCL: @unchecked Sendable {
    typealias Status = Int32
    // ncclDataType_t / ncclRedOp_t (nccl.h)
    static let float32: Int32 = 7
    static let float64: Int32 = 8
    static let sum: Int32 = 0

    let library: DynamicLibrary
    let ncclGetUniqueId: @convention(c) (UnsafeMutablePointer<gpt2_nccl_unique_id>?) -> Status
    let ncclCommInitRank: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, Int32, gpt2_nccl_unique_id, Int32) -> Status
    let ncclCommDestroy: @convention(c) (OpaquePointer?) -> Status
    let ncclCommAbort: @convention(c) (OpaquePointer?) -> Status
    let ncclAllReduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, OpaquePointer?) -> Status
    let ncclGetErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?

    init(path: String) throws {
        let lib = try DynamicLibrary(path: path)
        lib.resolvedPathProbe = "ncclGetVersion"
        library = lib
        ncclGetUniqueId = try lib.required("ncclGetUniqueId")
        ncclCommInitRank = try lib.required("ncclCommInitRank")
        ncclCommDestroy = try lib.required("ncclCommDestroy")
        ncclCommAbort = try lib.required("ncclCommAbort")
        ncclAllReduce = try lib.required("ncclAllReduce")
        ncclGetErrorString = try lib.required("ncclGetErrorString")
    }

    func check(_ result: Status, _ call: String, file: String = #fileID, line: Int = #line) throws {
        guard result != 0 else { return }
        let text = ncclGetErrorString(result).map { String(cString: $0) } ?? "ncclResult \(result)"
        throw CUDAError(api: .nccl, code: result, call: call, message: text, file: file, line: line)
    }

    /// A fresh id (rank 0 makes it; every rank must get the same bytes).
    func uniqueID() throws -> [UInt8] {
        var id = gpt2_nccl_unique_id()
        try check(ncclGetUniqueId(&id), "ncclGetUniqueId")
        return withUnsafeBytes(of: &id) { Array($0) }
    }

    /// ncclCommInitRank on the current device (the context's: NCCL's runtime uses the primary context).
    func initRank(id bytes: [UInt8], worldSize: Int, rank: Int) throws -> OpaquePointer? {
        precondition(bytes.count == MemoryLayout<gpt2_nccl_unique_id>.size, "NCCL id must be \(MemoryLayout<gpt2_nccl_unique_id>.size) bytes")
        var id = gpt2_nccl_unique_id()
        withUnsafeMutableBytes(of: &id) { $0.copyBytes(from: bytes) }
        var comm: OpaquePointer?
        try check(ncclCommInitRank(&comm, Int32(worldSize), id, Int32(rank)), "ncclCommInitRank")
        return comm
    }

    /// In-place sum of `count` elements of `dataType` on `stream`.
    func allReduceSum(_ p: CUdeviceptr, count: Int, dataType: Int32, comm: OpaquePointer?, stream: OpaquePointer?) throws {
        let ptr = UnsafeMutableRawPointer(bitPattern: UInt(p))
        try check(ncclAllReduce(ptr, ptr, count, dataType, NCCL.sum, comm, stream), "ncclAllReduce")
    }
}

// MARK: - NCCL and cuDNN versions

/// Version of an NCCL library (ncclGetVersion: 22703 = 2.27.3).
func ncclVersion(path: String) throws -> (version: Int, resolvedPath: String) {
    let lib = try DynamicLibrary(path: path)
    lib.resolvedPathProbe = "ncclGetVersion"
    let get: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32 = try lib.required("ncclGetVersion")
    var v: Int32 = 0
    let status = get(&v)
    if status != 0 { throw CUDAError(api: .nccl, code: status, call: "ncclGetVersion", message: "ncclResult \(status)", file: #fileID, line: #line) }
    return (Int(v), lib.resolvedPath)
}

/// Version of a cuDNN library (cudnnGetVersion: 91000 = 9.10.0).
func cudnnVersion(path: String) throws -> (version: Int, resolvedPath: String) {
    let lib = try DynamicLibrary(path: path)
    lib.resolvedPathProbe = "cudnnGetVersion"
    let get: @convention(c) () -> Int = try lib.required("cudnnGetVersion")
    return (get(), lib.resolvedPath)
}

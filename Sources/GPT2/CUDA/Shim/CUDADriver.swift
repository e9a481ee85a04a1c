// The CUDA driver API (libcuda.so.1): devices, the primary context, memory, modules, streams and
// kernel launches. Symbols use their versioned names (cuMemAlloc_v2, …); contexts come from
// cuDevicePrimaryCtxRetain, which has no versioned twin. Every status goes through `cudaCheck`.
import Foundation

/// Throws a `CUDAError` when a driver call returned anything but CUDA_SUCCESS.
/// - Parameters: result: the CUresult; call: the function's name.
@inline(__always)
func cudaCheck(_ result: Int32, _ call: String, file: String = #fileID, line: Int = #line) throws {
    if result != 0 { throw CUDAError(api: .driver, code: result, call: call, message: CUDADriver.errorText(result), file: file, line: line) }
}

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
    typealias FnMemAlloc = @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int) -> Status
    typealias FnMemFree = @convention(c) (CUdeviceptr) -> Status
    typealias FnMemcpyHtoD = @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> Status
    typealias FnMemcpyDtoH = @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> Status
    typealias FnMemsetD32 = @convention(c) (CUdeviceptr, UInt32, Int) -> Status
    typealias FnMemGetInfo = @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> Status
    typealias FnModuleLoadData = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UnsafeRawPointer?) -> Status
    typealias FnModuleUnload = @convention(c) (OpaquePointer?) -> Status
    typealias FnModuleGetFunction = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, OpaquePointer?, UnsafePointer<CChar>?) -> Status
    typealias FnLaunchKernel = @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
                                               OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                               UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Status
    typealias FnStreamCreate = @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32) -> Status
    typealias FnStream = @convention(c) (OpaquePointer?) -> Status
    typealias FnGetErrorText = @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Status

    // CUdevice_attribute / CUfunction_attribute values (cuda.h, stable ABI)
    static let attrMultiprocessorCount: Int32 = 16
    static let attrPCIBusID: Int32 = 33
    static let attrComputeCapabilityMajor: Int32 = 75
    static let attrComputeCapabilityMinor: Int32 = 76
    static let attrMaxSharedMemoryPerBlockOptin: Int32 = 97

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
    let cuMemAlloc: FnMemAlloc
    let cuMemFree: FnMemFree
    let cuMemcpyHtoD: FnMemcpyHtoD
    let cuMemcpyDtoH: FnMemcpyDtoH
    let cuMemsetD32: FnMemsetD32
    let cuMemGetInfo: FnMemGetInfo
    let cuModuleLoadData: FnModuleLoadData
    let cuModuleUnload: FnModuleUnload
    let cuModuleGetFunction: FnModuleGetFunction
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
        cuMemAlloc = try lib.required("cuMemAlloc_v2")
        cuMemFree = try lib.required("cuMemFree_v2")
        cuMemcpyHtoD = try lib.required("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try lib.required("cuMemcpyDtoH_v2")
        cuMemsetD32 = try lib.required("cuMemsetD32_v2")
        cuMemGetInfo = try lib.required("cuMemGetInfo_v2")
        cuModuleLoadData = try lib.required("cuModuleLoadData")
        cuModuleUnload = try lib.required("cuModuleUnload")
        cuModuleGetFunction = try lib.required("cuModuleGetFunction")
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

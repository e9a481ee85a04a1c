// One GPU, ready to run our kernels: the driver loaded, the device's primary context retained, a
// stream, every kernel source compiled by NVRTC for the device (cached on disk) and loaded as a
// module, a cuBLASLt handle and workspace. Device memory is owned by `CUDABuffer`s, freed on deinit.
import Foundation

/// An owning device allocation.
public final class CUDABuffer: @unchecked Sendable {
    public let pointer: CUdeviceptr
    public let bytes: Int
    let driver: CUDADriver

    init(driver: CUDADriver, bytes: Int) throws {
        self.driver = driver
        self.bytes = bytes
        pointer = try driver.allocate(bytes: bytes)
    }

    deinit { driver.free(pointer) }

    /// The address `offset` bytes in.
    public func at(_ offset: Int) -> CUdeviceptr {
        precondition(offset >= 0 && offset <= bytes, "offset \(offset) outside a \(bytes)-byte buffer")
        return pointer + CUdeviceptr(offset)
    }
}

/// A device with our kernels loaded. Use from one thread at a time.
public final class CUDAContext: CUDAKernelLauncher, @unchecked Sendable {
    public let report: CUDAReport
    public let device: CUDADeviceProperties
    public let precision: CUDAPrecision
    /// Attention head size the attention kernels were compiled for.
    public let headSize: Int
    /// One line per compiled unit: target, format, cached or compiled, warnings.
    public private(set) var compileLog: [String] = []
    let driver: CUDADriver
    let nvrtc: NVRTC
    let lt: CuBLASLt
    let context: OpaquePointer?
    let stream: OpaquePointer?
    let ltHandle: OpaquePointer?
    let workspace: CUDABuffer
    /// cuBLASLt workspace (32 MiB, as llm.c).
    let workspaceBytes = 32 << 20
    private var modules: [OpaquePointer?] = []
    private var functions: [String: OpaquePointer] = [:]

    /// Opens device `ordinal` and compiles the kernels for `precision` and `headSize`.
    /// - Parameters: search: where the libraries are; cacheDirectory: NVRTC's on-disk cache (nil: none).
    /// - Throws: `CUDAUnavailable` (with the report) when CUDA cannot run here; `CUDAError` or
    ///   `NVRTCCompileError` when a step fails.
    public init(ordinal: Int = 0, precision: CUDAPrecision, headSize: Int = 64,
                search: CUDALibrarySearch = CUDALibrarySearch(),
                cacheDirectory: String? = NVRTCCompiler.defaultCacheDirectory()) throws {
        let report = CUDAProbe.run(search: search)
        guard report.isUsable, let driverPath = report.library(.driver)?.path, let nvrtcPath = report.library(.nvrtc)?.path,
              let ltPath = report.library(.cublasLt)?.path, let include = report.includeDirectory else {
            throw CUDAUnavailable(report: report)
        }
        guard ordinal >= 0 && ordinal < report.devices.count else {
            throw CUDAError(api: .driver, code: 101, call: "device \(ordinal)", message: "only \(report.devices.count) device(s)", file: #fileID, line: #line)
        }
        precondition(headSize % CUDAKernelSource.AttentionTiling.threadsPerRow == 0, "head size \(headSize) must be a multiple of 4")
        self.report = report
        self.precision = precision
        self.headSize = headSize
        device = report.devices[ordinal]
        driver = try CUDADriver(path: driverPath)
        try driver.initialize()
        context = try driver.retainPrimaryContext(ordinal: ordinal)
        stream = try driver.createStream()
        nvrtc = try NVRTC(path: nvrtcPath)
        lt = try CuBLASLt(path: ltPath)
        ltHandle = try lt.createHandle()
        workspace = try CUDABuffer(driver: driver, bytes: workspaceBytes)

        guard let (target, format) = NVRTCCompiler.target(deviceArch: device.arch, supported: nvrtc.supportedArchs(),
                                                          canEmitCUBIN: nvrtc.canEmitCUBIN) else {
            throw CUDAError(api: .nvrtc, code: -1, call: "target selection",
                            message: "NVRTC \(report.library(.nvrtc)?.version ?? "?") supports no architecture at or below sm_\(device.arch)",
                            file: #fileID, line: #line)
        }
        let compiler = NVRTCCompiler(nvrtc: nvrtc, includeDirectory: include, cacheDirectory: cacheDirectory)
        for source in CUDAKernelSource.all {
            let out = try compiler.compile(source, precision: precision, headSize: headSize, target: target, format: format)
            compileLog.append("\(source.name).cu → \(out.target) \(out.format.rawValue)\(out.fromCache ? " (cached)" : "")"
                              + (out.log.isEmpty ? "" : "\n" + out.log))
            let module = try out.image.withUnsafeBytes { try driver.loadModule(image: $0.baseAddress!) }
            modules.append(module)
            for k in source.kernels {
                guard let f = try driver.function(module, named: k) else { continue }
                functions[k] = f
            }
        }
    }

    deinit {
        try? driver.synchronize(stream: stream)
        if let ltHandle { lt.destroyHandle(ltHandle) }
        for m in modules { driver.unloadModule(m) }
        driver.destroyStream(stream)
        driver.releasePrimaryContext(ordinal: device.ordinal)
    }

    // MARK: Memory

    public func allocate(bytes: Int) throws -> CUDABuffer { try CUDABuffer(driver: driver, bytes: bytes) }
    /// `count` floatX elements.
    public func allocateX(_ count: Int) throws -> CUDABuffer { try allocate(bytes: count * precision.elementSize) }
    /// `count` fp32 elements.
    public func allocateF(_ count: Int) throws -> CUDABuffer { try allocate(bytes: count * 4) }

    public func zero(_ p: CUdeviceptr, bytes: Int) throws {
        precondition(bytes % 4 == 0, "zero: \(bytes) bytes is not whole words")
        try driver.fill32(p, 0, count: bytes / 4)
    }

    public func upload(_ dst: CUdeviceptr, _ src: UnsafeRawPointer, bytes: Int) throws {
        try driver.synchronize(stream: stream)   // copies are synchronous on the legacy stream; order them after queued work
        try driver.copyToDevice(dst, src, bytes: bytes)
    }

    public func download(_ dst: UnsafeMutableRawPointer, _ src: CUdeviceptr, bytes: Int) throws {
        try driver.synchronize(stream: stream)
        try driver.copyToHost(dst, src, bytes: bytes)
    }

    /// fp32 host values → floatX device buffer (rounded on the device).
    public func uploadX(_ dst: CUdeviceptr, _ src: UnsafePointer<Float>, count: Int) throws {
        let staging = try allocateF(count)
        try upload(staging.pointer, src, bytes: count * 4)
        try floatToFloatX(out: dst, inp: staging.pointer, N: count)
        try synchronize()
    }

    /// floatX device buffer → fp32 host values.
    public func downloadX(_ dst: UnsafeMutablePointer<Float>, _ src: CUdeviceptr, count: Int) throws {
        let staging = try allocateF(count)
        try floatXToFloat(out: staging.pointer, inp: src, N: count)
        try download(dst, staging.pointer, bytes: count * 4)
    }

    /// Waits for all queued work; surfaces asynchronous kernel errors.
    public func synchronize() throws { try driver.synchronize(stream: stream) }

    /// (free, total) device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) { try driver.memoryInfo() }

    // MARK: Launch

    /// Streaming multiprocessors of the device.
    var sms: Int { device.multiprocessors }

    func enqueue(kernel: String, launch config: CUDALaunchConfig.Launch, args: [CUDAKernelArg], file: String, line: Int) throws {
        guard let f = functions[kernel] else { preconditionFailure("kernel \(kernel) not loaded") }
        try timed(kernel) {
            try driver.launch(f, name: kernel, grid: config.grid, block: config.block, sharedBytes: config.sharedBytes,
                              stream: stream, args: args, file: file, line: line)
        }
    }

    // MARK: Profiling

    /// When true (GPT2_CUDA_PROFILE=1 at creation), every launch and matmul is bracketed by
    /// stream synchronisations and its wall time added to `profile`: slower, but it shows where a
    /// step's time goes without a profiler on the machine.
    public var profiling = Settings.current.cudaProfile
    /// Which attention kernels training uses where both apply (GPT2_ATTENTION=simt|tc).
    public enum AttentionKernels: String, Sendable { case tc, simt }
    public var attentionKernels = AttentionKernels(rawValue: Settings.current.attention ?? "tc") ?? .tc
    /// Whether the MLP fuses GELU into its matmuls (cuBLASLt GELU_AUX_BIAS forward, DGELU
    /// backward), as llm.c: bf16 only (the fp32 parity mode keeps the separate kernels);
    /// GPT2_GELU_EPILOGUE=0 turns it off. The selftest checks both paths.
    public var fuseGELU = Settings.current.geluEpilogue
    /// Forces the block-per-chunk LayerNorm backward (GPT2_LN_BACKWARD=block); the selftest checks both.
    public var useBlockLayerNormBackward = Settings.current.layerNormBackward == "block"
    /// Label → (calls, seconds) since the last `resetProfile()`.
    public private(set) var profile: [String: (calls: Int, seconds: Double)] = [:]

    public func resetProfile() { profile = [:] }

    /// The profile as lines "seconds  share  calls  label", largest first.
    public func profileReport() -> [String] {
        let total = profile.values.reduce(0) { $0 + $1.seconds }
        return profile.sorted { $0.value.seconds > $1.value.seconds }.map { (label, v) in
            String(format: "%9.3f ms %5.1f%% %6d  ", v.seconds * 1000, total > 0 ? 100 * v.seconds / total : 0, v.calls) + label
        } + [String(format: "%9.3f ms total", total * 1000)]
    }

    private func timed(_ label: @autoclosure () -> String, _ body: () throws -> Void) throws {
        guard profiling else { return try body() }
        try synchronize()
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        try synchronize()
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let key = label()
        let old = profile[key] ?? (0, 0)
        profile[key] = (old.calls + 1, old.seconds + dt)
    }

    /// cuBLASLt D = op(A)·op(B) (+ beta·C) (+ bias), column-major; A, B in floatX, C/D floatX
    /// unless `fp32Output` (then fp32: the parameter gradients and the dlnf accumulator).
    func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: CUdeviceptr, lda: Int, b: CUdeviceptr, ldb: Int,
              beta: Float = 0, c: CUdeviceptr = 0, ldc: Int? = nil, d: CUdeviceptr, ldd: Int, bias: CUdeviceptr = 0,
              gelu: CuBLASLt.GELUEpilogue? = nil, fp32Output: Bool = false) throws {
        let ab = precision == .bf16 ? CuBLASLt.dataTypeR16BF : CuBLASLt.dataTypeR32F
        let cd = fp32Output ? CuBLASLt.dataTypeR32F : ab
        let geluLabel: String
        switch gelu { case .forward?: geluLabel = " +gelu"; case .backward?: geluLabel = " *dgelu"; case nil: geluLabel = "" }
        try timed("gemm \(m)x\(n)x\(k) \(transA ? "T" : "N")\(transB ? "T" : "N")\(fp32Output ? " ->f32" : "")\(bias != 0 ? " +bias" : "")" + geluLabel) {
            try lt.matmul(handle: ltHandle, transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                          beta: beta, c: c == 0 ? d : c, ldc: ldc ?? ldd, d: d, ldd: ldd, abType: ab, cdType: cd, bias: bias,
                          gelu: gelu, workspace: workspace.pointer, workspaceBytes: workspaceBytes, stream: stream)
        }
    }
}

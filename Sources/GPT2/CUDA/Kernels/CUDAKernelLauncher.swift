// Typed kernel launchers: every `extern "C" __global__` kernel has exactly one Swift function
// (in the op's file, beside its CUDA C source and launch size) that takes typed arguments
// (`CUdeviceptr`, `Int`, `Float`) in the kernel's order and packs them as `CUDAKernelArg`s.
// Launchers are written against `CUDAKernelLauncher`, which `CUDAContext` implements with
// cuLaunchKernel and host tests implement with a recorder: CUDAKernelSignatureTests calls every
// launcher and compares the argument kinds it packs with the kernel's C signature, so a launcher
// that drifts from its kernel fails CI without a GPU.

/// One kernel argument, as the kernel's C signature declares it.
public enum CUDAKernelArg: Sendable, Equatable {
    case pointer(CUdeviceptr)
    case int32(Int32)
    case int64(Int64)
    case float(Float)

    /// The C type class of an argument.
    public enum Kind: String, Sendable, Equatable {
        /// Any `T*`.
        case pointer
        /// `int`.
        case int
        /// `size_t`.
        case size
        /// `float`.
        case float
    }

    public var kind: Kind {
        switch self {
        case .pointer: return .pointer
        case .int32: return .int
        case .int64: return .size
        case .float: return .float
        }
    }

    /// A C `int` from an Int (checked).
    static func int(_ v: Int) -> CUDAKernelArg {
        precondition(v >= Int(Int32.min) && v <= Int(Int32.max), "kernel argument \(v) does not fit in int")
        return .int32(Int32(v))
    }
    /// A C `size_t` from an Int.
    static func size(_ v: Int) -> CUDAKernelArg {
        precondition(v >= 0, "size_t kernel argument \(v) is negative")
        return .int64(Int64(v))
    }
}

/// Where kernels are queued: a `CUDAContext` (cuLaunchKernel on its stream), or a recorder in
/// host tests. Launchers need only what sizes their grids and the kernels' compile-time choices.
protocol CUDAKernelLauncher: AnyObject {
    /// Streaming multiprocessors of the device (grid-stride kernels size their grids by them).
    var sms: Int { get }
    /// floatX of the compiled kernels.
    var precision: CUDAPrecision { get }
    /// Attention head size the kernels were compiled for (-DATT_HS).
    var headSize: Int { get }
    /// Whether the tensor-core attention kernels are real on this device and build.
    var attentionTCAvailable: Bool { get }
    /// Queues `kernel` with `args`, which must match its C signature in number, order and kind.
    func enqueue(kernel: String, launch: CUDALaunchConfig.Launch, args: [CUDAKernelArg], file: String, line: Int) throws
}

extension CUDAKernelLauncher {
    /// `enqueue` with the caller's source location.
    func launch(_ kernel: String, _ launch: CUDALaunchConfig.Launch, _ args: [CUDAKernelArg],
                file: String = #fileID, line: Int = #line) throws {
        try enqueue(kernel: kernel, launch: launch, args: args, file: file, line: line)
    }
}

// MPI loaded at run time (dlopen), so building needs only the Swift toolchain and a single
// process never touches MPI. `MPIReducer` all-reduces the gradient once per optimizer step, as
// DDP does for build-nanogpt and llm.c's multi-process CPU/GPU runs do with MPI.
// Handles: Open MPI's MPI_Comm/MPI_Datatype/MPI_Op are pointers to global objects
// (`ompi_mpi_comm_world`, `ompi_mpi_float`, `ompi_mpi_op_sum`, ... found with dlsym); MPICH's are
// 32-bit integer constants. Both are passed here as a pointer-sized Int, which the x86-64 and
// arm64 C calling conventions pass in the same register either way. Open MPI is tested; the
// MPICH constants (libmpi.so.12) follow mpich's mpi.h but are untested.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum MPIError: LocalizedError, Equatable {
    case libraryNotFound(tried: [String], detail: String)
    case missingSymbol(name: String, library: String)
    case callFailed(function: String, code: Int32, message: String)
    case launchMismatch(launcher: String, expectedRank: Int, expectedSize: Int, rank: Int, size: Int)

    public var errorDescription: String? {
        switch self {
        case .libraryNotFound(let tried, let detail):
            return "a multi-process launch needs MPI, but no MPI library could be loaded (tried \(tried.joined(separator: ", ")); \(detail)); install Open MPI (e.g. apt-get install openmpi-bin libopenmpi-dev) or set LD_LIBRARY_PATH or GPT2_MPI_LIBRARY"
        case .missingSymbol(let n, let l):
            return "MPI library '\(l)' has no symbol '\(n)'; it is not a usable Open MPI or MPICH build"
        case .callFailed(let f, let c, let m):
            return "\(f) failed with MPI error \(c): \(m)"
        case .launchMismatch(let l, let er, let es, let r, let s):
            return "the launcher (\(l)) says rank \(er) of \(es), but MPI says rank \(r) of \(s); start every process with mpirun or srun (torchrun alone cannot connect MPI processes)"
        }
    }
}

/// The MPI entry points this program uses, resolved from one shared library.
final class MPILibrary {
    typealias Handle = Int
    let path: String
    let isOpenMPI: Bool
    private let lib: UnsafeMutableRawPointer

    let commWorld: Handle, float: Handle, double: Handle, sum: Handle, errorsReturn: Handle
    /// MPI_IN_PLACE: (void *)1 in Open MPI, (void *)-1 in MPICH.
    let inPlace: UnsafeMutableRawPointer

    let initialized: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    let finalized: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    let initialize: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
    let finalize: @convention(c) () -> Int32
    let commRank: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    let commSize: @convention(c) (Handle, UnsafeMutablePointer<Int32>) -> Int32
    let setErrhandler: @convention(c) (Handle, Handle) -> Int32
    let allreduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle, Handle, Handle) -> Int32
    let barrier: @convention(c) (Handle) -> Int32
    let abort: @convention(c) (Handle, Int32) -> Int32
    let errorString: @convention(c) (Int32, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<Int32>) -> Int32

    /// Library names tried in order (unless `GPT2_MPI_LIBRARY` names one); each is also looked for in every
    /// LD_LIBRARY_PATH directory (dlopen alone ignores a changed LD_LIBRARY_PATH).
    static let candidateNames = ["libmpi.so.40", "libmpi.so", "libmpi.so.12", "libmpi.dylib"]

    static func candidates(environment env: [String: String]) -> [String] {
        var out: [String] = []
        // An explicit choice is the only one tried.
        if let p = Settings(environment: env).mpiLibrary { return [p] }
        let dirs = (env["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
        for name in candidateNames {
            for d in dirs { out.append(d + "/" + name) }
            out.append(name)
        }
        return out
    }

    /// Opens the first loadable candidate.
    static func load(environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> MPILibrary {
        var lastError = "not found"
        let tried = candidates(environment: env)
        for path in tried {
            // RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve symbols from libmpi itself.
            if let h = dlopen(path, RTLD_NOW | RTLD_GLOBAL) { return try MPILibrary(handle: h, path: path) }
            if let e = dlerror() { lastError = String(cString: e) }
        }
        let unique = tried.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let names = unique.filter { !$0.contains("/") }
        throw MPIError.libraryNotFound(tried: names.isEmpty ? unique : names, detail: lastError)
    }

    private init(handle: UnsafeMutableRawPointer, path: String) throws {
        lib = handle
        self.path = path
        func fn<T>(_ name: String, _: T.Type) throws -> T {
            guard let s = dlsym(handle, name) else { throw MPIError.missingSymbol(name: name, library: path) }
            return unsafeBitCast(s, to: T.self)
        }
        if let world = dlsym(handle, "ompi_mpi_comm_world") {
            func global(_ name: String) throws -> Handle {
                guard let s = dlsym(handle, name) else { throw MPIError.missingSymbol(name: name, library: path) }
                return Int(bitPattern: s)
            }
            isOpenMPI = true
            commWorld = Int(bitPattern: world)
            float = try global("ompi_mpi_float")
            double = try global("ompi_mpi_double")
            sum = try global("ompi_mpi_op_sum")
            errorsReturn = try global("ompi_mpi_errors_return")
            inPlace = UnsafeMutableRawPointer(bitPattern: 1)!
        } else {
            // MPICH ABI (mpi.h): MPI_COMM_WORLD 0x44000000, MPI_FLOAT 0x4c00040a, MPI_DOUBLE
            // 0x4c00080b, MPI_SUM 0x58000003, MPI_ERRORS_RETURN 0x54000001, MPI_IN_PLACE (void*)-1.
            isOpenMPI = false
            commWorld = 0x4400_0000
            float = 0x4c00_040a
            double = 0x4c00_080b
            sum = 0x5800_0003
            errorsReturn = 0x5400_0001
            inPlace = UnsafeMutableRawPointer(bitPattern: -1)!
        }
        initialized = try fn("MPI_Initialized", type(of: initialized))
        finalized = try fn("MPI_Finalized", type(of: finalized))
        initialize = try fn("MPI_Init", type(of: initialize))
        finalize = try fn("MPI_Finalize", type(of: finalize))
        commRank = try fn("MPI_Comm_rank", type(of: commRank))
        commSize = try fn("MPI_Comm_size", type(of: commSize))
        setErrhandler = try fn("MPI_Comm_set_errhandler", type(of: setErrhandler))
        allreduce = try fn("MPI_Allreduce", type(of: allreduce))
        barrier = try fn("MPI_Barrier", type(of: barrier))
        abort = try fn("MPI_Abort", type(of: abort))
        errorString = try fn("MPI_Error_string", type(of: errorString))
    }

    /// Throws `MPIError.callFailed` with MPI's own message when `code` is not MPI_SUCCESS (0).
    func check(_ code: Int32, _ function: String) throws {
        guard code != 0 else { return }
        var buffer = [CChar](repeating: 0, count: 512)   // MPI_MAX_ERROR_STRING is 256 (Open MPI), 1024 (MPICH)
        var length: Int32 = 0
        let message = buffer.withUnsafeMutableBufferPointer { b -> String in
            _ = errorString(code, b.baseAddress!, &length)
            b[b.count - 1] = 0
            return String(cString: b.baseAddress!)
        }
        throw MPIError.callFailed(function: function, code: code, message: message)
    }
}

/// Data-parallel gradient averaging over MPI_COMM_WORLD. Create one per process, after the
/// launcher started every rank; call `finalize()` at the end of a successful run and
/// `abort(errorCode:)` when one rank fails, so the others do not wait forever in an all-reduce.
/// Errors are returned (MPI_ERRORS_RETURN) and thrown as `MPIError`; a rank that dies makes
/// mpirun/srun stop the whole job.
public final class MPIReducer: GradientReducer {
    public let rank: Int
    public let worldSize: Int
    /// The shared library in use (for the start-up banner).
    public var libraryPath: String { mpi.path }
    private let mpi: MPILibrary
    private var finished = false
    /// A deadline on every all-reduce and barrier (nil: wait forever, MPI's own behaviour).
    public var watchdog: CollectiveWatchdog?

    /// Loads MPI (see `MPILibrary.candidates`), initialises it and checks that its rank and size
    /// agree with what the launcher's environment said (`expected`, when given).
    public init(expected: LaunchInfo? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let mpi = try MPILibrary.load(environment: environment)
        var flag: Int32 = 0
        try mpi.check(mpi.initialized(&flag), "MPI_Initialized")
        if flag == 0 { try mpi.check(mpi.initialize(nil, nil), "MPI_Init") }
        try mpi.check(mpi.setErrhandler(mpi.commWorld, mpi.errorsReturn), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try mpi.check(mpi.commRank(mpi.commWorld, &r), "MPI_Comm_rank")
        try mpi.check(mpi.commSize(mpi.commWorld, &s), "MPI_Comm_size")
        if let e = expected, e.rank != Int(r) || e.worldSize != Int(s) {
            throw MPIError.launchMismatch(launcher: e.launcher.rawValue, expectedRank: e.rank, expectedSize: e.worldSize,
                                          rank: Int(r), size: Int(s))
        }
        self.mpi = mpi
        rank = Int(r)
        worldSize = Int(s)
    }

    /// Sums `values` over all ranks in place, then scales by 1/worldSize.
    public func averageInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        try allreduce(values, count: count, type: mpi.float)
        let scale = 1 / Float(worldSize)
        for i in 0..<count { values[i] *= scale }
    }

    /// Sums `values` over all ranks in place.
    public func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) throws {
        try allreduce(values, count: count, type: mpi.double)
    }

    /// MPI's `count` is an Int32: large buffers go in chunks of at most 2^30 elements.
    private func allreduce(_ p: UnsafeMutableRawPointer, count: Int, type: MPILibrary.Handle) throws {
        let elementSize = type == mpi.double ? 8 : 4
        var done = 0
        while done < count {
            let n = min(count - done, 1 << 30)
            let code = watched("MPI_Allreduce of \(n) values") {
                mpi.allreduce(mpi.inPlace, p + done * elementSize, Int32(n), type, mpi.sum, mpi.commWorld)
            }
            try mpi.check(code, "MPI_Allreduce")
            done += n
        }
    }

    /// Waits until every rank has called it.
    public func barrier() throws {
        try mpi.check(watched("MPI_Barrier") { mpi.barrier(mpi.commWorld) }, "MPI_Barrier")
    }

    private func watched(_ operation: @autoclosure () -> String, _ call: () -> Int32) -> Int32 {
        guard let watchdog else { return call() }
        return watchdog.watch(operation(), call)
    }

    /// Ends MPI cleanly (every rank must call it). Later calls do nothing.
    public func finalize() throws {
        guard !finished else { return }
        finished = true
        var done: Int32 = 0
        _ = mpi.finalized(&done)
        if done == 0 { try mpi.check(mpi.finalize(), "MPI_Finalize") }
    }

    /// Asks the launcher to stop every rank with `errorCode` (MPI_Abort); for a rank that
    /// failed while the others may be waiting in a collective. Normally does not return.
    public func abort(errorCode: Int32) {
        _ = mpi.abort(mpi.commWorld, errorCode)
    }
}

// Data parallel on several GPUs, one process per GPU, as llm.c's multi_gpu_config: the ranks
// agree on one ncclUniqueId (rank 0 makes it and sends it to the others through MPI, a shared
// file or TCP), build an NCCL communicator, and all-reduce the fp32 gradients once per optimizer
// step (ncclAllReduce sum on the engine's stream; the 1/worldSize lands in AdamW's gradient scale).
// Host values (losses, HellaSwag counts, barriers) go through a small device staging buffer.
// The id exchange is unit-tested (NCCLExchangeTests); what has run on GPUs is in docs/GPU.md.
// Reference: llm.c llmc/zero.cuh (multi_gpu_config_init, ncclAllReduce of grads).
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum NCCLSetupError: LocalizedError, Equatable {
    case noExchange
    case timeout(what: String, seconds: Double)
    case badID(what: String, bytes: Int)
    case socket(call: String, errno: Int32, detail: String)
    case noNCCL(detail: String)

    public var errorDescription: String? {
        switch self {
        case .noExchange:
            return "several ranks on CUDA need a way to share the NCCL id: launch with mpirun/srun (MPI), set GPT2_NCCL_ID_FILE to a path every rank can read (a shared file system), or set MASTER_ADDR and MASTER_PORT (torchrun does)"
        case .timeout(let what, let s):
            return "timed out after \(Int(s)) s waiting for \(what) (GPT2_NCCL_TIMEOUT sets the limit)"
        case .badID(let what, let n):
            return "\(what) holds \(n) bytes, not a \(NCCLIdExchange.idBytes)-byte NCCL id"
        case .socket(let call, let e, let d):
            return "\(call) failed: \(String(cString: strerror(e))) (errno \(e)) \(d)"
        case .noNCCL(let d):
            return "multi-GPU training needs NCCL (libnccl.so.2): \(d); pip install nvidia-nccl-cu13 or set GPT2_CUDA_LIB_DIRS"
        }
    }
}

/// How rank 0's ncclUniqueId reaches the other ranks.
public enum NCCLIdExchange {
    /// Broadcast through an existing host reducer (MPI): a sum in which every other rank sends 0.
    case reducer(GradientReducer)
    /// Rank 0 writes the id to `path` (atomically); the others poll for it.
    case file(path: String)
    /// Rank 0 listens on `port`; the others connect to `host:port`.
    case tcp(host: String, port: Int)

    /// Size of ncclUniqueId.
    public static let idBytes = 128
    /// Prefix of the TCP message and the file, so a stray file or service is not taken for an id.
    static let magic: [UInt8] = Array("GPT2NCCL".utf8)

    /// The exchange for this launch: MPI when a host reducer exists, else GPT2_NCCL_ID_FILE, else
    /// TCP to MASTER_ADDR on GPT2_NCCL_PORT or MASTER_PORT + 1 (torchrun's own store listens on
    /// MASTER_PORT itself).
    public static func choose(environment env: [String: String], hostReducer: GradientReducer?) throws -> NCCLIdExchange {
        if let hostReducer { return .reducer(hostReducer) }
        let settings = Settings(environment: env)
        if let path = settings.ncclIdFile { return .file(path: path) }
        if let host = env["MASTER_ADDR"], !host.isEmpty {
            if let port = settings.ncclPort { return .tcp(host: host, port: port) }
            if let p = env["MASTER_PORT"], let port = Int(p), port > 0, port < 65535 { return .tcp(host: host, port: port + 1) }
        }
        throw NCCLSetupError.noExchange
    }

    /// Seconds to wait for the other side (GPT2_NCCL_TIMEOUT, default 300).
    public static func timeout(environment env: [String: String]) -> Double {
        Settings(environment: env).ncclTimeout ?? 300
    }

    /// Every rank calls this; rank 0's `makeID()` result is returned on all of them.
    public func exchange(rank: Int, worldSize: Int, timeout: Double = 300, makeID: () throws -> [UInt8]) throws -> [UInt8] {
        switch self {
        case .reducer(let r):
            let mine = rank == 0 ? try makeID() : [UInt8](repeating: 0, count: Self.idBytes)
            guard mine.count == Self.idBytes else { throw NCCLSetupError.badID(what: "ncclGetUniqueId's result", bytes: mine.count) }
            // bytes as Doubles: exact, and summing with zeros from the other ranks is a broadcast
            let sum = try r.sum(mine.map(Double.init))
            return sum.map { UInt8(clamping: Int($0)) }
        case .file(let path):
            if rank == 0 {
                let id = try makeID()
                try writeIDFile(path: path, id: id)
                return id
            }
            return try readIDFile(path: path, timeout: timeout)
        case .tcp(let host, let port):
            if rank == 0 {
                let id = try makeID()
                try serveID(port: port, id: id, clients: worldSize - 1, timeout: timeout)
                return id
            }
            return try fetchID(host: host, port: port, timeout: timeout)
        }
    }

    // MARK: File

    func writeIDFile(path: String, id: [UInt8]) throws {
        guard id.count == Self.idBytes else { throw NCCLSetupError.badID(what: "the id to write", bytes: id.count) }
        try Data(Self.magic + id).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Polls until `path` holds magic + id. A file older than `timeout` seconds is taken for a
    /// leftover of an earlier run and ignored.
    func readIDFile(path: String, timeout: Double) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let attrs = try? FileManager.default.attributesOfItem(atPath: path),
               let modified = attrs[.modificationDate] as? Date, Date().timeIntervalSince(modified) < timeout,
               let data = FileManager.default.contents(atPath: path) {
                let bytes = [UInt8](data)
                if bytes.count == Self.magic.count + Self.idBytes && Array(bytes.prefix(Self.magic.count)) == Self.magic {
                    return Array(bytes.dropFirst(Self.magic.count))
                }
            }
            usleep(50_000)
        }
        throw NCCLSetupError.timeout(what: "rank 0 to write the NCCL id to '\(path)'", seconds: timeout)
    }

    // MARK: TCP

    func serveID(port: Int, id: [UInt8], clients: Int, timeout: Double) throws {
        guard id.count == Self.idBytes else { throw NCCLSetupError.badID(what: "the id to send", bytes: id.count) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NCCLSetupError.socket(call: "socket", errno: errno, detail: "") }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = INADDR_ANY
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw NCCLSetupError.socket(call: "bind", errno: errno, detail: "(port \(port); set GPT2_NCCL_PORT to a free one)") }
        guard listen(fd, Int32(max(clients, 1))) == 0 else { throw NCCLSetupError.socket(call: "listen", errno: errno, detail: "") }
        Self.setTimeout(fd, seconds: timeout)
        let message = Self.magic + id
        for served in 0..<clients {
            let c = accept(fd, nil, nil)
            guard c >= 0 else {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK {
                    throw NCCLSetupError.timeout(what: "rank \(served + 1) of \(clients) other rank(s) to connect to port \(port)", seconds: timeout)
                }
                throw NCCLSetupError.socket(call: "accept", errno: e, detail: "")
            }
            defer { close(c) }
            try Self.sendAll(c, message)
        }
    }

    func fetchID(host: String, port: Int, timeout: Double) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        while Date() < deadline {
            var list: UnsafeMutablePointer<addrinfo>?
            if getaddrinfo(host, String(port), &hints, &list) == 0, let info = list {
                defer { freeaddrinfo(list) }
                let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
                if fd >= 0 {
                    if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                        defer { close(fd) }
                        Self.setTimeout(fd, seconds: max(1, deadline.timeIntervalSinceNow))
                        let bytes = try Self.receive(fd, count: Self.magic.count + Self.idBytes)
                        guard Array(bytes.prefix(Self.magic.count)) == Self.magic else {
                            throw NCCLSetupError.badID(what: "the reply from \(host):\(port) (not rank 0 of this run?)", bytes: bytes.count)
                        }
                        return Array(bytes.dropFirst(Self.magic.count))
                    }
                    close(fd)
                }
            }
            usleep(100_000)   // rank 0 may not listen yet
        }
        throw NCCLSetupError.timeout(what: "rank 0 at \(host):\(port) to send the NCCL id", seconds: timeout)
    }

    static func setTimeout(_ fd: Int32, seconds: Double) {
        var tv = timeval()
        tv.tv_sec = .init(seconds)
        tv.tv_usec = .init((seconds - seconds.rounded(.down)) * 1e6)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw NCCLSetupError.socket(call: "send", errno: errno, detail: "") }
            done += n
        }
    }

    static func receive(_ fd: Int32, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n == 0 { throw NCCLSetupError.badID(what: "the connection (closed early)", bytes: done) }
            guard n > 0 else { throw NCCLSetupError.socket(call: "recv", errno: errno, detail: "") }
            done += n
        }
        return out
    }
}

/// NCCL all-reduce over one GPU per process. Create it on every rank after the CUDA context.
/// `@unchecked Sendable`: one thread drives it; only `abort()` may come from the watchdog thread.
public final class NCCLReducer: DeviceGradientReducer, @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    /// The NCCL library in use (for the start-up banner).
    public var libraryPath: String { nccl.library.resolvedPath }
    private let nccl: NCCL
    private let comm: OpaquePointer?
    private let context: CUDAContext
    /// Device staging for host values (losses, counts): 64 KiB.
    private let staging: CUDABuffer
    private let stagingBytes = 1 << 16
    /// A deadline on each collective (a lost node would otherwise hang every rank); its handler
    /// may call `abort()` from the watchdog's thread (ncclCommAbort is safe there).
    public var watchdog: CollectiveWatchdog?

    private func watched<R>(_ operation: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard let watchdog else { return try body() }
        return try watchdog.watch(operation(), body)
    }

    /// Builds the communicator: rank 0 makes the id, `exchange` shares it, every rank joins.
    public init(context: CUDAContext, rank: Int, worldSize: Int, exchange: NCCLIdExchange, timeout: Double = 300) throws {
        guard let path = context.report.library(.nccl)?.path, context.report.library(.nccl)?.isLoaded == true else {
            throw NCCLSetupError.noNCCL(detail: context.report.library(.nccl)?.problem ?? "not found")
        }
        let nccl = try NCCL(path: path)
        let id = try exchange.exchange(rank: rank, worldSize: worldSize, timeout: timeout) { try nccl.uniqueID() }
        comm = try nccl.initRank(id: id, worldSize: worldSize, rank: rank)
        if case .file(let p) = exchange, rank == 0 {
            // every rank has read the file once the (collective) init returned
            try? FileManager.default.removeItem(atPath: p)
        }
        self.nccl = nccl
        self.rank = rank
        self.worldSize = worldSize
        self.context = context
        staging = try context.allocate(bytes: stagingBytes)
    }

    deinit { _ = nccl.ncclCommDestroy(comm) }

    /// Stops the communicator without waiting for the other ranks (a rank failed).
    public func abort() { _ = nccl.ncclCommAbort(comm) }

    public func sumInPlace(device values: CUdeviceptr, count: Int, context: CUDAContext) throws {
        precondition(context === self.context, "NCCLReducer: buffer from another CUDA context")
        try watched("ncclAllReduce of \(count) values") {
            try nccl.allReduceSum(values, count: count, dataType: NCCL.float32, comm: comm, stream: context.stream)
            try context.synchronize()
        }
    }

    /// Host floats: staged through the device, summed, then divided by worldSize on the host.
    public func averageInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        try hostSum(UnsafeMutableRawPointer(values), count: count, elementSize: 4, dataType: NCCL.float32)
        let scale = 1 / Float(worldSize)
        for i in 0..<count { values[i] *= scale }
    }

    public func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) throws {
        try hostSum(UnsafeMutableRawPointer(values), count: count, elementSize: 8, dataType: NCCL.float64)
    }

    private func hostSum(_ p: UnsafeMutableRawPointer, count: Int, elementSize: Int, dataType: Int32) throws {
        let per = stagingBytes / elementSize
        var done = 0
        while done < count {
            let n = min(per, count - done)
            try context.upload(staging.pointer, p + done * elementSize, bytes: n * elementSize)
            try watched("ncclAllReduce of \(n) host values") {
                try nccl.allReduceSum(staging.pointer, count: n, dataType: dataType, comm: comm, stream: context.stream)
                try context.download(p + done * elementSize, staging.pointer, bytes: n * elementSize)
            }
            done += n
        }
    }
}

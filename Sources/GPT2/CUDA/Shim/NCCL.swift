// NCCL (libnccl.so.2): the all-reduce of data-parallel training, and the version `gpt info` shows.
import Foundation
import GPT2Kernels

/// The NCCL entry points data-parallel training uses (libnccl.so.2). ncclUniqueId is 128 bytes
/// passed by value to ncclCommInitRank: `gpt2_nccl_unique_id` (GPT2Kernels.h) gives Swift its C layout.
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

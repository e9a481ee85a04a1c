// The NCCL part of `gpt selftest --device cuda`: a one-rank communicator (the id through a
// file, as a torchrun / Slurm launch without MPI would share it), then an in-place all-reduce of
// device floats and of host doubles. With one rank the sum is the identity, so this checks the
// bindings (ncclUniqueId by value, argument order, stream use) on any single-GPU machine;
// several ranks need several GPUs (NCCL refuses two ranks on one device).
import Foundation

extension CUDASelftest {
    /// Records the all-reduce checks; skips (returns false) when NCCL was not found.
    @discardableResult
    public static func runNCCL(context ctx: CUDAContext, record: @escaping (CUDASelftestResult) -> Void) throws -> Bool {
        guard ctx.report.library(.nccl)?.isLoaded == true else { return false }
        let idFile = FileManager.default.temporaryDirectory.appendingPathComponent("gpt-selftest-nccl-\(getpid()).id").path
        let reducer = try NCCLReducer(context: ctx, rank: 0, worldSize: 1, exchange: .file(path: idFile), timeout: 30)
        var rng = NormalRNG(seed: 99)
        let values = (0..<100_000).map { _ in rng.next() }
        let buf = try ctx.allocateF(values.count)
        try values.withUnsafeBytes { try ctx.upload(buf.pointer, $0.baseAddress!, bytes: $0.count) }
        try reducer.sumInPlace(device: buf.pointer, count: values.count, context: ctx)
        var back = [Float](repeating: 0, count: values.count)
        try back.withUnsafeMutableBytes { try ctx.download($0.baseAddress!, buf.pointer, bytes: $0.count) }
        record(CUDASelftestResult(name: "nccl all-reduce, 1 rank, device fp32", maxRelativeError: relError(back, values), tolerance: 0))
        var host: [Double] = [1.5, -2, 3e10]
        try host.withUnsafeMutableBufferPointer { try reducer.sumInPlace($0.baseAddress!, count: $0.count) }
        let err = Float(zip(host, [1.5, -2, 3e10]).map { abs($0 - $1) }.max() ?? 0)
        record(CUDASelftestResult(name: "nccl all-reduce, 1 rank, host fp64", maxRelativeError: err, tolerance: 0))
        return true
    }
}

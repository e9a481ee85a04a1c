import Foundation
import GPT2

/// This process's place in a data-parallel launch (mpirun, srun, torchrun-style variables),
/// with MPI started when there is more than one process. Only rank 0 prints and writes files.
/// On CUDA, `attachNCCL` adds the GPU communicator; under torchrun (no MPI) it also carries the
/// host collectives (barriers, the stop flag, HellaSwag counts).
struct ProcessGroup {
    let launch: LaunchInfo
    /// MPI, when the launch has several processes and MPI was started.
    let mpi: MPIReducer?
    /// NCCL, after `attachNCCL`.
    private(set) var nccl: NCCLReducer?
    /// Host collectives: MPI if started, else NCCL (nil for one process).
    var reducer: GradientReducer? { mpi ?? nccl }
    /// Gradient all-reduce for the training engine: NCCL when present, else MPI.
    var gradientReducer: GradientReducer? { nccl ?? mpi }
    var rank: Int { reducer?.rank ?? launch.rank }
    var worldSize: Int { reducer?.worldSize ?? launch.worldSize }
    var isMain: Bool { rank == 0 }

    /// Detects the launcher; loads and initialises MPI for more than one process, except under a
    /// torchrun-style launch when `mpiOptional` (CUDA: NCCL does the collectives).
    static func start(environment: [String: String] = ProcessInfo.processInfo.environment, mpiOptional: Bool = false) throws -> ProcessGroup {
        let launch = try LaunchInfo.detect(environment: environment)
        guard launch.isDistributed else { return ProcessGroup(launch: launch, mpi: nil) }
        if mpiOptional && launch.launcher == .torchrun { return ProcessGroup(launch: launch, mpi: nil) }
        let mpi = try MPIReducer(expected: launch, environment: environment)
        if let seconds = CollectiveWatchdog.timeout(environment: environment) {
            let (rank, size) = (mpi.rank, mpi.worldSize)
            mpi.watchdog = CollectiveWatchdog(timeout: seconds) { expired in
                // MPI cannot be called from this thread; exiting makes mpirun/srun stop the job
                let line = "error (rank \(rank) of \(size)): \(expired); stopping (resume from the newest checkpoint with --resume)\n"
                FileHandle.standardError.write(Data(line.utf8))
                _exit(1)
            }
        }
        return ProcessGroup(launch: launch, mpi: mpi)
    }

    /// Builds the NCCL communicator on `context` (the id travels through MPI, GPT2_NCCL_ID_FILE or
    /// MASTER_ADDR/MASTER_PORT+1). No-op for one process.
    mutating func attachNCCL(context: CUDAContext, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard launch.isDistributed else { return }
        // no NCCL but MPI: gradients go through host memory and MPI_Allreduce (slow, but works)
        if mpi != nil && context.report.library(.nccl)?.isLoaded != true { return }
        let exchange = try NCCLIdExchange.choose(environment: environment, hostReducer: mpi)
        let reducer = try NCCLReducer(context: context, rank: launch.rank, worldSize: launch.worldSize, exchange: exchange,
                                      timeout: NCCLIdExchange.timeout(environment: environment))
        if let seconds = CollectiveWatchdog.timeout(environment: environment) {
            let (rank, size) = (launch.rank, launch.worldSize)
            reducer.watchdog = CollectiveWatchdog(timeout: seconds) { [weak reducer] expired in
                let line = "error (rank \(rank) of \(size)): \(expired); stopping (resume from the newest checkpoint with --resume)\n"
                FileHandle.standardError.write(Data(line.utf8))
                reducer?.abort()   // frees the other ranks' NCCL calls too
                _exit(1)
            }
        }
        nccl = reducer
    }

    /// Runs `body`, then finalizes MPI. When `body` throws in a multi-process run, prints the error
    /// with the rank and aborts the whole job (MPI_Abort, or ncclCommAbort and exit), so no other
    /// rank waits forever.
    func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            if launch.isDistributed {
                FileHandle.standardError.write(Data("error (rank \(rank) of \(worldSize)): \(error.localizedDescription)\n".utf8))
                nccl?.abort()
                mpi?.abort(errorCode: 1)
            }
            throw error
        }
        try mpi?.finalize()
    }

    /// Prints on rank 0 only.
    func say(_ line: String) {
        if isMain { print(line) }
    }

    /// Waits for every rank (no-op for one process).
    func barrier() throws {
        if let mpi { try mpi.barrier() } else if let nccl { _ = try nccl.sum([0]) }
    }

    /// Rank 0's `value` on every rank.
    func broadcast(_ value: Double) throws -> Double {
        guard let reducer else { return value }
        return try reducer.sum([isMain ? value : 0])[0]
    }
}

import Foundation
import GPT2

/// This process's place in a data-parallel launch (mpirun, srun, torchrun-style variables),
/// with MPI started when there is more than one process. Only rank 0 prints and writes files.
struct ProcessGroup {
    let launch: LaunchInfo
    let reducer: MPIReducer?
    var rank: Int { reducer?.rank ?? 0 }
    var worldSize: Int { reducer?.worldSize ?? 1 }
    var isMain: Bool { rank == 0 }

    /// Detects the launcher; loads and initialises MPI for more than one process.
    static func start(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ProcessGroup {
        let launch = try LaunchInfo.detect(environment: environment)
        guard launch.isDistributed else { return ProcessGroup(launch: launch, reducer: nil) }
        return ProcessGroup(launch: launch, reducer: try MPIReducer(expected: launch, environment: environment))
    }

    /// Runs `body`, then finalizes MPI. When `body` throws in a multi-process run, prints the error
    /// with the rank and aborts the whole job (MPI_Abort), so no other rank waits forever.
    func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            if let reducer {
                FileHandle.standardError.write(Data("error (rank \(rank) of \(worldSize)): \(error.localizedDescription)\n".utf8))
                reducer.abort(errorCode: 1)
            }
            throw error
        }
        try reducer?.finalize()
    }

    /// Prints on rank 0 only.
    func say(_ line: String) {
        if isMain { print(line) }
    }

    /// Waits for every rank (no-op for one process).
    func barrier() throws { try reducer?.barrier() }

    /// Rank 0's `value` on every rank.
    func broadcast(_ value: Double) throws -> Double {
        guard let reducer else { return value }
        return try reducer.sum([isMain ? value : 0])[0]
    }
}

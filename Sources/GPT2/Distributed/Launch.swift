// Which process of a data-parallel job this is, from the variables launchers set: Open MPI's
// mpirun (OMPI_COMM_WORLD_*), MPICH/Intel MPI's hydra (PMI_*), Slurm's srun (SLURM_*) and
// torchrun (RANK/WORLD_SIZE/LOCAL_RANK, as build-nanogpt's DDP set-up reads them).
// A pure function of the environment, so it is unit-tested without launching anything.
import Foundation

/// The launcher that started this process, with its rank among `worldSize` processes.
public struct LaunchInfo: Equatable, Sendable {
    public enum Launcher: String, Sendable {
        case single = "single process"
        case openMPI = "mpirun (Open MPI)"
        case pmi = "PMI (MPICH / Intel MPI)"
        case slurm = "srun (Slurm)"
        case torchrun = "torchrun-style RANK/WORLD_SIZE"
    }
    public var launcher: Launcher
    /// This process's index in 0..<worldSize.
    public var rank: Int
    public var worldSize: Int
    /// Index among the processes on this node (device selection).
    public var localRank: Int
    /// The variables `rank` and `worldSize` came from, for messages.
    public var rankVariable: String
    public var sizeVariable: String

    public init(launcher: Launcher, rank: Int, worldSize: Int, localRank: Int,
                rankVariable: String = "", sizeVariable: String = "") {
        self.launcher = launcher
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank
        self.rankVariable = rankVariable
        self.sizeVariable = sizeVariable
    }

    /// One process, no launcher.
    public static let single = LaunchInfo(launcher: .single, rank: 0, worldSize: 1, localRank: 0)

    /// More than one process: gradients must be all-reduced.
    public var isDistributed: Bool { worldSize > 1 }

    /// Reads the launcher's variables. Checked in this order (the first launcher whose rank
    /// variable is set wins, so `mpirun` inside a Slurm allocation is seen as mpirun):
    /// OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK, PMI_RANK/PMI_SIZE (+ MPI_LOCALRANKID),
    /// SLURM_PROCID/SLURM_STEP_NUM_TASKS (else SLURM_NTASKS)/SLURM_LOCALID,
    /// RANK/WORLD_SIZE/LOCAL_RANK. None set: a single process.
    /// - Throws: `LaunchError` when a value is not an integer, is out of range, or a rank comes
    ///   without its size.
    public static func detect(environment env: [String: String]) throws -> LaunchInfo {
        let schemes: [(Launcher, rank: String, sizes: [String], local: String)] = [
            (.openMPI, "OMPI_COMM_WORLD_RANK", ["OMPI_COMM_WORLD_SIZE"], "OMPI_COMM_WORLD_LOCAL_RANK"),
            (.pmi, "PMI_RANK", ["PMI_SIZE"], "MPI_LOCALRANKID"),
            // srun sets SLURM_STEP_NUM_TASKS for the step; SLURM_NTASKS is the allocation's.
            (.slurm, "SLURM_PROCID", ["SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"], "SLURM_LOCALID"),
            (.torchrun, "RANK", ["WORLD_SIZE"], "LOCAL_RANK"),
        ]
        for s in schemes {
            guard let rankText = env[s.rank] else { continue }
            let rank = try integer(rankText, s.rank)
            guard let sizeName = s.sizes.first(where: { env[$0] != nil }) else {
                throw LaunchError.missingSize(rankVariable: s.rank, sizeVariable: s.sizes[0])
            }
            let size = try integer(env[sizeName]!, sizeName)
            guard size >= 1 else { throw LaunchError.badWorldSize(variable: sizeName, value: size) }
            guard rank >= 0 && rank < size else {
                throw LaunchError.rankOutOfRange(rankVariable: s.rank, rank: rank, sizeVariable: sizeName, size: size)
            }
            var local = 0
            if let l = env[s.local] {
                local = try integer(l, s.local)
                guard local >= 0 else { throw LaunchError.notAnInteger(variable: s.local, value: l) }
            }
            return LaunchInfo(launcher: s.0, rank: rank, worldSize: size, localRank: local,
                              rankVariable: s.rank, sizeVariable: sizeName)
        }
        return .single
    }

    private static func integer(_ text: String, _ name: String) throws -> Int {
        guard let v = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw LaunchError.notAnInteger(variable: name, value: text)
        }
        return v
    }
}

public enum LaunchError: LocalizedError, Equatable {
    case notAnInteger(variable: String, value: String)
    case missingSize(rankVariable: String, sizeVariable: String)
    case badWorldSize(variable: String, value: Int)
    case rankOutOfRange(rankVariable: String, rank: Int, sizeVariable: String, size: Int)

    public var errorDescription: String? {
        switch self {
        case .notAnInteger(let n, let v):
            return "environment variable \(n)='\(v)' is not a non-negative integer"
        case .missingSize(let r, let s):
            return "\(r) is set but \(s) is not; set both (or neither, for one process)"
        case .badWorldSize(let n, let v):
            return "environment variable \(n)=\(v): the number of processes must be at least 1"
        case .rankOutOfRange(let rn, let r, let sn, let s):
            return "\(rn)=\(r) is outside 0..<\(sn)=\(s)"
        }
    }
}

// Where a resumed run continues: the newest checkpoint of the run directory, its model and its
// trainer state. The state is checked against the model and the data by `Trainer.restore`.
import Foundation

public struct ResumePoint {
    public let checkpoint: String
    public let model: GPT2
    public let state: Trainer.State

    public enum Failure: LocalizedError, Equatable {
        case noCheckpoint(directory: String)
        case noTrainerState(path: String, detail: String)
        case unusable(path: String, reason: String, previous: String?)

        public var errorDescription: String? {
            switch self {
            case .noCheckpoint(let d):
                return "'\(d)' holds no checkpoint to resume from (checkpoint_NNNNNN.safetensors); drop --resume to start a new run there"
            case .noTrainerState(let p, let d):
                return "'\(p)' has no usable trainer state (\(d)); it is not a training checkpoint of gpt train"
            case .unusable(let p, let r, let prev):
                return "cannot resume from '\(p)': \(r)" + (prev.map { "; move it aside to resume from the previous checkpoint '\($0)'" } ?? "")
            }
        }
    }

    /// Loads the newest checkpoint in `directory` (tensors checked against their checksums).
    public static func newest(in directory: RunDirectory) throws -> ResumePoint {
        let all = directory.checkpoints()
        guard let path = all.last else { throw Failure.noCheckpoint(directory: directory.path) }
        let previous = all.dropLast().last
        let model: GPT2, metadata: [String: String]
        do {
            (model, metadata) = try loadCheckpoint(path: path)
        } catch {
            throw Failure.unusable(path: path, reason: error.localizedDescription, previous: previous)
        }
        guard let json = metadata["trainer"] else { throw Failure.noTrainerState(path: path, detail: "no 'trainer' entry") }
        let state: Trainer.State
        do {
            state = try JSONDecoder().decode(Trainer.State.self, from: Data(json.utf8))
        } catch {
            throw Failure.noTrainerState(path: path, detail: "its 'trainer' entry does not decode: \(error)")
        }
        guard RunDirectory.checkpointStep(path) == state.step else {
            throw Failure.unusable(path: path, reason: "its trainer state says step \(state.step), its name another", previous: previous)
        }
        return ResumePoint(checkpoint: path, model: model, state: state)
    }
}

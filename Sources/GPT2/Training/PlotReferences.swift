// Reference lines for the plots and the rule for when they apply. A val loss baseline means
// something only on the data it was measured on: OpenAI GPT-2 (124M) scores 3.2924 on
// build-nanogpt's FineWeb-Edu val shard (play.ipynb), so that line is drawn only for runs on
// FineWeb-Edu shards. HellaSwag baselines hold for any run (the eval set is fixed): GPT-2 124M
// acc_norm 0.2955 (hellaswag.py's scoring, as `gpt eval hellaswag` computes it), GPT-3 124M 0.337.
import Foundation

/// A training dataset with published val-loss baselines.
public enum ReferenceDataset: String, Sendable, CaseIterable {
    /// FineWeb-Edu shards (build-nanogpt's fineweb.py `edufineweb_*`, llm.c's `edu_fineweb_*`).
    case fineWebEdu = "FineWeb-Edu"

    /// A horizontal baseline: label and value.
    public struct Line: Equatable, Sendable {
        public var label: String
        public var value: Double
    }

    /// The val-loss baselines measured on this dataset.
    public var valLossLines: [Line] {
        switch self {
        case .fineWebEdu: return [Line(label: "OpenAI GPT-2 (124M) val loss", value: 3.2924)]
        }
    }

    /// HellaSwag acc_norm baselines (independent of the training data).
    public static let hellaSwagLines = [Line(label: "OpenAI GPT-2 (124M)", value: 0.2955),
                                        Line(label: "OpenAI GPT-3 (124M)", value: 0.337)]

    /// The dataset named by a shard prefix (the part of `NAME_train_000001.npy` before `_train_`).
    public init?(shardPrefix: String) {
        switch shardPrefix.lowercased() {
        case "edufineweb", "edu_fineweb": self = .fineWebEdu
        default: return nil
        }
    }

    /// The dataset whose shards fill `names` (file names of a data directory): every
    /// `*_train_*` / `*_val_*` file must carry a known prefix, and the same one; else nil.
    public init?(shardFileNames names: [String]) {
        var prefixes = Set<String>()
        for name in names {
            guard let r = name.range(of: "_train_") ?? name.range(of: "_val_") else { continue }
            prefixes.insert(String(name[..<r.lowerBound]))
        }
        guard prefixes.count == 1, let only = prefixes.first, let d = ReferenceDataset(shardPrefix: only) else { return nil }
        self = d
    }

    /// The dataset a run trained on: `RUN_DIR/run.json`'s `"data"` field names the data
    /// directory, whose shard names decide. Nil when run.json, the field or the directory is
    /// missing, or the shards are not a known dataset (no baselines are drawn then).
    public static func forRun(directory: String) -> ReferenceDataset? {
        guard let (configuration, _) = try? RunConfiguration.load(path: RunDirectory(path: directory).runFile),
              let names = try? FileManager.default.contentsOfDirectory(atPath: configuration.data) else { return nil }
        return ReferenceDataset(shardFileNames: names)
    }
}

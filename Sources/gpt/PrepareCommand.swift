import ArgumentParser
import Foundation
import GPT2


struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize text into training shards (build-nanogpt's fineweb.py / llm.c's data scripts).",
        discussion: """
        INPUT: plain-text files (one document each), JSONL files with a "text" field (FineWeb-Edu, \
        OpenWebText exports), Parquet files (one document per row of the "text" column, as \
        FineWeb-Edu and OpenWebText are on the Hugging Face hub; null rows are skipped), directories \
        of them, or - for stdin. --column picks another JSONL field / Parquet column. Every document \
        starts with <|endoftext|> (50256). Shards: PREFIX_val_000000 first, then PREFIX_train_000001, \
        ... as uint16 .npy (numpy 1.0) or llm.c .bin. Output is identical for any --threads.

        Input that fits in one shard (and no --val-tokens): its last ~10% becomes the val shard (cut \
        at a document start between 75% and 95% when there is one) and the rest the train shard.

        INPUT may also be a Hugging Face hub location, hf://datasets/OWNER/NAME[@REVISION]/PATH \
        (a file, a folder, or a glob: * ? [...] within a folder, ** across), downloaded into the \
        Hugging Face cache (HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE as huggingface_hub), \
        or a preset: fineweb-edu (build-nanogpt's fineweb.py: HuggingFaceFW/fineweb-edu \
        sample/10BT/*.parquet, shards edufineweb_* in edu_fineweb10B), fineweb (HuggingFaceFW/fineweb \
        sample/10BT/*.parquet, fineweb_* in fineweb10B), openwebtext (nanoGPT's dataset: \
        Skylion007/openwebtext at main, plain_text/train-*-of-00080.parquet, openwebtext_* in \
        openwebtext). --stream deletes each downloaded file once it is tokenized.

        --shakespeare writes the corpus embedded in gpt: the last ~10% (cut at a line break) is \
        shakespeare_val_000000, the first ~90% shakespeare_train_000001.
        """)

    @Argument(help: "Input files or directories ('-' for stdin).")
    var inputs: [String] = []

    @Flag(help: "Prepare the embedded Shakespeare corpus instead of INPUTs.")
    var shakespeare = false

    @Option(name: [.short, .long], help: "Output directory (created if needed; presets default to fineweb.py's, e.g. edu_fineweb10B).")
    var output: String?

    @Flag(help: "hf:// inputs: tokenize each file as soon as it is downloaded and verified, then delete it (bounded disk).")
    var stream = false

    @Option(help: "Shard name prefix (fineweb.py: edufineweb).")
    var name: String?

    @Option(help: "Tokens per shard (fineweb.py: 100M; at most 2^31 - 1).")
    var shardTokens: Int = 100_000_000

    @Option(help: "Tokens in the validation shard (default: a whole first shard, as fineweb.py; ~10% when the input fits in one shard).")
    var valTokens: Int?

    @Option(help: "Shard format: npy (build-nanogpt) or bin (llm.c).")
    var format: ShardFormat = .npy

    @Option(help: "Tokenizer threads (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Format of stdin ('-') and of pipes such as <(zstdcat f.jsonl.zst): text or jsonl.")
    var stdinFormat: InputFormat = .text

    @Option(help: "The JSONL field / Parquet column that holds the text.")
    var column: String = "text"

    @Flag(help: "Replace existing shards with the same name.")
    var overwrite = false

    func validate() throws {
        if shakespeare && !inputs.isEmpty { throw ValidationError("give either --shakespeare or INPUTs, not both") }
        if !shakespeare && inputs.isEmpty { throw ValidationError("give INPUT files/directories, '-' for stdin, or --shakespeare") }
        guard shardTokens >= 1 else { throw ValidationError("--shard-tokens must be positive") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if let v = valTokens, v < 0 { throw ValidationError("--val-tokens must not be negative") }
        if stdinFormat == .parquet {
            throw ValidationError("stdin cannot be Parquet (Parquet needs random access); give the file's path instead")
        }
    }

    func run() throws {
        let progress = ProgressLine()
        let report: (PrepareProgress) -> Void = { p in
            progress.update(String(format: "%.1f MB read, %d docs, %d tokens, %d shards | %.1f MB/s, %.0f tok/s",
                                   Double(p.bytesRead) / 1e6, p.documents, p.tokens, p.shardsWritten,
                                   p.megabytesPerSecond, p.tokensPerSecond))
        }
        let summary: PrepareSummary
        if shakespeare {
            summary = try DatasetPreparer.prepareShakespeare(outputDirectory: try outputDirectory(), format: format, threads: threads, progress: report)
        } else {
            summary = try prepareInputs(report: report)   // presets, hf:// locations and local inputs (HubInputs.swift)
        }
        progress.finish()
        for s in summary.shards { print("wrote \(s)") }
        if let split = summary.autoSplit {
            let share = String(format: "%.1f%%", 100 * Double(split.valTokens) / Double(split.trainTokens + split.valTokens))
            let cut = split.atDocumentBoundary ? "cut at a document start" : "cut inside a document: none starts between 75% and 95%"
            print("note: the input fits in one shard, so its last \(split.valTokens) tokens (\(share), \(cut)) are the val shard "
                  + "and the first \(split.trainTokens) the train shard; use --val-tokens N to choose the val size")
        }
        let nulls = summary.nullRows > 0 ? " (\(summary.nullRows) null rows skipped)" : ""
        let size = String(format: "%.1f MB in %.2f s", Double(summary.bytesRead) / 1e6, summary.elapsed)
        print("\(summary.documents) documents\(nulls), \(summary.tokens) tokens (\(summary.valTokens) val) in \(summary.shards.count) shards, \(size)")
    }
}

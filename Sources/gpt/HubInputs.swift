import ArgumentParser
import Foundation
import GPT2

/// `gpt prepare NAME`: datasets on the Hugging Face hub, prepared as their reference scripts do.
struct DatasetPreset {
    let name: String
    let location: String
    /// Shard name prefix.
    let shardName: String
    /// Default output folder (relative to the working directory, as the scripts write it).
    let output: String

    static let all: [DatasetPreset] = [
        // build-nanogpt fineweb.py: load_dataset("HuggingFaceFW/fineweb-edu", name="sample-10BT")
        DatasetPreset(name: "fineweb-edu", location: "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet",
                      shardName: "edufineweb", output: "edu_fineweb10B"),
        // llm.c dev/data/fineweb.py -t classic: HuggingFaceFW/fineweb, sample-10BT
        DatasetPreset(name: "fineweb", location: "hf://datasets/HuggingFaceFW/fineweb/sample/10BT/*.parquet",
                      shardName: "fineweb", output: "fineweb10B"),
        // nanoGPT data/openwebtext: load_dataset("openwebtext"), now Parquet files on main
        DatasetPreset(name: "openwebtext", location: "hf://datasets/Skylion007/openwebtext/plain_text/train-*-of-00080.parquet",
                      shardName: "openwebtext", output: "openwebtext"),
    ]

    /// The preset `input` names, unless a local file or folder of that name exists.
    static func named(_ input: String) -> DatasetPreset? {
        guard let p = all.first(where: { $0.name == input }), !FileManager.default.fileExists(atPath: input) else { return nil }
        return p
    }
}

extension Prepare {
    /// The preset among INPUTs, if any (a preset must be the only input).
    func preset() throws -> DatasetPreset? {
        let presets = inputs.compactMap(DatasetPreset.named)
        guard let first = presets.first else { return nil }
        guard inputs.count == 1 else {
            throw ValidationError("the preset '\(first.name)' stands alone; give hf:// locations to combine datasets")
        }
        return first
    }

    /// --output, or the preset's folder.
    func outputDirectory() throws -> String {
        if let output { return output }
        if let p = try preset() { return p.output }
        throw ValidationError("give --output DIR (only the presets \(DatasetPreset.all.map(\.name).joined(separator: ", ")) have a default)")
    }

    /// Prepares INPUTs after resolving presets and hf:// locations. Hub files download into the
    /// Hugging Face cache (8 at a time) while the first ones are tokenized, in input order; with
    /// --stream one file is fetched ahead of the one being read, and each is deleted once read.
    func prepareInputs(report: @escaping (PrepareProgress) -> Void) throws -> PrepareSummary {
        let preset = try preset()
        let locations = preset.map { [$0.location] } ?? inputs
        let shardName = name ?? preset?.shardName ?? "data"
        let outputDirectory = try outputDirectory()
        if stream && !locations.allSatisfy(HubURI.isHubURI) {
            throw ValidationError("--stream reads hf:// locations (or a preset); local inputs are prepared without it")
        }
        guard locations.contains(where: HubURI.isHubURI) else {
            return try DatasetPreparer.prepare(inputs: locations, outputDirectory: outputDirectory, name: shardName,
                                               shardTokens: shardTokens, valTokens: valTokens, format: format,
                                               threads: threads, stdinFormat: stdinFormat, column: column,
                                               overwrite: overwrite, progress: report)
        }
        // Local inputs are checked before anything downloads.
        let localInputs = locations.filter { !HubURI.isHubURI($0) }
        if !localInputs.isEmpty { _ = try DocumentReader.resolve(inputs: localInputs, stdinFormat: stdinFormat) }
        let client = HubClient()
        let printer = HubProgressPrinter(verb: stream ? "streaming" : "downloading", showsETA: !stream)
        defer { printer.finish() }
        var sources: [ChainedInputQueue.Source] = []
        for location in locations {
            guard HubURI.isHubURI(location) else {
                sources.append(.local(location))
                continue
            }
            var uri = try HubURI.parse(location)
            if uri.repo.kind == .model && !location.hasPrefix("hf://models/") {
                throw ValidationError("'\(location)' names a model repository; datasets are hf://datasets/OWNER/NAME/...")
            }
            uri.repo.kind = .dataset
            let set = try client.resolve(uri)
            let size = Double(set.files.reduce(0) { $0 + $1.size }) / 1e9
            let line = location + ": \(set.files.count) file(s), " + String(format: "%.2f GB", size) + " at commit "
                + set.commit.prefix(12) + (set.fromCache ? " (from the cache)" : "") + "\n"
            FileHandle.standardError.write(Data(line.utf8))
            let queue = HubFileQueue(client: client, files: set, prefetch: stream ? 1 : nil, deleteAfterUse: stream,
                                     progress: printer.callback)
            if !stream { queue.start() }   // every download begins now; tokenizing starts with the first file
            sources.append(.hub(queue))
        }
        let queue = ChainedInputQueue(sources)
        defer { queue.cancel() }   // after an error, stop the downloads still running
        return try DatasetPreparer.prepare(queue: queue, outputDirectory: outputDirectory, name: shardName,
                                           shardTokens: shardTokens, valTokens: valTokens, format: format,
                                           threads: threads, stdinFormat: stdinFormat, column: column,
                                           overwrite: overwrite) { p in
            printer.setSuffix(String(format: "tokenized %.1f MB, %d docs, %d tokens, %d shards, %.0f tok/s",
                                     Double(p.bytesRead) / 1e6, p.documents, p.tokens, p.shardsWritten, p.tokensPerSecond))
        }
    }
}

/// INPUTs in order: local paths as they are, hub locations through their download queues.
final class ChainedInputQueue: PrepareInputQueue, @unchecked Sendable {
    enum Source {
        case local(String)
        case hub(HubFileQueue)
    }

    private let lock = NSLock()
    private let sources: [Source]
    private var index = 0
    private var owners: [String: HubFileQueue] = [:]

    init(_ sources: [Source]) { self.sources = sources }

    /// Called by one consumer thread; `done` may come from another while this one waits for a
    /// download (which may need that `done` to free its slot), so the lock is not held while waiting.
    func next() throws -> String? {
        while index < sources.count {
            switch sources[index] {
            case .local(let path):
                index += 1
                return path
            case .hub(let queue):
                if let path = try queue.next() {
                    lock.lock()
                    owners[path] = queue
                    lock.unlock()
                    return path
                }
                index += 1
            }
        }
        return nil
    }

    func done(_ path: String) {
        lock.lock()
        let owner = owners.removeValue(forKey: path)
        lock.unlock()
        owner?.done(path)
    }

    func cancel() {
        for case .hub(let queue) in sources { queue.cancel() }
    }
}

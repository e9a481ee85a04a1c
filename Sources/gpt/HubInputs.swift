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

    /// Prepares INPUTs after resolving presets and hf:// locations: hub files are downloaded into
    /// the Hugging Face cache (in parallel) and read from there; with --stream each is tokenized as
    /// soon as it is verified and deleted after.
    func prepareInputs(report: @escaping (PrepareProgress) -> Void) throws -> PrepareSummary {
        let preset = try preset()
        let locations = preset.map { [$0.location] } ?? inputs
        let shardName = name ?? preset?.shardName ?? "data"
        let outputDirectory = try outputDirectory()
        if stream {
            guard locations.allSatisfy(HubURI.isHubURI) else {
                throw ValidationError("--stream reads hf:// locations (or a preset); local inputs are prepared without it")
            }
        }
        guard locations.contains(where: HubURI.isHubURI) else {
            return try DatasetPreparer.prepare(inputs: locations, outputDirectory: outputDirectory, name: shardName,
                                               shardTokens: shardTokens, valTokens: valTokens, format: format,
                                               threads: threads, stdinFormat: stdinFormat, overwrite: overwrite,
                                               progress: report)
        }
        let client = HubClient()
        var sets: [HubFileSet] = []
        for location in locations where HubURI.isHubURI(location) {
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
            sets.append(set)
        }
        // Downloaded first (8 files at a time), then read from the cache in input order.
        let printer = HubProgressPrinter(verb: "downloading")
        var paths: [String] = []
        var next = sets.makeIterator()
        for location in locations {
            if HubURI.isHubURI(location) {
                paths += try client.download(next.next()!, progress: printer.callback)
            } else {
                paths.append(location)
            }
        }
        printer.finish()
        return try DatasetPreparer.prepare(inputs: paths, outputDirectory: outputDirectory, name: shardName,
                                           shardTokens: shardTokens, valTokens: valTokens, format: format,
                                           threads: threads, stdinFormat: stdinFormat, overwrite: overwrite,
                                           progress: report)
    }
}

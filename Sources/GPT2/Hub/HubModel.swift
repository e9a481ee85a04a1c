// Fetching a GPT-2 model repository: config.json and the safetensors weights (model.safetensors,
// or model.safetensors.index.json and the shards its weight_map names), into the cache; the
// snapshot folder is then an ordinary HF directory for `loadModel(path:)`.
import Foundation

extension HubClient {
    /// Downloads what `loadModel(path:)` needs from a model repository (a subfolder when
    /// `uri.path` is set) and returns its snapshot folder.
    /// - Throws: `HubError` (`.modelFilesMissing` for a repository without config.json or
    ///   safetensors weights).
    public func fetchModel(_ uri: HubURI, progress: (@Sendable (HubProgress) -> Void)? = nil) throws -> String {
        let repo = uri.repo
        let folder = uri.path
        func inFolder(_ name: String) -> String { folder.isEmpty ? name : folder + "/" + name }
        let config = inFolder("config.json"), single = inFolder("model.safetensors"), index = inFolder("model.safetensors.index.json")

        var commit: String?
        var session: CurlSession?
        if !environment.offline {
            session = try CurlSession()
            commit = try onlineCommit(session!, uri)
        }
        guard let commit else { return try cachedModel(uri) }
        let listing = try listTree(session!, repo, commit: commit, revision: uri.revision, folder: folder, recursive: false).files
        func entry(_ path: String) -> HubFile? { listing.first { $0.path == path } }
        guard let configFile = entry(config) else {
            throw HubError.modelFilesMissing(repo: repo.description, detail: "no \(config) at revision '\(uri.revision)'")
        }
        var files = [configFile]
        if let weights = entry(single) {
            files.append(weights)
        } else if let indexFile = entry(index) {
            let set = HubFileSet(repo: repo, revision: uri.revision, commit: commit, files: [configFile, indexFile], fromCache: false)
            let indexPath = try download(set, progress: progress)[1]
            for shard in try shardNames(indexPath: indexPath, repo: repo) {
                guard let f = entry(inFolder(shard)) else {
                    throw HubError.modelFilesMissing(repo: repo.description, detail: "\(index) names '\(shard)', which the repository lacks")
                }
                files.append(f)
            }
        } else {
            let others = listing.map(\.path).filter { $0.hasSuffix(".bin") || $0.hasSuffix(".h5") || $0.hasSuffix(".msgpack") }
            throw HubError.modelFilesMissing(repo: repo.description, detail: "no \(single) or \(index)"
                + (others.isEmpty ? "" : " (only \(others.joined(separator: ", ")); gpt loads safetensors weights)"))
        }
        _ = try download(HubFileSet(repo: repo, revision: uri.revision, commit: commit, files: files, fromCache: false), progress: progress)
        let snapshot = cache.snapshotFolder(repo, commit: commit)
        return folder.isEmpty ? snapshot : snapshot + "/" + folder
    }

    /// The model folder from the cache alone (offline or unreachable hub).
    private func cachedModel(_ uri: HubURI) throws -> String {
        let repo = uri.repo
        guard let commit = cache.commit(for: repo, revision: uri.revision) else {
            throw HubError.notCached(repo: repo.description, revision: uri.revision, detail: "no refs/\(uri.revision) in \(cache.repoFolder(repo))")
        }
        let dir = cache.snapshotFolder(repo, commit: commit) + (uri.path.isEmpty ? "" : "/" + uri.path)
        let base = uri.path.isEmpty ? "" : uri.path + "/"
        func has(_ name: String) -> Bool { cache.cachedFile(repo, commit: commit, path: base + name) != nil }
        func missing(_ name: String) -> HubError {
            .notCached(repo: repo.description, revision: uri.revision, detail: "'\(base + name)' is missing from snapshot \(commit)")
        }
        guard has("config.json") else { throw missing("config.json") }
        if has("model.safetensors") { return dir }
        guard has("model.safetensors.index.json") else { throw missing("model.safetensors") }
        for shard in try shardNames(indexPath: dir + "/model.safetensors.index.json", repo: repo) where !has(shard) {
            throw missing(shard)
        }
        return dir
    }

    /// The distinct shard file names of a safetensors index, sorted.
    private func shardNames(indexPath: String, repo: HubRepo) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: indexPath),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = obj["weight_map"] as? [String: String] else {
            throw HubError.modelFilesMissing(repo: repo.description, detail: "'\(indexPath)' has no 'weight_map' object")
        }
        let names = Set(map.values)
        for n in names where !isSafeRelativePath(n) || n.contains("/") {
            throw HubError.modelFilesMissing(repo: repo.description, detail: "'\(indexPath)' names an unusable shard '\(n)'")
        }
        return names.sorted()
    }
}

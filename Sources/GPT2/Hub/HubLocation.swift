// Names on the hub: repositories (models and datasets), `hf://` locations as HfFileSystem writes
// them (hf://datasets/OWNER/NAME@REVISION/PATH, hf://OWNER/NAME for models), and glob patterns
// over repository paths (`*`, `?` and `[...]` within one path segment, `**` across segments).
import Foundation

/// A model or dataset repository on the hub.
public struct HubRepo: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case model, dataset }

    public var kind: Kind
    /// "OWNER/NAME" (or a legacy single name such as "gpt2").
    public var id: String

    public init(_ kind: Kind, _ id: String) {
        self.kind = kind
        self.id = id
    }

    /// "models" or "datasets", as in API paths.
    var apiSegment: String { kind == .model ? "models" : "datasets" }
    /// "" for models, "datasets/" for datasets, as in file URLs and web pages.
    var urlPrefix: String { kind == .model ? "" : "datasets/" }
    /// The cache folder name: models--OWNER--NAME, datasets--OWNER--NAME (huggingface_hub's repo_folder_name).
    public var cacheFolderName: String { ([apiSegment] + id.split(separator: "/").map(String.init)).joined(separator: "--") }

    /// "datasets/OWNER/NAME" or "OWNER/NAME".
    public var description: String { urlPrefix + id }
}

/// A location on the hub: a repository, a revision and a path (a file, a folder, a glob, or "").
public struct HubURI: Hashable, Sendable, CustomStringConvertible {
    public var repo: HubRepo
    /// Branch, tag or commit ("main" unless given after '@').
    public var revision: String
    /// Path inside the repository; "" is the root.
    public var path: String

    public init(repo: HubRepo, revision: String = "main", path: String = "") {
        self.repo = repo
        self.revision = revision
        self.path = path
    }

    public static let scheme = "hf://"

    /// True for strings starting with `hf://`.
    public static func isHubURI(_ s: String) -> Bool { s.hasPrefix(scheme) }

    /// Parses `hf://[datasets/|models/]OWNER/NAME[@REVISION][/PATH]`. A revision containing '/'
    /// is written percent-encoded (`@refs%2Fconvert%2Fparquet`) or as `refs/convert/NAME` /
    /// `refs/pr/N`, which are recognised.
    /// - Throws: `HubError.invalidURI`.
    public static func parse(_ uri: String) throws(HubError) -> HubURI {
        guard uri.hasPrefix(scheme) else { throw .invalidURI(uri: uri, reason: "it does not start with hf://") }
        var parts = uri.dropFirst(scheme.count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        while parts.last == "" { parts.removeLast() }
        var kind = HubRepo.Kind.model
        switch parts.first {
        case "datasets": kind = .dataset; parts.removeFirst()
        case "models": parts.removeFirst()
        case "spaces": throw .invalidURI(uri: uri, reason: "Spaces are not supported")
        default: break
        }
        guard !parts.isEmpty, !parts[0].isEmpty else { throw .invalidURI(uri: uri, reason: "no repository name") }
        // OWNER/NAME, or a single legacy name when it carries the revision or stands alone.
        let idCount = (parts.count == 1 || parts[0].contains("@")) ? 1 : 2
        var idParts = Array(parts[0..<idCount])
        var rest = Array(parts[idCount...])
        var revision = "main"
        if let at = idParts[idCount - 1].firstIndex(of: "@") {
            let last = idParts[idCount - 1]
            revision = String(last[last.index(after: at)...])
            idParts[idCount - 1] = String(last[..<at])
            if revision == "refs", rest.count >= 2, rest[0] == "convert" || (rest[0] == "pr" && Int(rest[1]) != nil) {
                revision += "/" + rest[0] + "/" + rest[1]
                rest.removeFirst(2)
            }
            revision = revision.removingPercentEncoding ?? revision
            guard !revision.isEmpty else { throw .invalidURI(uri: uri, reason: "empty revision after '@'") }
        }
        for p in idParts {
            let ok = !p.isEmpty && p != "." && p != ".." && p.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
            guard ok else { throw .invalidURI(uri: uri, reason: "'\(p)' is not a valid repository name part") }
        }
        if kind == .dataset && idParts.count != 2 {
            throw .invalidURI(uri: uri, reason: "a dataset is named OWNER/NAME")
        }
        for p in rest where p.isEmpty || p == "." || p == ".." {
            throw .invalidURI(uri: uri, reason: "the path has an empty, '.' or '..' segment")
        }
        return HubURI(repo: HubRepo(kind, idParts.joined(separator: "/")), revision: revision, path: rest.joined(separator: "/"))
    }

    public var description: String {
        let rev = revision == "main" ? "" : "@" + (revision.addingPercentEncoding(withAllowedCharacters: .urlPathComponentAllowed) ?? revision)
        return Self.scheme + repo.description + rev + (path.isEmpty ? "" : "/" + path)
    }
}

extension CharacterSet {
    /// RFC 3986 unreserved characters: what Python's quote(s, safe="") leaves alone.
    static let urlPathComponentAllowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    /// Unreserved plus '/': Python's quote(s) default.
    static let urlPathAllowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/")
}

/// Percent-encodes as Python's `urllib.parse.quote(s, safe=keepSlash ? "/" : "")`.
func percentEncoded(_ s: String, keepSlash: Bool) -> String {
    s.addingPercentEncoding(withAllowedCharacters: keepSlash ? .urlPathAllowed : .urlPathComponentAllowed) ?? s
}

// MARK: - Globs

/// A glob over repository paths.
public struct HubGlob: Sendable {
    public let pattern: String
    private let segments: [String]

    public init(_ pattern: String) {
        self.pattern = pattern
        segments = pattern.split(separator: "/").map(String.init)
    }

    /// True when the pattern has a wildcard.
    public static func isPattern(_ s: String) -> Bool { s.contains { "*?[".contains($0) } }

    /// The folder to list: the segments before the first wildcard.
    public var literalPrefix: String {
        segments.prefix { !Self.isPattern($0) }.joined(separator: "/")
    }

    /// Whether matching needs more than the direct children of `literalPrefix`.
    public var needsRecursiveListing: Bool {
        let rest = segments.drop { !Self.isPattern($0) }
        return rest.count > 1 || rest.contains("**")
    }

    /// Whether `path` (a file path in the repository) matches.
    public func matches(_ path: String) -> Bool {
        Self.match(segments[...], path.split(separator: "/").map(String.init)[...])
    }

    private static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == "**" {
            var rest = path
            while true {
                if match(pattern.dropFirst(), rest) { return true }
                if rest.isEmpty { return false }
                rest = rest.dropFirst()
            }
        }
        guard let segment = path.first, matchSegment(Array(first.unicodeScalars)[...], Array(segment.unicodeScalars)[...]) else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }

    /// fnmatch within one segment: `*`, `?`, `[abc]`, `[a-z]`, `[!abc]`.
    private static func matchSegment(_ p: ArraySlice<Unicode.Scalar>, _ s: ArraySlice<Unicode.Scalar>) -> Bool {
        guard let c = p.first else { return s.isEmpty }
        switch c {
        case "*":
            var rest = s
            while true {
                if matchSegment(p.dropFirst(), rest) { return true }
                if rest.isEmpty { return false }
                rest = rest.dropFirst()
            }
        case "?":
            return !s.isEmpty && matchSegment(p.dropFirst(), s.dropFirst())
        case "[":
            guard let ch = s.first, let close = p.dropFirst(2).firstIndex(of: "]") else {
                return s.first == "[" && matchSegment(p.dropFirst(), s.dropFirst())
            }
            var set = p[(p.startIndex + 1)..<close]
            let negate = set.first == "!" || set.first == "^"
            if negate { set = set.dropFirst() }
            var hit = false
            var i = set.startIndex
            while i < set.endIndex {
                if i + 2 < set.endIndex, set[i + 1] == "-" {
                    if set[i].value <= ch.value && ch.value <= set[i + 2].value { hit = true }
                    i += 3
                } else {
                    if set[i] == ch { hit = true }
                    i += 1
                }
            }
            return hit != negate && matchSegment(p[(close + 1)...], s.dropFirst())
        default:
            return s.first == c && matchSegment(p.dropFirst(), s.dropFirst())
        }
    }
}

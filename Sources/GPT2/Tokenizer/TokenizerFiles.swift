// Loading vocabularies: OpenAI's encoder.json + vocab.bpe, Hugging Face's vocab.json + merges.txt
// (same formats), and tiktoken rank files (base64 token, space, rank per line).
import Foundation

extension GPT2Tokenizer {
    /// From encoder.json / vocab.json (token -> id, in the byte-level alphabet) and vocab.bpe /
    /// merges.txt. Ranks: the 256 bytes in GPT-2's order, then one per merge line (as tiktoken's
    /// data_gym_to_mergeable_bpe_ranks). Entries of the encoder that are not mergeable tokens
    /// (`<|endoftext|>`) become special tokens.
    public convenience init(encoderJSON: [UInt8], vocabBPE: [UInt8], source: String) throws {
        try self.init(encoderJSON: encoderJSON, encoderPath: source + "/encoder.json",
                      vocabBPE: vocabBPE, mergesPath: source + "/vocab.bpe", source: source)
    }

    /// The same, with the two files' paths for messages.
    convenience init(encoderJSON: [UInt8], encoderPath: String, vocabBPE: [UInt8], mergesPath: String, source: String) throws {
        let encoder = try encoderJSON.withUnsafeBufferPointer { try parseStringIntObject($0, path: encoderPath) }
        var tokens: [[UInt8]] = ByteLevel.bytesInRankOrder.map { [$0] }
        guard let text = String(validating: vocabBPE, as: UTF8.self) else {
            throw TokenizerError.malformed(path: mergesPath, reason: "not UTF-8")
        }
        for (lineNo, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            if line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ")
            guard parts.count == 2, let a = ByteLevel.bytes(of: parts[0]), let b = ByteLevel.bytes(of: parts[1]) else {
                throw TokenizerError.malformed(path: mergesPath, reason: "bad merge on line \(lineNo + 1): '\(oneLine(line.prefix(80)))'")
            }
            tokens.append(a + b)
        }
        var ids: [Int32] = []
        ids.reserveCapacity(tokens.count)
        var mergeable = Set<String>()
        for t in tokens {
            let s = String(String.UnicodeScalarView(t.map { ByteLevel.byteToScalar[Int($0)] }))
            guard let id = encoder[s] else {
                throw TokenizerError.malformed(path: mergesPath, reason: "token '\(oneLine(s))' of the merges is missing from \(encoderPath)")
            }
            ids.append(Int32(id))
            mergeable.insert(s)
        }
        var specials: [Int32: [UInt8]] = [:]
        var owner: [Int: String] = [:]
        for (s, id) in encoder.sorted(by: { $0.value < $1.value }) {
            if let other = owner[id] {
                throw TokenizerError.malformed(path: encoderPath, reason: "tokens '\(oneLine(other))' and '\(oneLine(s))' share id \(id)")
            }
            owner[id] = s
            if mergeable.contains(s) { continue }
            // A special token is literal text (<|endoftext|>, <s>, [PAD]...). An entry that is not
            // shaped like one and is written with the byte-level alphabet's remapped characters
            // (Ġ for a space...) or joins two mergeable tokens is a BPE token whose merge is
            // missing: the merges file is cut short or belongs to another vocabulary.
            if !looksSpecial(s) && (s.unicodeScalars.contains { (0x100...0x143).contains($0.value) } || joinsTwo(s, of: mergeable)) {
                throw TokenizerError.malformed(path: mergesPath, reason: "no merge produces token '\(oneLine(s))' (id \(id)) of \(encoderPath); "
                                               + "the merges file is truncated or belongs to another vocabulary")
            }
            specials[Int32(id)] = Array(s.utf8)
        }
        try self.init(tokensByRank: tokens, ids: ids, specials: specials, source: source)
    }

    /// From a tiktoken rank file; rank = id. A 50,256-token file (GPT-2's r50k) gets
    /// `<|endoftext|>` = 50256.
    public convenience init(tiktokenFile path: String) throws {
        let data = try readFile(path)
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokenizerError.malformed(path: path, reason: "not UTF-8")
        }
        var byRank: [Int: [UInt8]] = [:]
        for (lineNo, line) in text.split(separator: "\n").enumerated() {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let bytes = Data(base64Encoded: String(parts[0])), let rank = Int(parts[1]), rank >= 0, rank < GPT2ConfigField.vocabSize.limit else {
                throw TokenizerError.malformed(path: path, reason: "bad line \(lineNo + 1)")
            }
            byRank[rank] = [UInt8](bytes)
        }
        guard byRank.count > 0, byRank.keys.max()! == byRank.count - 1 else {
            throw TokenizerError.malformed(path: path, reason: "ranks are not 0..<\(byRank.count)")
        }
        let tokens = (0..<byRank.count).map { byRank[$0]! }
        let specials: [Int32: [UInt8]] = tokens.count == 50256 ? [50256: Array(GPT2Tokenizer.endOfTextString.utf8)] : [:]
        try self.init(tokensByRank: tokens, ids: (0..<tokens.count).map { Int32($0) }, specials: specials, source: path)
    }

    /// From a directory holding encoder.json + vocab.bpe, vocab.json + merges.txt, or a `*.tiktoken`.
    public convenience init(directory: String) throws {
        let fm = FileManager.default
        func has(_ f: String) -> Bool { fm.fileExists(atPath: directory + "/" + f) }
        switch FileKind(path: directory) {
        case .directory: break
        case .missing: throw TokenizerError.unreadable(path: directory, reason: "no such directory")
        case let kind: throw TokenizerError.unreadable(path: directory, reason: "it is \(kind.description), not a tokenizer directory")
        }
        for (vocab, merges) in [("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt")] where has(vocab) && has(merges) {
            let vocabPath = directory + "/" + vocab, mergesPath = directory + "/" + merges
            let v = try readFile(vocabPath), m = try readFile(mergesPath)
            try self.init(encoderJSON: [UInt8](v), encoderPath: vocabPath, vocabBPE: [UInt8](m), mergesPath: mergesPath, source: directory)
            return
        }
        if let files = try? fm.contentsOfDirectory(atPath: directory),
           let tk = files.sorted().first(where: { $0.hasSuffix(".tiktoken") }) {
            try self.init(tiktokenFile: directory + "/" + tk)
            return
        }
        if !fm.fileExists(atPath: directory) { throw TokenizerError.unreadable(path: directory, reason: "no such directory") }
        throw TokenizerError.missingFiles(directory: directory)
    }
}

/// `<...>` or `[...]`: the shapes of special tokens (<|endoftext|>, <s>, <pad>, [CLS]...).
private func looksSpecial(_ s: String) -> Bool {
    s.count >= 3 && ((s.hasPrefix("<") && s.hasSuffix(">")) || (s.hasPrefix("[") && s.hasSuffix("]")))
}

/// Whether `s` is the concatenation of two tokens of `tokens` (what a merge would produce).
private func joinsTwo(_ s: String, of tokens: Set<String>) -> Bool {
    let scalars = Array(s.unicodeScalars)
    guard scalars.count >= 2 else { return false }
    for k in 1..<scalars.count {
        let left = String(String.UnicodeScalarView(scalars[..<k])), right = String(String.UnicodeScalarView(scalars[k...]))
        if tokens.contains(left) && tokens.contains(right) { return true }
    }
    return false
}

/// The contents of a regular file (a FIFO is refused rather than waited on).
private func readFile(_ path: String) throws -> Data {
    if let problem = FileKind.regularFileProblem(path) { throw TokenizerError.unreadable(path: path, reason: problem) }
    do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw TokenizerError.unreadable(path: path, reason: (error as NSError).localizedDescription)
    }
}

/// Parses a flat JSON object of string keys and integer values (encoder.json / vocab.json),
/// ~10x faster than JSONSerialization for this one shape.
func parseStringIntObject(_ b: UnsafeBufferPointer<UInt8>, path: String) throws -> [String: Int] {
    var i = 0
    let n = b.count
    func fail(_ why: String) -> TokenizerError { .malformed(path: path, reason: "\(why) at byte \(i)") }
    func skipSpace() { while i < n, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
    func hex4() throws -> UInt32 {
        guard i + 4 <= n else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]; i += 1
            switch c {
            case 0x30...0x39: v = v << 4 | UInt32(c - 0x30)
            case 0x41...0x46: v = v << 4 | UInt32(c - 0x41 + 10)
            case 0x61...0x66: v = v << 4 | UInt32(c - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
        }
        return v
    }
    func string() throws -> String {
        guard i < n, b[i] == 0x22 else { throw fail("expected a string") }
        i += 1
        var bytes: [UInt8] = []
        while true {
            guard i < n else { throw fail("unterminated string") }
            let c = b[i]; i += 1
            if c == 0x22 { break }
            if c != 0x5C { bytes.append(c); continue }
            guard i < n else { throw fail("unterminated escape") }
            let e = b[i]; i += 1
            switch e {
            case 0x22, 0x5C, 0x2F: bytes.append(e)
            case 0x62: bytes.append(0x08)
            case 0x66: bytes.append(0x0C)
            case 0x6E: bytes.append(0x0A)
            case 0x72: bytes.append(0x0D)
            case 0x74: bytes.append(0x09)
            case 0x75:
                var v = try hex4()
                if (0xD800..<0xDC00).contains(v), i + 1 < n, b[i] == 0x5C, b[i + 1] == 0x75 {
                    i += 2
                    let lo = try hex4()
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                }
                guard let s = Unicode.Scalar(v) else { throw fail("bad code point") }
                bytes.append(contentsOf: Array(String(Character(s)).utf8))
            default: throw fail("bad escape")
            }
        }
        guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("string is not UTF-8") }
        return s
    }
    var out: [String: Int] = [:]
    skipSpace()
    guard i < n, b[i] == 0x7B else { throw fail("expected '{'") }
    i += 1
    skipSpace()
    if i < n, b[i] == 0x7D { return out }
    while true {
        skipSpace()
        let key = try string()
        skipSpace()
        guard i < n, b[i] == 0x3A else { throw fail("expected ':'") }
        i += 1
        skipSpace()
        var v = 0, digits = 0
        while i < n, (0x30...0x39).contains(b[i]) {
            v = v * 10 + Int(b[i] - 0x30)
            i += 1
            digits += 1
            // ids index arrays: bound them like a model's vocabulary
            if v > GPT2ConfigField.vocabSize.limit { throw fail("id of '\(oneLine(key))' exceeds \(GPT2ConfigField.vocabSize.limit)") }
        }
        guard digits > 0 else { throw fail("expected an integer") }
        out[key] = v
        skipSpace()
        guard i < n else { throw fail("unterminated object") }
        if b[i] == 0x2C { i += 1; continue }
        if b[i] == 0x7D { break }
        throw fail("expected ',' or '}'")
    }
    return out
}

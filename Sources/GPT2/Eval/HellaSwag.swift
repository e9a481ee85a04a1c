// HellaSwag (Zellers et al. 2019), scored in completion style as build-nanogpt's hellaswag.py:
// each row is the context tokens followed by one ending encoded as " " + ending; the model's
// cross-entropy over the ending tokens gives a sum (acc: argmin of the sums) and a mean
// (acc_norm: argmin of the means). Rows are batched several examples per forward pass.
// Inputs: the official jsonl (https://github.com/rowanz/hellaswag, fields ctx, endings[4],
// label) or llm.c's eval file (dev/data/data_common.py write_evalfile, magic 20240522).
// Rows longer than the model's context are truncated from the left (see `HellaSwag.render`).
import Foundation

/// One multiple-choice example, tokenized.
public struct HellaSwagExample: Equatable, Sendable {
    /// Index in its file (0-based).
    public var index: Int
    /// Index of the correct ending.
    public var label: Int
    /// GPT-2 tokens of the context.
    public var context: [Int32]
    /// GPT-2 tokens of each ending (" " + ending), four for HellaSwag.
    public var endings: [[Int32]]

    public init(index: Int, label: Int, context: [Int32], endings: [[Int32]]) {
        self.index = index
        self.label = label
        self.context = context
        self.endings = endings
    }
}

/// The scores of one example.
public struct HellaSwagPrediction: Equatable, Sendable {
    public var index: Int
    public var label: Int
    /// argmin of `sumLosses` (hellaswag.py `pred`, counted by acc).
    public var pred: Int
    /// argmin of `meanLosses` (hellaswag.py `pred_norm`, counted by acc_norm).
    public var predNorm: Int
    /// Cross-entropy summed over each ending's scored tokens.
    public var sumLosses: [Double]
    /// The same divided by the number of scored tokens.
    public var meanLosses: [Double]
}

/// Counts (summable over ranks) and this process's per-example predictions.
public struct HellaSwagResult: Equatable, Sendable {
    public var total = 0
    public var correct = 0
    public var correctNorm = 0
    /// Predictions of the examples this rank scored, in order (not merged by `summed`).
    public var predictions: [HellaSwagPrediction] = []
    public init() {}

    public var acc: Double { total == 0 ? 0 : Double(correct) / Double(total) }
    public var accNorm: Double { total == 0 ? 0 : Double(correctNorm) / Double(total) }

    /// The counts summed over all ranks (`reducer` nil or one rank: unchanged).
    public func summed(over reducer: GradientReducer?) throws -> HellaSwagResult {
        guard let reducer, reducer.worldSize > 1 else { return self }
        let s = try reducer.sum([Double(total), Double(correct), Double(correctNorm)])
        var r = self
        r.total = Int(s[0]); r.correct = Int(s[1]); r.correctNorm = Int(s[2])
        return r
    }
}

public enum HellaSwagError: LocalizedError, Equatable {
    case unreadable(path: String, reason: String)
    case empty(path: String)
    case badLine(path: String, line: Int, reason: String)
    case badHeader(path: String, reason: String)
    case badExample(path: String, example: Int, reason: String)
    case tokenOutOfVocabulary(example: Int, token: Int32, vocabSize: Int)
    case nothingToScore(example: Int, ending: Int)
    case downloadFailed(url: String, reason: String)

    public var errorDescription: String? { oneLine(message) }

    /// The message before control characters from the file are escaped.
    private var message: String {
        switch self {
        case .unreadable(let p, let r): return "cannot read HellaSwag file '\(p)': \(r)"
        case .empty(let p): return "HellaSwag file '\(p)' holds no examples"
        case .badLine(let p, let l, let r): return "'\(p)' line \(l): \(r)"
        case .badHeader(let p, let r): return "'\(p)': \(r)"
        case .badExample(let p, let e, let r): return "'\(p)' example \(e): \(r)"
        case .tokenOutOfVocabulary(let e, let t, let v):
            return "HellaSwag example \(e) has token \(t), outside the model's vocabulary of \(v); HellaSwag needs a GPT-2 vocabulary (50257)"
        case .nothingToScore(let e, let n): return "HellaSwag example \(e) ending \(n): context plus ending is a single token, nothing to score"
        case .downloadFailed(let u, let r): return "download of \(u) failed: \(r)"
        }
    }
}

public enum HellaSwag {
    /// llm.c's eval-file magic (header[0]); header[1] is version 1 (uint16 GPT-2 tokens).
    public static let magic: Int32 = 20240522
    /// The official validation set (10,042 examples).
    public static let officialURL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
    /// HellaSwag always has four endings.
    public static let endingCount = 4

    /// Reads `path`: llm.c's `.bin` when it starts with the magic, else jsonl.
    /// - Parameters:
    ///   - limit: keep only the first `limit` examples.
    ///   - tokenizer: for jsonl; built only once every line has parsed (a corrupt file fails fast).
    public static func load(path: String, limit: Int? = nil,
                            tokenizer: @autoclosure () -> GPT2Tokenizer = .gpt2) throws -> [HellaSwagExample] {
        // A FIFO would block the read: say what the path is instead.
        if let problem = FileKind.regularFileProblem(path) { throw HellaSwagError.unreadable(path: path, reason: problem) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw HellaSwagError.unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        let isBin = data.count >= 4 && data.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } == Int32(littleEndian: magic)
        let examples = isBin ? try parseBin(data, path: path, limit: limit)
                             : try parseJSONL(data, path: path, limit: limit, tokenizer: tokenizer())
        guard !examples.isEmpty else { throw HellaSwagError.empty(path: path) }
        return examples
    }

    private struct Line: Decodable {
        var ctx: String
        var endings: [String]
        var label: Int
    }

    /// Parses the official jsonl: one JSON object per line with `ctx`, `endings` (4) and `label`;
    /// blank lines are skipped. Tokens: `ctx`, then " " + each ending. Every line is checked
    /// before the tokenizer is built and the first text encoded.
    public static func parseJSONL(_ data: Data, path: String, limit: Int? = nil,
                                  tokenizer: @autoclosure () -> GPT2Tokenizer = .gpt2) throws -> [HellaSwagExample] {
        var lines: [Line] = []
        let decoder = JSONDecoder()
        var lineNumber = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            if let limit, lines.count >= limit { break }
            if raw.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            let line: Line
            do {
                line = try decoder.decode(Line.self, from: Data(raw))
            } catch let DecodingError.keyNotFound(key, _) {
                throw HellaSwagError.badLine(path: path, line: lineNumber, reason: "missing field '\(key.stringValue)'")
            } catch let DecodingError.typeMismatch(_, ctx) {
                throw HellaSwagError.badLine(path: path, line: lineNumber, reason: ctx.codingPath.isEmpty
                                             ? "not a JSON object" : "field '\(fieldPath(ctx))' has the wrong type")
            } catch let DecodingError.valueNotFound(_, ctx) {
                throw HellaSwagError.badLine(path: path, line: lineNumber, reason: "field '\(fieldPath(ctx))' is null")
            } catch {
                throw HellaSwagError.badLine(path: path, line: lineNumber, reason: "not a JSON object")
            }
            guard line.endings.count == endingCount else {
                throw HellaSwagError.badLine(path: path, line: lineNumber, reason: "\(line.endings.count) endings (expected \(endingCount))")
            }
            guard line.label >= 0 && line.label < line.endings.count else {
                throw HellaSwagError.badLine(path: path, line: lineNumber, reason: "label \(line.label) outside 0..<\(line.endings.count)")
            }
            lines.append(line)
        }
        guard !lines.isEmpty else { return [] }
        let tok = tokenizer()
        return lines.enumerated().map { i, line in
            HellaSwagExample(index: i, label: line.label, context: tok.encode(line.ctx), endings: line.endings.map { tok.encode(" " + $0) })
        }
    }

    private static func fieldPath(_ c: DecodingError.Context) -> String {
        c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// Parses llm.c's eval file: 256 int32 header [magic, version 1, examples, longest example in
    /// bytes], then per example uint16s: 65535, its size in bytes, its index, label, completions,
    /// context length and tokens, then each completion's length and tokens.
    public static func parseBin(_ data: Data, path: String, limit: Int? = nil) throws -> [HellaSwagExample] {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> [HellaSwagExample] in
            guard raw.count >= 1024 else { throw HellaSwagError.badHeader(path: path, reason: "\(raw.count) bytes, shorter than the 1024-byte header") }
            func header(_ i: Int) -> Int32 { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
            guard header(0) == magic else {
                throw HellaSwagError.badHeader(path: path, reason: "bad magic \(header(0)) (expected \(magic)); not an llm.c HellaSwag file")
            }
            guard header(1) == 1 else {
                throw HellaSwagError.badHeader(path: path, reason: "version \(header(1)) is not supported (expected 1: uint16 GPT-2 tokens)")
            }
            let count = Int(header(2)), longest = Int(header(3))
            guard count >= 0 else { throw HellaSwagError.badHeader(path: path, reason: "negative example count \(count)") }
            guard (raw.count - 1024) % 2 == 0 else {
                throw HellaSwagError.badHeader(path: path, reason: "odd payload size \(raw.count - 1024); expected uint16 tokens")
            }
            let n16 = (raw.count - 1024) / 2
            func u16(_ i: Int) -> Int { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 1024 + 2 * i, as: UInt16.self))) }
            var out: [HellaSwagExample] = []
            var p = 0
            let wanted = min(count, limit ?? count)
            for e in 0..<wanted {
                func bad(_ r: String) -> HellaSwagError { .badExample(path: path, example: e, reason: r) }
                var q = p
                func next(_ what: String) throws -> Int {
                    guard q < n16 else { throw bad("file ends inside the example (reading \(what)); the header promises \(count) examples") }
                    defer { q += 1 }
                    return u16(q)
                }
                let delimiter = try next("the delimiter")
                guard delimiter == 65535 else { throw bad("found \(delimiter) where the <START_EXAMPLE> delimiter 65535 should be") }
                let bytes = try next("the size")
                guard bytes <= longest || longest == 0 else { throw bad("size \(bytes) bytes exceeds the header's longest example \(longest)") }
                let index = try next("the index")
                let label = try next("the label")
                let completions = try next("the completion count")
                guard completions == endingCount else { throw bad("\(completions) completions (expected \(endingCount))") }
                guard label < completions else { throw bad("label \(label) outside 0..<\(completions)") }
                func tokens(_ what: String) throws -> [Int32] {
                    let len = try next("the \(what) length")
                    guard q + len <= n16 else { throw bad("file ends inside the \(what) (\(len) tokens)") }
                    defer { q += len }
                    return (0..<len).map { Int32(u16(q + $0)) }
                }
                let context = try tokens("context")
                var endings: [[Int32]] = []
                for c in 0..<completions { endings.append(try tokens("completion \(c)")) }
                guard (q - p) * 2 == bytes else { throw bad("holds \((q - p) * 2) bytes but its size field says \(bytes)") }
                out.append(HellaSwagExample(index: index, label: label, context: context, endings: endings))
                p = q
            }
            if wanted == count && p != n16 {
                throw HellaSwagError.badHeader(path: path, reason: "\(n16 - p) uint16 values after the \(count) examples the header announces")
            }
            return out
        }
    }

    /// Writes `examples` in llm.c's eval-file format (tokens must be below 65535).
    public static func writeBin(_ examples: [HellaSwagExample], to path: String) throws {
        var stream: [UInt16] = []
        var longest = 0
        for (i, ex) in examples.enumerated() {
            var s: [UInt16] = [65535, 0, UInt16(i), UInt16(ex.label), UInt16(ex.endings.count), UInt16(ex.context.count)]
            s += ex.context.map { UInt16($0) }
            for e in ex.endings { s.append(UInt16(e.count)); s += e.map { UInt16($0) } }
            s[1] = UInt16(2 * s.count)
            longest = max(longest, 2 * s.count)
            stream += s
        }
        var header = [Int32](repeating: 0, count: 256)
        header[0] = magic; header[1] = 1; header[2] = Int32(examples.count); header[3] = Int32(longest)
        var bytes = Data()
        header.withUnsafeBytes { bytes.append(contentsOf: $0) }
        stream.withUnsafeBytes { bytes.append(contentsOf: $0) }
        try bytes.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Checks that every token fits the model's vocabulary and every row has a token to score.
    public static func validate(_ examples: [HellaSwagExample], vocabSize: Int) throws {
        for ex in examples {
            for t in ex.context + ex.endings.joined() where t < 0 || Int(t) >= vocabSize {
                throw HellaSwagError.tokenOutOfVocabulary(example: ex.index, token: t, vocabSize: vocabSize)
            }
            for (n, e) in ex.endings.enumerated() where e.isEmpty || ex.context.count + e.count < 2 {
                throw HellaSwagError.nothingToScore(example: ex.index, ending: n)
            }
        }
    }

    /// Downloads `url` into `directory` (created if needed) under the URL's file name, through a
    /// temporary file renamed into place once complete, and checks that its first line is a
    /// HellaSwag example (so an HTML error page is never kept). Uses `curl`, else `wget`.
    /// - Returns: the path of the downloaded file.
    public static func download(url: String = officialURL, directory: String) throws -> String {
        let name = URL(string: url)?.lastPathComponent ?? ""
        let file = (directory as NSString).appendingPathComponent(name.isEmpty || name == "/" ? "hellaswag_val.jsonl" : name)
        let temp = (directory as NSString).appendingPathComponent("." + (file as NSString).lastPathComponent + ".download")
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw HellaSwagError.downloadFailed(url: url, reason: "cannot create directory '\(directory)': \((error as NSError).localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(atPath: temp) }
        let tools: [(String, [String])] = [
            ("curl", ["-fsSL", "--retry", "2", "--connect-timeout", "30", "-o", temp, url]),
            ("wget", ["-q", "-t", "3", "-T", "30", "-O", temp, url]),
        ]
        guard let (tool, args) = tools.first(where: { executablePath($0.0) != nil }) else {
            throw HellaSwagError.downloadFailed(url: url, reason: "neither curl nor wget is installed; fetch the file yourself into '\(directory)'")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executablePath(tool)!)
        p.arguments = args
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw HellaSwagError.downloadFailed(url: url, reason: "cannot run \(tool): \((error as NSError).localizedDescription)")
        }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let detail = message.split(separator: "\n").last.map { ": " + $0.trimmingCharacters(in: .whitespaces) } ?? ""
            throw HellaSwagError.downloadFailed(url: url, reason: "\(tool) exited with status \(p.terminationStatus)\(detail)")
        }
        // The first line must parse as an example.
        guard let h = FileHandle(forReadingAtPath: temp) else {
            throw HellaSwagError.downloadFailed(url: url, reason: "\(tool) wrote no file")
        }
        let head = (try? h.read(upToCount: 1 << 16)) ?? Data()
        try? h.close()
        let firstLine = head.split(separator: UInt8(ascii: "\n")).first.map { Data($0) } ?? Data()
        do {
            guard try !parseJSONL(firstLine, path: url, limit: 1).isEmpty else { throw HellaSwagError.empty(path: url) }
        } catch {
            throw HellaSwagError.downloadFailed(url: url, reason: "the response is not HellaSwag jsonl (\(error.localizedDescription))")
        }
        guard rename(temp, file) == 0 else {
            throw HellaSwagError.downloadFailed(url: url, reason: "cannot rename into '\(file)': \(String(cString: strerror(errno)))")
        }
        return file
    }

    /// `name` found in PATH, or nil.
    private static func executablePath(_ name: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// One row: `tokens` (context + ending) and the index of its first scored token. A row of
    /// more than `maxSeqLen + 1` tokens keeps its last `maxSeqLen + 1` (the start of the context
    /// is dropped; a sliding window would see the same); if the ending alone is that long, its
    /// first tokens become context. Scored tokens are those at index >= `scoreFrom` (>= 1).
    static func render(context: [Int32], ending: [Int32], maxSeqLen: Int) -> (tokens: ArraySlice<Int32>, scoreFrom: Int) {
        let row = context + ending
        let drop = max(0, row.count - (maxSeqLen + 1))
        return (row[drop...], max(1, context.count - drop))
    }
}

// MARK: - Scoring

/// Scores `examples` as hellaswag.py does and counts acc / acc_norm.
/// - Parameters:
///   - engine: any engine whose vocabulary covers the tokens (check with `HellaSwag.validate`).
///   - examples: all examples; this rank scores those with `i % worldSize == rank`.
///   - maxTokensPerForward: examples go to the engine's `continuationLosses` in groups of about
///     this many tokens (always at least one example); default: the engine's
///     `preferredTokensPerCall`.
///   - progress: called after each scoring call with this rank's running result.
/// - Returns: this rank's counts and predictions; sum the counts with `summed(over:)`.
public func evaluateHellaSwag(engine: any InferenceEngine, examples: [HellaSwagExample], rank: Int = 0, worldSize: Int = 1,
                              maxTokensPerForward: Int? = nil,
                              progress: ((HellaSwagResult) -> Void)? = nil) throws -> HellaSwagResult {
    precondition(worldSize >= 1 && rank >= 0 && rank < worldSize, "evaluateHellaSwag: rank \(rank) of \(worldSize)")
    let maxSeqLen = engine.config.maxSeqLen
    let maxTokensPerForward = maxTokensPerForward ?? engine.preferredTokensPerCall
    // This rank's examples, shortest first: examples packed into one call then have similar
    // lengths, so little of each call is padding. Predictions are returned in example order.
    let mine = stride(from: rank, to: examples.count, by: worldSize).map { examples[$0] }
        .map { ($0, $0.context.count + ($0.endings.map(\.count).max() ?? 0)) }
        .enumerated().sorted { ($0.element.1, $0.offset) < ($1.element.1, $1.offset) }.map(\.element.0)
    var result = HellaSwagResult()
    // An example whose endings all fit the context window is one item (its context scored once by
    // engines that share it); one with a row too long keeps the end of each row, as its own item.
    func items(_ ex: HellaSwagExample) -> [ContinuationItem] {
        if ex.endings.allSatisfy({ ex.context.count + $0.count <= maxSeqLen + 1 }) {
            return [ContinuationItem(context: ex.context, continuations: ex.endings)]
        }
        return ex.endings.map { e in
            let r = HellaSwag.render(context: ex.context, ending: e, maxSeqLen: maxSeqLen)
            return ContinuationItem(context: Array(r.tokens.prefix(r.scoreFrom)), continuations: [Array(r.tokens.dropFirst(r.scoreFrom))])
        }
    }
    var start = 0
    while start < mine.count {
        // Examples while their tokens stay within the budget (always at least one).
        var end = start, tokens = 0, batch: [ContinuationItem] = [], counts: [Int] = []
        while end < mine.count {
            let its = items(mine[end])
            let n = its.reduce(0) { $0 + $1.context.count + $1.continuations.reduce(0) { $0 + $1.count } }
            if end > start && tokens + n > maxTokensPerForward { break }
            batch += its
            counts.append(its.count)
            tokens += n
            end += 1
        }
        let losses = try engine.continuationLosses(batch, maxTokensPerCall: maxTokensPerForward)
        var i = 0
        for (ex, count) in zip(mine[start..<end], counts) {
            let endingLosses = losses[i..<i + count].flatMap { $0 }   // one list per ending
            i += count
            let sums = endingLosses.map { $0.reduce(0.0) { $0 + Double($1) } }
            let means = zip(sums, endingLosses).map { $0 / Double($1.count) }
            let pred = sums.indices.min { sums[$0] < sums[$1] }!
            let predNorm = means.indices.min { means[$0] < means[$1] }!
            result.total += 1
            if pred == ex.label { result.correct += 1 }
            if predNorm == ex.label { result.correctNorm += 1 }
            result.predictions.append(HellaSwagPrediction(index: ex.index, label: ex.label, pred: pred, predNorm: predNorm,
                                                          sumLosses: sums, meanLosses: means))
        }
        start = end
        progress?(result)
    }
    result.predictions.sort { $0.index < $1.index }
    return result
}

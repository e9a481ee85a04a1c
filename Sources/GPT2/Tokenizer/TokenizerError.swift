import Foundation

/// Failures while loading tokenizer files or decoding ids.
public enum TokenizerError: LocalizedError, Equatable {
    case missingFiles(directory: String)
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    case invalidUTF8(path: String, offset: Int)
    case unknownId(Int, vocabSize: Int)

    public var errorDescription: String? {
        switch self {
        case .missingFiles(let d):
            return "no tokenizer in '\(d)': expected encoder.json + vocab.bpe, vocab.json + merges.txt, or a *.tiktoken file"
        case .unreadable(let p, let r): return "cannot read '\(p)': \(r)"
        case .malformed(let p, let r): return "malformed tokenizer file '\(p)': \(r)"
        case .invalidUTF8(let p, let o): return "'\(p)' is not valid UTF-8 (first bad byte at offset \(o))"
        case .unknownId(let id, let v): return "token id \(id) is outside the vocabulary (0..<\(v))"
        }
    }
}

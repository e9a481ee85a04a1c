// TEMPORARY STUB: real implementation in progress.
import Foundation

public enum TokenizerError: Error {
    case invalidUTF8(path: String, offset: Int)
}

public final class GPT2Tokenizer: @unchecked Sendable {
    /// `<|endoftext|>`
    public static let endOfText: Int32 = 50256
    public var vocabSize: Int { 50257 }
    /// The GPT-2 tokenizer embedded in the binary (shared, built once).
    public static let gpt2: GPT2Tokenizer = GPT2Tokenizer()
    init() {}
    /// Encodes UTF-8 bytes (must be valid UTF-8) and appends ids to `ids`.
    public func encode(utf8 bytes: UnsafeBufferPointer<UInt8>, allowSpecial: Bool = false, into ids: inout [Int32]) {
        for b in bytes { ids.append(Int32(b)) }
    }
    public func encode(_ text: String, allowSpecial: Bool = false) -> [Int32] {
        var ids: [Int32] = []
        var t = text
        t.withUTF8 { encode(utf8: $0, allowSpecial: allowSpecial, into: &ids) }
        return ids
    }
    public func decodeBytes(_ ids: [Int32]) -> [UInt8] { ids.map { UInt8(truncatingIfNeeded: $0) } }
    public func decode(_ ids: [Int32]) -> String { String(decoding: decodeBytes(ids), as: UTF8.self) }
}

// How a text becomes tokens, step by step (for `gpt inspect tokens` and the data guide): the
// pre-tokenizer's pieces, then the byte-pair tokens of each piece. The ids of all pieces, in
// order, are exactly `encode(text)`.
import Foundation

/// One pre-tokenizer piece of a text and the BPE tokens it became.
public struct TokenPiece: Equatable, Sendable {
    /// The piece's UTF-8 bytes.
    public var bytes: [UInt8]
    /// Its token ids, in order.
    public var ids: [Int32]
}

extension GPT2Tokenizer {
    /// The pre-tokenizer pieces of `text` with the token ids of each. With `allowSpecial`, each
    /// literal `<|endoftext|>` is a piece of its own with that one id.
    public func pieces(_ text: String, allowSpecial: Bool = false) -> [TokenPiece] {
        var utf8 = Array(text.utf8)
        var out: [TokenPiece] = []
        let special = Array(GPT2Tokenizer.endOfTextString.utf8)
        utf8.withUnsafeMutableBufferPointer { all in
            var start = 0, k = 0
            func split(_ r: Range<Int>) {
                let part = UnsafeBufferPointer(rebasing: all[r])
                var pre = PreTokenizer(part)
                while let piece = pre.next() {
                    let bytes = UnsafeBufferPointer(rebasing: part[piece])
                    var ids: [Int32] = []
                    // A piece encodes on its own to the same tokens: BPE never crosses pieces.
                    encode(utf8: bytes, into: &ids)
                    out.append(TokenPiece(bytes: Array(bytes), ids: ids))
                }
            }
            if allowSpecial, let eot = endOfTextId {
                while k + special.count <= all.count {
                    if Array(all[k..<k + special.count]) == special {
                        split(start..<k)
                        out.append(TokenPiece(bytes: special, ids: [eot]))
                        k += special.count
                        start = k
                    } else {
                        k += 1
                    }
                }
            }
            split(start..<all.count)
        }
        return out
    }
}

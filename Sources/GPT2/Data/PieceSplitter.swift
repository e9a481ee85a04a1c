// Safe cut points inside a document: GPT-2's pre-tokenizer never joins text across them, so the
// parts of a document cut there encode to exactly the ids of the whole (see `PieceSplitter`).

// MARK: - Safe boundaries

/// Where a document may be cut so that encoding the parts separately gives the same ids.
///
/// GPT-2's pre-tokenizer (`'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`)
/// never produces a piece that spans
/// - the position before a space whose neighbours are both printable ASCII non-space (`a| b`): the
///   space only ever starts a piece (` ?X`), and the letter/number/punctuation run before it stops at it;
/// - the position after a `\n` whose neighbours are both printable ASCII non-space (`a\n|b`): that
///   newline is a piece of its own both in the whole text (`\s`) and at the end of a part (`\s++$`).
/// Requiring ASCII neighbours keeps Unicode whitespace (U+00A0, U+3000, ...) out of the argument.
/// A text file with no such boundary in 64 × `pieceBytes` (64 MiB by default; e.g. long runs of text
/// without ASCII spaces or newlines) is cut at a character boundary instead; only there could ids
/// differ from whole-document encoding. JSONL documents are in memory anyway and are never cut unsafely.
enum PieceSplitter {
    @inline(__always)
    static func isGraphic(_ b: UInt8) -> Bool { b >= 0x21 && b <= 0x7E }

    @inline(__always)
    static func isSafe(_ p: UnsafeBufferPointer<UInt8>, _ c: Int) -> Bool {
        // Requires 2 <= c <= p.count - 2.
        if p[c] == 0x20 { return isGraphic(p[c - 1]) && isGraphic(p[c + 1]) }
        return p[c - 1] == 0x0A && isGraphic(p[c - 2]) && isGraphic(p[c])
    }

    /// A safe cut near `target`: the last one in [target/2, target], else the first after target,
    /// else the last before target/2; nil if `p` has none.
    static func cut(_ p: UnsafeBufferPointer<UInt8>, target: Int) -> Int? {
        let hi = p.count - 2
        guard hi >= 2 else { return nil }
        let t = min(target, hi)
        var c = t
        while c >= max(2, target / 2) {
            if isSafe(p, c) { return c }
            c -= 1
        }
        c = t + 1
        while c <= hi {
            if isSafe(p, c) { return c }
            c += 1
        }
        c = min(target / 2 - 1, hi)
        while c >= 2 {
            if isSafe(p, c) { return c }
            c -= 1
        }
        return nil
    }

    /// Cuts an in-memory document into parts of about `pieceBytes` at safe boundaries.
    static func split(_ bytes: [UInt8], pieceBytes: Int) -> [[UInt8]] {
        guard bytes.count > pieceBytes else { return [bytes] }
        var parts: [[UInt8]] = []
        bytes.withUnsafeBufferPointer { all in
            var start = 0
            while all.count - start > pieceBytes {
                let rest = UnsafeBufferPointer(rebasing: all[start...])
                guard let c = cut(rest, target: pieceBytes) else { break }
                parts.append(Array(rest[..<c]))
                start += c
            }
            parts.append(Array(all[start...]))
        }
        return parts
    }
}

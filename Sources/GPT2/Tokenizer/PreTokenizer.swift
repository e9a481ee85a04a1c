// GPT-2's pre-tokenizer, hand-written instead of a regex engine (tiktoken spends most of its time
// in the regex). It splits text exactly as tiktoken's r50k pattern does:
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
// \p{L} = general categories L*, \p{N} = N*, \s = the Unicode White_Space property.

/// The four classes the pattern distinguishes.
enum CharClass: UInt8 {
    case letter = 0, number = 1, space = 2, other = 3
}

enum CharClasses {
    /// ASCII fast path (static storage, never freed, so hot loops index a raw pointer).
    nonisolated(unsafe) static let asciiTable: UnsafePointer<UInt8> = table(count: 128)

    /// Planes 0-3 (everything assigned outside them is private use or tags: class `other`),
    /// built on first use of non-ASCII text (about 25 ms).
    nonisolated(unsafe) static let planes0to3: UnsafePointer<UInt8> = table(count: 0x40000)

    private static func table(count: Int) -> UnsafePointer<UInt8> {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
        for v in 0..<count { t[v] = classify(UInt32(v)).rawValue }
        return UnsafePointer(t)
    }

    static func classify(_ v: UInt32) -> CharClass {
        guard let s = Unicode.Scalar(v) else { return .other }
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
}

/// Iterates over the pieces of valid UTF-8 text. Pieces are byte ranges `[start, end)`.
struct PreTokenizer {
    let p: UnsafePointer<UInt8>
    let n: Int
    var i = 0
    private let ascii = CharClasses.asciiTable
    private let planes = CharClasses.planes0to3

    init(_ text: UnsafeBufferPointer<UInt8>) {
        p = text.baseAddress ?? UnsafePointer(bitPattern: 1)!
        n = text.count
    }

    /// Class and byte length of the scalar starting at `j` (valid UTF-8 assumed).
    @inline(__always)
    private func scalar(at j: Int) -> (CharClass, Int) {
        let b0 = p[j]
        if b0 < 0x80 { return (CharClass(rawValue: ascii[Int(b0)])!, 1) }
        var v: UInt32
        let len: Int
        if b0 < 0xE0 {
            v = UInt32(b0 & 0x1F) << 6 | UInt32(p[j + 1] & 0x3F); len = 2
        } else if b0 < 0xF0 {
            v = UInt32(b0 & 0x0F) << 12 | UInt32(p[j + 1] & 0x3F) << 6 | UInt32(p[j + 2] & 0x3F); len = 3
        } else {
            v = UInt32(b0 & 0x07) << 18 | UInt32(p[j + 1] & 0x3F) << 12 | UInt32(p[j + 2] & 0x3F) << 6 | UInt32(p[j + 3] & 0x3F)
            len = 4
        }
        let c = v < 0x40000 ? planes[Int(v)] : CharClass.other.rawValue
        return (CharClass(rawValue: c)!, len)
    }

    /// End of the run of scalars of class `c` starting at `j`.
    @inline(__always)
    private func run(of c: CharClass, from j: Int) -> Int {
        var k = j
        while k < n {
            let b = p[k]
            if b < 0x80 {
                if ascii[Int(b)] != c.rawValue { break }
                k += 1
            } else {
                let (cc, len) = scalar(at: k)
                if cc != c { break }
                k += len
            }
        }
        return k
    }

    /// The next piece, or nil at the end of the text.
    @inline(__always)
    mutating func next() -> Range<Int>? {
        guard i < n else { return nil }
        let start = i
        let b0 = p[i]
        // '(?:[sdmt]|ll|ve|re)  (case-sensitive)
        if b0 == UInt8(ascii: "'") && i + 1 < n {
            let b1 = p[i + 1]
            if b1 == UInt8(ascii: "s") || b1 == UInt8(ascii: "d") || b1 == UInt8(ascii: "m") || b1 == UInt8(ascii: "t") {
                i += 2
                return start..<i
            }
            if i + 2 < n {
                let b2 = p[i + 2]
                if (b1 == UInt8(ascii: "l") && b2 == UInt8(ascii: "l")) || (b1 == UInt8(ascii: "v") && b2 == UInt8(ascii: "e"))
                    || (b1 == UInt8(ascii: "r") && b2 == UInt8(ascii: "e")) {
                    i += 3
                    return start..<i
                }
            }
        }
        // An optional single U+0020 attaches to a following letter, number or other run.
        var j = i
        var (c, len) = scalar(at: i)
        if b0 == UInt8(ascii: " ") && i + 1 < n {
            let (c1, len1) = scalar(at: i + 1)
            if c1 != .space { j = i + 1; c = c1; len = len1 }
        }
        if c != .space {
            i = run(of: c, from: j + len)
            return start..<i
        }
        // Whitespace: \s++$ | \s+(?!\S) | \s
        var end = i
        var last = i
        while end < n {
            let (cc, l) = scalar(at: end)
            if cc != .space { break }
            last = end
            end += l
        }
        if end == n || last == i {
            i = end                 // run reaches the end of the text, or a single whitespace scalar
        } else {
            i = last                // leave the last whitespace scalar to attach to what follows
        }
        return start..<i
    }
}

/// Positions where the pattern never joins across, so text cut there encodes to the same ids in
/// pieces: before a whitespace scalar that has non-whitespace on both sides (a lone space attaches
/// forward, any other lone whitespace scalar is a piece of its own).
enum SafeSplit {
    /// The last safe cut in `text[0..<limit]` at or after `minimum`, or nil.
    static func lastCut(in text: UnsafeBufferPointer<UInt8>, before limit: Int, notBefore minimum: Int = 1) -> Int? {
        var k = min(limit, text.count - 1)
        while k > max(minimum, 1) {
            let b = text[k]
            // Only ASCII whitespace cut points; neighbours must be non-whitespace (ASCII or not).
            if (b == 0x20 || b == 0x0A) && isASCIINonSpace(text[k - 1]) && isASCIINonSpace(text[k + 1]) { return k }
            k -= 1
        }
        return nil
    }

    /// Conservative: only ASCII neighbours are considered (a non-ASCII byte might be whitespace).
    @inline(__always)
    private static func isASCIINonSpace(_ b: UInt8) -> Bool {
        b < 0x80 && CharClasses.asciiTable[Int(b)] != CharClass.space.rawValue
    }
}

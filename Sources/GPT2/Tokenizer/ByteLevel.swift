// GPT-2's byte-level alphabet: every byte 0...255 is written as a printable Unicode character in
// encoder.json / vocab.bpe / HF vocab.json (bytes_to_unicode in OpenAI's encoder.py).

enum ByteLevel {
    /// Bytes in rank order: the printable ones first (`!`...`~`, `¡`...`¬`, `®`...`ÿ`), then the rest.
    /// The position of a byte in this list is its rank as a single-byte token.
    static let bytesInRankOrder: [UInt8] = {
        var printable = Array(UInt8(ascii: "!")...UInt8(ascii: "~")) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        let set = Set(printable)
        for b in 0...255 where !set.contains(UInt8(b)) { printable.append(UInt8(b)) }
        return printable
    }()

    /// byte -> the Unicode scalar that stands for it.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var extra: UInt32 = 0
        for b in bytesInRankOrder {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[Int(b)] = Unicode.Scalar(b)
            } else {
                table[Int(b)] = Unicode.Scalar(256 + extra)!
                extra += 1
            }
        }
        return table
    }()

    /// Unicode scalar value -> byte (nil for scalars outside the alphabet).
    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for b in 0...255 { map[byteToScalar[b].value] = UInt8(b) }
        return map
    }()

    /// Decodes a token written in the byte-level alphabet back to raw bytes.
    static func bytes(of token: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}

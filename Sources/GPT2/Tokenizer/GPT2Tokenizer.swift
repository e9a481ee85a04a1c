// GPT-2 byte-level BPE, identical to tiktoken's "gpt2" (r50k_base) encoding.
// Encoding: pre-tokenize (PreTokenizer), then for each piece: whole-piece vocabulary lookup,
// else a per-encoder cache, else tiktoken's merge loop (repeatedly merge the adjacent pair whose
// concatenation has the lowest rank; leftmost wins ties).
import Foundation
import GPT2Resources

/// A byte-level BPE vocabulary plus encoder/decoder. Immutable and thread-safe; encoding state
/// (a piece cache) is pooled per thread of use.
public final class GPT2Tokenizer: @unchecked Sendable {
    /// `<|endoftext|>` in GPT-2's vocabulary.
    public static let endOfText: Int32 = 50256
    public static let endOfTextString = "<|endoftext|>"

    /// Number of token ids (50257 for GPT-2).
    public let vocabSize: Int
    /// Id of `<|endoftext|>` when the vocabulary has it.
    public let endOfTextId: Int32?

    let pieceRanks: ByteStringTable     // token bytes -> rank (mergeable tokens only)
    let pairs: PairTable                // (rank, rank) -> rank of the concatenation
    let byteRank: [UInt32]              // byte -> rank of the single-byte token
    let rankToId: [Int32]
    let idBytesOffset: [Int]            // id -> bytes in idBytes (count vocabSize + 1)
    let idBytes: [UInt8]

    private let poolLock = NSLock()
    private var pool: [PieceEncoder] = []

    /// The GPT-2 tokenizer embedded in the binary (built once, on first use).
    public static let gpt2: GPT2Tokenizer = {
        var n1 = 0, n2 = 0
        let enc = gpt2_resource_encoder_json(&n1)!, bpe = gpt2_resource_vocab_bpe(&n2)!
        do {
            return try GPT2Tokenizer(encoderJSON: Array(UnsafeBufferPointer(start: enc, count: n1)),
                                     vocabBPE: Array(UnsafeBufferPointer(start: bpe, count: n2)), source: "<embedded>")
        } catch {
            fatalError("embedded GPT-2 tokenizer is corrupt: \(error)")  // build defect, not user input
        }
    }()

    /// Builds from mergeable tokens in rank order (`tokens[r]` is the byte string of rank r),
    /// their ids, and special tokens (id -> literal).
    init(tokensByRank: [[UInt8]], ids: [Int32], specials: [Int32: [UInt8]], source: String) throws {
        precondition(tokensByRank.count == ids.count)
        var table = ByteStringTable(capacity: tokensByRank.count)
        for (r, t) in tokensByRank.enumerated() {
            guard !t.isEmpty else { throw TokenizerError.malformed(path: source, reason: "empty token at rank \(r)") }
            table.insert(t, UInt32(r))
        }
        guard table.count == tokensByRank.count else {
            throw TokenizerError.malformed(path: source, reason: "duplicate tokens")
        }
        var byteRank = [UInt32](repeating: UInt32.max, count: 256)
        for b in 0..<256 {
            guard let r = [UInt8(b)].withUnsafeBufferPointer({ table.lookup($0.baseAddress!, 1) }) else {
                throw TokenizerError.malformed(path: source, reason: "no token for byte \(b)")
            }
            byteRank[b] = r
        }
        // Every split of every token into two tokens is a merge (tiktoken merges by the rank of
        // the concatenated bytes, whatever the split).
        var pairs = PairTable(capacity: tokensByRank.count * 8)
        for (r, t) in tokensByRank.enumerated() where t.count > 1 {
            t.withUnsafeBufferPointer { tb in
                for k in 1..<tb.count {
                    if let a = table.lookup(tb.baseAddress!, k), let b = table.lookup(tb.baseAddress! + k, tb.count - k) {
                        pairs.insert(a, b, UInt32(r))
                    }
                }
            }
        }
        let maxId = max(Int(ids.max() ?? -1), Int(specials.keys.max() ?? -1))
        var bytesById = [[UInt8]?](repeating: nil, count: maxId + 1)
        for (r, id) in ids.enumerated() { bytesById[Int(id)] = tokensByRank[r] }
        for (id, lit) in specials { bytesById[Int(id)] = lit }
        if let hole = bytesById.firstIndex(where: { $0 == nil }) {
            throw TokenizerError.malformed(path: source, reason: "no token has id \(hole)")
        }
        var offsets = [0]
        var all: [UInt8] = []
        for b in bytesById { all.append(contentsOf: b!); offsets.append(all.count) }

        self.vocabSize = maxId + 1
        self.endOfTextId = specials.first(where: { $0.value == Array(GPT2Tokenizer.endOfTextString.utf8) })?.key
        self.pieceRanks = table
        self.pairs = pairs
        self.byteRank = byteRank
        self.rankToId = ids
        self.idBytesOffset = offsets
        self.idBytes = all
    }

    // MARK: - Encoding

    /// Encodes valid UTF-8 and appends the ids to `ids`. With `allowSpecial`, the literal
    /// `<|endoftext|>` becomes its id; otherwise it is ordinary text (tiktoken's `encode_ordinary`).
    public func encode(utf8 text: UnsafeBufferPointer<UInt8>, allowSpecial: Bool = false, into ids: inout [Int32]) {
        let enc = checkout()
        defer { checkin(enc) }
        ids.reserveCapacity(ids.count + text.count / 3 + 8)
        guard allowSpecial, let eot = endOfTextId else {
            enc.encode(text, into: &ids)
            return
        }
        let lit = Array(GPT2Tokenizer.endOfTextString.utf8)
        var start = 0
        var k = 0
        while k + lit.count <= text.count {
            if text[k] == lit[0] && memcmp(text.baseAddress! + k, lit, lit.count) == 0 {
                enc.encode(UnsafeBufferPointer(rebasing: text[start..<k]), into: &ids)
                ids.append(eot)
                k += lit.count
                start = k
            } else {
                k += 1
            }
        }
        enc.encode(UnsafeBufferPointer(rebasing: text[start...]), into: &ids)
    }

    /// Encodes a string (see `encode(utf8:allowSpecial:into:)`).
    public func encode(_ text: String, allowSpecial: Bool = false) -> [Int32] {
        var ids: [Int32] = []
        var t = text
        t.withUTF8 { encode(utf8: $0, allowSpecial: allowSpecial, into: &ids) }
        return ids
    }

    /// Encodes with up to `threads` threads, cutting the text only where the pattern never joins
    /// across (SafeSplit), so the ids equal the single-threaded ones.
    public func encode(utf8 text: UnsafeBufferPointer<UInt8>, allowSpecial: Bool = false, threads: Int) -> [Int32] {
        let minChunk = 1 << 18
        let parts = max(1, min(threads * 4, text.count / minChunk))
        if threads <= 1 || parts <= 1 {
            var ids: [Int32] = []
            encode(utf8: text, allowSpecial: allowSpecial, into: &ids)
            return ids
        }
        // Cut points; a literal <|endoftext|> is ASCII non-space, so a cut never splits it.
        var cuts = [0]
        for p in 1..<parts {
            let target = text.count * p / parts
            if let c = SafeSplit.lastCut(in: text, before: target, notBefore: cuts.last! + 1) { cuts.append(c) }
        }
        cuts.append(text.count)
        let chunks = cuts.count - 1
        let results = UnsafeMutablePointer<[Int32]>.allocate(capacity: chunks)
        results.initialize(repeating: [], count: chunks)
        defer { results.deinitialize(count: chunks); results.deallocate() }
        let box = UncheckedSendable(value: (text, results, cuts))
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let (text, results, cuts) = box.value
            var ids: [Int32] = []
            self.encode(utf8: UnsafeBufferPointer(rebasing: text[cuts[c]..<cuts[c + 1]]), allowSpecial: allowSpecial, into: &ids)
            results[c] = ids
        }
        var out: [Int32] = []
        out.reserveCapacity((0..<chunks).reduce(0) { $0 + results[$1].count })
        for c in 0..<chunks { out.append(contentsOf: results[c]) }
        return out
    }

    private func checkout() -> PieceEncoder {
        poolLock.lock(); defer { poolLock.unlock() }
        return pool.popLast() ?? PieceEncoder(self)
    }

    private func checkin(_ e: PieceEncoder) {
        poolLock.lock(); defer { poolLock.unlock() }
        if pool.count < 64 { pool.append(e) }
    }

    // MARK: - Decoding

    /// The bytes of `ids` concatenated. Throws for an id outside the vocabulary.
    public func decodeBytes<S: Sequence>(_ ids: S) throws -> [UInt8] where S.Element == Int32 {
        var out: [UInt8] = []
        for id in ids {
            guard id >= 0 && Int(id) < vocabSize else { throw TokenizerError.unknownId(Int(id), vocabSize: vocabSize) }
            out.append(contentsOf: idBytes[idBytesOffset[Int(id)]..<idBytesOffset[Int(id) + 1]])
        }
        return out
    }

    /// Text of `ids`; byte sequences that are not valid UTF-8 become U+FFFD (tiktoken's errors="replace").
    public func decode<S: Sequence>(_ ids: S) throws -> String where S.Element == Int32 {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }

    /// Bytes of one token.
    public func tokenBytes(_ id: Int32) -> ArraySlice<UInt8> {
        idBytes[idBytesOffset[Int(id)]..<idBytesOffset[Int(id) + 1]]
    }
}

/// Encoding state of one thread: a cache of multi-token pieces and merge scratch space.
final class PieceEncoder {
    let tok: GPT2Tokenizer
    private var cache = ByteStringTable(capacity: 1 << 15)
    private var cacheRanks: [UInt32] = []      // cache value = offset into cacheRanks; count first
    private var parts: [UInt32] = []
    private var partRanks: [UInt32] = []

    init(_ tok: GPT2Tokenizer) { self.tok = tok }

    func encode(_ text: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        guard text.count > 0 else { return }
        var pre = PreTokenizer(text)
        let base = text.baseAddress!
        tok.rankToId.withUnsafeBufferPointer { rankToId in
            while let r = pre.next() {
                let p = base + r.lowerBound
                let n = r.count
                if n == 1 { ids.append(rankToId[Int(tok.byteRank[Int(p[0])])]); continue }
                if let rank = tok.pieceRanks.lookup(p, n) { ids.append(rankToId[Int(rank)]); continue }
                if let at = cache.lookup(p, n) {
                    let count = Int(cacheRanks[Int(at)])
                    for k in 0..<count { ids.append(rankToId[Int(cacheRanks[Int(at) + 1 + k])]) }
                    continue
                }
                merge(p, n)
                if cache.isFull { cache = ByteStringTable(capacity: 1 << 15); cacheRanks.removeAll(keepingCapacity: true) }
                cache.insert(UnsafeBufferPointer(start: p, count: n), UInt32(cacheRanks.count))
                cacheRanks.append(UInt32(parts.count))
                cacheRanks.append(contentsOf: parts)
                for rank in parts { ids.append(rankToId[Int(rank)]) }
            }
        }
    }

    /// tiktoken's byte-pair merge on one piece; leaves the ranks of the result in `parts`.
    private func merge(_ p: UnsafePointer<UInt8>, _ n: Int) {
        parts.removeAll(keepingCapacity: true)
        for k in 0..<n { parts.append(tok.byteRank[Int(p[k])]) }
        // partRanks[k] = rank of merging parts[k] and parts[k+1]
        partRanks.removeAll(keepingCapacity: true)
        for k in 0..<(n - 1) { partRanks.append(tok.pairs.lookup(parts[k], parts[k + 1])) }
        while true {
            var best = UInt32.max, at = -1
            for k in 0..<partRanks.count where partRanks[k] < best { best = partRanks[k]; at = k }
            if at < 0 { break }
            parts[at] = best
            parts.remove(at: at + 1)
            partRanks.remove(at: at)
            if at > 0 { partRanks[at - 1] = tok.pairs.lookup(parts[at - 1], parts[at]) }
            if at < partRanks.count { partRanks[at] = tok.pairs.lookup(parts[at], parts[at + 1]) }
        }
    }
}

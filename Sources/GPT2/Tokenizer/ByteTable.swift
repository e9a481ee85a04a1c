import Foundation

// Open-addressing hash tables keyed by byte strings, for the encoder's hot path:
// Swift's Dictionary<[UInt8], _> hashes with SipHash and allocates per key, ~10x slower here.

/// A fast, non-cryptographic hash of a byte string (8 bytes at a time).
@inline(__always)
func hashBytes(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(n &+ 1)
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= n {
        h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 29
        i += 8
    }
    if i < n {
        var w: UInt64 = 0
        var s: UInt64 = 0
        while i < n { w |= UInt64(p[i]) << s; s += 8; i += 1 }
        h = (h ^ w) &* 0xC4CE_B9FE_1A85_EC53
    }
    h ^= h >> 32
    return h
}

/// Maps byte strings to UInt32 values. Keys live in one arena; slots hold (offset, length, value).
/// Insert-only; sized at creation (power-of-two slots, load factor <= 1/2).
struct ByteStringTable {
    private(set) var arena: [UInt8] = []
    private var offsets: [UInt32]
    private var lengths: [UInt32]   // 0 = empty slot (keys are never empty)
    private var values: [UInt32]
    private let mask: Int
    private(set) var count = 0

    init(capacity: Int) {
        var slots = 16
        while slots < capacity * 2 { slots <<= 1 }
        offsets = [UInt32](repeating: 0, count: slots)
        lengths = [UInt32](repeating: 0, count: slots)
        values = [UInt32](repeating: 0, count: slots)
        mask = slots - 1
    }

    var isFull: Bool { count * 2 >= mask }

    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32? {
        var slot = Int(truncatingIfNeeded: hashBytes(p, n)) & mask
        return arena.withUnsafeBufferPointer { a in
            while true {
                let len = Int(lengths[slot])
                if len == 0 { return nil }
                if len == n && memcmp(a.baseAddress! + Int(offsets[slot]), p, n) == 0 { return values[slot] }
                slot = (slot + 1) & mask
            }
        }
    }

    /// Inserts or overwrites `key -> value`.
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, _ value: UInt32) {
        precondition(!key.isEmpty && !isFull)
        let n = key.count
        var slot = Int(truncatingIfNeeded: hashBytes(key.baseAddress!, n)) & mask
        while lengths[slot] != 0 {
            if Int(lengths[slot]) == n && arena.withUnsafeBufferPointer({ memcmp($0.baseAddress! + Int(offsets[slot]), key.baseAddress!, n) == 0 }) {
                values[slot] = value
                return
            }
            slot = (slot + 1) & mask
        }
        offsets[slot] = UInt32(arena.count)
        lengths[slot] = UInt32(n)
        values[slot] = value
        arena.append(contentsOf: key)
        count += 1
    }

    mutating func insert(_ key: [UInt8], _ value: UInt32) {
        key.withUnsafeBufferPointer { insert($0, value) }
    }
}

/// Maps a pair of ranks (a, b) to the rank of the token whose bytes are bytes(a) + bytes(b).
struct PairTable {
    private var keys: [UInt64]     // (a << 32 | b) + 1; 0 = empty
    private var values: [UInt32]
    private let mask: Int

    init(capacity: Int) {
        var slots = 16
        while slots < capacity * 2 { slots <<= 1 }
        keys = [UInt64](repeating: 0, count: slots)
        values = [UInt32](repeating: 0, count: slots)
        mask = slots - 1
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29) & mask
    }

    mutating func insert(_ a: UInt32, _ b: UInt32, _ value: UInt32) {
        let key = (UInt64(a) << 32 | UInt64(b)) &+ 1
        var s = PairTable.slot(key, mask)
        while keys[s] != 0 && keys[s] != key { s = (s + 1) & mask }
        keys[s] = key
        values[s] = value
    }

    @inline(__always)
    func lookup(_ a: UInt32, _ b: UInt32) -> UInt32 {
        let key = (UInt64(a) << 32 | UInt64(b)) &+ 1
        var s = PairTable.slot(key, mask)
        return keys.withUnsafeBufferPointer { k in
            while true {
                let found = k[s]
                if found == key { return values[s] }
                if found == 0 { return UInt32.max }
                s = (s + 1) & mask
            }
        }
    }
}

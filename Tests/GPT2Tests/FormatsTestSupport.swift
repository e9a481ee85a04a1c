// Helpers for the Formats* tests: a tiny random model, bit-exact parameter comparison, and
// corruption sweeps (truncated and byte-flipped copies must throw an error naming the file).
import Foundation
import XCTest
@testable import GPT2

enum FormatsFixtures {
    /// L=2, C=32, NH=4, V=64 (padded 128), maxT=32.
    static let config = GPT2Config(maxSeqLen: 32, vocabSize: 64, numLayers: 2, numHeads: 4, channels: 32)

    /// A model whose every parameter (padding rows of wte included) is a distinct pseudo-random
    /// value, with a few -0.0 and subnormals so bit-exactness is really tested.
    static func randomModel(seed: UInt64, config: GPT2Config = FormatsFixtures.config) -> GPT2 {
        let model = GPT2(config: config)
        fillRandom(model.params, seed: seed)
        return model
    }

    static func fillRandom(_ t: ParameterTensors, seed: UInt64) {
        var rng = SplitMix(seed)
        for i in 0..<t.count { t.memory[i] = Float(Double(rng.next() >> 11) * 0x1p-53 * 2 - 1) * 0.5 }
        t.memory[1] = -0.0
        t.memory[2] = Float.leastNonzeroMagnitude
        t.memory[3] = -Float.leastNormalMagnitude / 3
    }

    static func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-formats-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct SplitMix {
    var x: UInt64
    init(_ seed: UInt64) { x = seed }
    mutating func next() -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Asserts two parameter sets are identical bit for bit; reports the first differing tensor.
func assertSameBits(_ a: ParameterTensors, _ b: ParameterTensors, _ what: String,
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.config, b.config, "\(what): configs differ", file: file, line: line)
    guard a.config == b.config else { return }
    for p in ParameterName.allCases where memcmp(a.pointer(p), b.pointer(p), 4 * a.count(p)) != 0 {
        let i = (0..<a.count(p)).first { a.pointer(p)[$0].bitPattern != b.pointer(p)[$0].bitPattern }!
        XCTFail("\(what): tensor \(p.name) differs at \(i): \(a.pointer(p)[i]) vs \(b.pointer(p)[i])", file: file, line: line)
        return
    }
}

/// Runs `body` and asserts it throws an error whose description names `path`.
func assertThrowsNaming(_ path: String, _ what: String, file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("\(what): no error", file: file, line: line)
    } catch {
        let message = error.localizedDescription
        XCTAssert(message.contains(path), "\(what): error does not name '\(path)': \(message)", file: file, line: line)
        XCTAssertFalse(message.contains("\n"), "\(what): error is not one line: \(message)", file: file, line: line)
    }
}

/// Writes `bytes` to `path` with plain POSIX calls (Foundation's `Data.write` costs ~3 ms a call
/// here, too slow for the sweeps).
func writeFileBytes<C: Collection>(_ bytes: C, to path: String) where C.Element == UInt8 {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0, "cannot create \(path)")
    let array = Array(bytes)
    let n = array.withUnsafeBytes { $0.isEmpty ? 0 : write(fd, $0.baseAddress!, $0.count) }
    precondition(n == array.count, "short write to \(path)")
    close(fd)
}

/// Every position below `dense`, then about `count` evenly spread positions below `end`
/// (keeps the corruption sweeps fast in debug builds).
func sampledPositions(end: Int, dense: Int, count: Int) -> [Int] {
    Array(0..<min(dense, end)) + Array(stride(from: dense, to: end, by: max(1, (end - dense) / max(count, 1))))
}

/// Corrupted copies of a valid file, loaded with `load`.
struct CorruptionSweep {
    let original: [UInt8]
    let path: String
    let load: (String) throws -> Void

    /// - Parameter name: file name of the corrupt copies in `scratch` (default "corrupt-<name>").
    init(file: URL, scratch: URL, name: String? = nil, load: @escaping (String) throws -> Void) throws {
        original = Array(try Data(contentsOf: file))
        path = scratch.appendingPathComponent(name ?? "corrupt-" + file.lastPathComponent).path
        self.load = load
    }

    /// Each truncated copy (of the given lengths, plus size - 1) must throw an error naming the file.
    func truncations(_ lengths: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        for n in lengths.filter({ $0 < original.count }) + [original.count - 1] {
            writeFileBytes(original[0..<n], to: path)
            assertThrowsNaming(path, "truncated to \(n) of \(original.count) bytes", file: file, line: line) { try load(path) }
        }
    }

    /// Trailing junk after a valid file must throw.
    func trailingJunk(file: StaticString = #filePath, line: UInt = #line) throws {
        for extra in [1, 4, 8, 1000] {
            writeFileBytes(original + [UInt8](repeating: 0xAB, count: extra), to: path)
            assertThrowsNaming(path, "\(extra) trailing bytes", file: file, line: line) { try load(path) }
        }
    }

    /// XORs each byte in `positions` with `mask`: the load must either succeed or throw an error
    /// naming the file (never crash); positions where `mustThrow` is true must throw.
    /// - Returns: how many copies threw.
    @discardableResult
    func flips(_ positions: [Int], mask: UInt8 = 0xFF, mustThrow: (Int) -> Bool = { _ in false },
               file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        var thrown = 0
        for i in positions where i < original.count {
            var bytes = original
            bytes[i] ^= mask
            writeFileBytes(bytes, to: path)
            do {
                try load(path)
                XCTAssertFalse(mustThrow(i), "byte \(i) ^ \(mask): corrupt file loaded without error", file: file, line: line)
            } catch {
                thrown += 1
                let message = error.localizedDescription
                XCTAssert(message.contains(path), "byte \(i) ^ \(mask): error does not name the file: \(message)", file: file, line: line)
            }
        }
        return thrown
    }
}

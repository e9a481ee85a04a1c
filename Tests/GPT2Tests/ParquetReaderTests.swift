// ParquetFile against pyarrow: every writer variant (codec x dictionary x page version x nulls x
// row-group size x column layout, dictionary->PLAIN fallback, DELTA_LENGTH_BYTE_ARRAY and
// DELTA_BYTE_ARRAY, many pages, a multi-MB string) reads back exactly as pyarrow reads it, with
// libsnappy and with the built-in Snappy decoder; committed fixtures (no Python needed) with their
// tiktoken ids; column and codec errors; the Snappy, RLE/bit-packed and DELTA_BINARY_PACKED
// decoders on hand-made and corrupt input.
import Foundation
import XCTest
@testable import GPT2

final class ParquetReaderTests: XCTestCase {
    func testMatrixReadsLikePyarrow() throws {
        let m = try ParquetTestSupport.matrix()
        XCTAssertGreaterThanOrEqual(m.entries.count, 77)
        XCTAssertEqual(m.entries.filter { $0.file.hasPrefix("delta_") }.count, 9)
        for entry in m.entries {
            let values = try ParquetTestSupport.readColumn(m.files + "/" + entry.file)
            XCTAssertEqual(values, entry.values, entry.file)
        }
    }

    /// The built-in Snappy decoder through the whole reader, on every Snappy file of the matrix.
    func testBuiltinSnappyReadsLikePyarrow() throws {
        let m = try ParquetTestSupport.matrix()
        Snappy.useSystemLibrary = false
        defer { Snappy.useSystemLibrary = true }
        // (long.parquet goes through the built-in decoder in ParquetPrepareTests.)
        let snappy = m.entries.filter { $0.file.contains("snappy") || $0.file.hasPrefix("fallback") }
        XCTAssertGreaterThanOrEqual(snappy.count, 18)
        for entry in snappy {
            XCTAssertEqual(try ParquetTestSupport.readColumn(m.files + "/" + entry.file), entry.values, entry.file)
        }
    }

    /// Committed fixtures: values as pyarrow wrote them and GPT-2 ids as tiktoken gives them (no Python needed).
    func testCommittedFixtures() throws {
        struct Expected: Decodable { var values: [String?]; var nulls: Int; var tokens: [Int32] }
        let dir = ParquetTestSupport.committed
        let expected = try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/expected.json")))
        XCTAssertEqual(expected.count, 6)
        for useSystemLibrary in [true, false] {
            Snappy.useSystemLibrary = useSystemLibrary
            defer { Snappy.useSystemLibrary = true }
            for (name, e) in expected.sorted(by: { $0.key < $1.key }) {
                let values = try ParquetTestSupport.readColumn(dir + "/" + name)
                XCTAssertEqual(values, e.values, name)
                XCTAssertEqual(values.filter { $0 == nil }.count, e.nulls, name)
                var ids: [Int32] = []
                for v in values.compactMap({ $0 }) { ids += [GPT2Tokenizer.endOfText] + GPT2Tokenizer.gpt2.encode(v) }
                XCTAssertEqual(ids, e.tokens, name)
            }
        }
    }

    func testUnsupportedCodecsNameFileColumnAndCodec() throws {
        var cases = [(ParquetTestSupport.committed + "/brotli.parquet", "BROTLI")]
        if let m = try? ParquetTestSupport.matrix() {
            cases += [(m.unsupported + "/lz4.parquet", "LZ4_RAW"), (m.unsupported + "/brotli.parquet", "BROTLI")]
        }
        for (path, codec) in cases {
            let file = try ParquetFile(path: path)
            let column = try file.stringColumn(named: "text")
            XCTAssertThrowsError(try file.readStrings(column, rowGroup: 0)) { error in
                XCTAssertEqual(error as? ParquetError, .unsupportedCodec(path: path, column: "text", codec: codec))
                let message = (error as? LocalizedError)?.errorDescription ?? ""
                for part in [path, "'text'", codec] { XCTAssertTrue(message.contains(part), message) }
                XCTAssertFalse(message.contains("\n"))
            }
        }
    }

    func testMessagesSayWhatToDo() {
        let missing = ParquetError.libraryMissing(path: "f.parquet", codec: "ZSTD", library: Zstd.library, package: Zstd.package)
        XCTAssertEqual(missing.errorDescription, "cannot decompress 'f.parquet' (ZSTD): libzstd.so.1 is not installed; "
            + "install it (Debian/Ubuntu: apt-get install libzstd1)")
        XCTAssertEqual(Zlib.package, "zlib1g")
        XCTAssertTrue(ParquetError.notSeekable(path: "/dev/fd/63").errorDescription!.contains("save it to a file first"))
        // The system libraries load here (zlib and libzstd are on every Debian system).
        XCTAssertNoThrow(try Zlib.shared.get())
        XCTAssertNoThrow(try Zstd.shared.get())
    }

    func testColumnErrors() throws {
        let path = ParquetTestSupport.committed + "/zstd_dict_v2_nulls_around.parquet"
        let file = try ParquetFile(path: path)
        XCTAssertEqual(file.columns.map(\.name), ["row", "tags.list.element", "id", "text", "flag", "score"])
        XCTAssertThrowsError(try file.stringColumn(named: "body")) { error in
            XCTAssertEqual(error as? ParquetError, .columnNotFound(path: path, column: "body", available: file.columns.map(\.name)))
            XCTAssertTrue((error as? LocalizedError)?.errorDescription?.contains("'text'") ?? false)
        }
        XCTAssertThrowsError(try file.stringColumn(named: "row")) { error in
            XCTAssertEqual(error as? ParquetError, .unsupportedColumn(path: path, column: "row", reason: "it holds INT64 values, not strings"))
        }
        XCTAssertThrowsError(try file.stringColumn(named: "tags.list.element")) { error in
            guard case .unsupportedColumn(path, "tags.list.element", _)? = error as? ParquetError else { return XCTFail("\(error)") }
        }
        // Another string column of the same file reads too.
        let ids = try ParquetTestSupport.readColumn(path, column: "id")
        XCTAssertEqual(ids, (0..<ids.count).map { "id-\($0)" })
    }

    // MARK: - Snappy

    private func snappyBytes(_ bytes: [UInt8], size: Int) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try Snappy.decode($0, size: size) }
    }

    func testSnappyDecoderOnHandMadeBlocks() throws {
        // "abc" literal, then a 1-byte-offset copy of 9 bytes at offset 3 (overlapping).
        XCTAssertEqual(try snappyBytes([12, 0x08, 0x61, 0x62, 0x63, 0x15, 0x03], size: 12), Array("abcabcabcabc".utf8))
        // 2-byte-offset copy (tag 2) and 4-byte-offset copy (tag 3), 5 bytes each at offset 5.
        let hello = Array("hello".utf8)
        XCTAssertEqual(try snappyBytes([15, 0x10] + hello + [0x12, 5, 0, 0x13, 5, 0, 0, 0], size: 15), hello + hello + hello)
        // A literal whose length (100) is in the next byte (tag 60).
        let long = (0..<100).map { UInt8($0) }
        XCTAssertEqual(try snappyBytes([100, 60 << 2, 99] + long, size: 100), long)
        XCTAssertEqual(try snappyBytes([0], size: 0), [])

        let bad: [([UInt8], Int, String)] = [
            ([12, 0x08, 0x61, 0x62, 0x63, 0x15, 0x00], 12, "offset 0"),
            ([12, 0x08, 0x61, 0x62, 0x63, 0x15, 0x04], 12, "offset past the start"),
            ([12, 0x08, 0x61, 0x62], 12, "truncated literal"),
            ([12, 0x08, 0x61, 0x62, 0x63, 0x15], 12, "truncated copy"),
            ([12, 0x08, 0x61, 0x62, 0x63], 12, "ends early"),
            ([3, 0x08, 0x61, 0x62, 0x63, 0x15, 0x03], 3, "copy past the end"),
            ([13, 0x08, 0x61, 0x62, 0x63, 0x15, 0x03], 12, "length mismatch"),
            ([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], 12, "overlong preamble"),
            ([], 0, "empty"),
        ]
        for (bytes, size, what) in bad {
            XCTAssertThrowsError(try snappyBytes(bytes, size: size), what) { XCTAssertTrue($0 is CodecError, what) }
            if let lib = SnappyLibrary.shared {
                XCTAssertThrowsError(try bytes.withUnsafeBytes { try lib.decompress($0, size: size) }, "libsnappy: " + what)
            }
        }
    }

    /// Random and repetitive data compressed by libsnappy decode identically with the built-in decoder.
    func testSnappyDecoderMatchesLibsnappy() throws {
        typealias FnMax = @convention(c) (Int) -> Int
        typealias FnCompress = @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<Int>?) -> Int32
        guard let lib = SystemLibrary.open(librarySonames("snappy", version: "1")),
              let maxLength: FnMax = lib.symbol("snappy_max_compressed_length"),
              let compress: FnCompress = lib.symbol("snappy_compress") else {
            throw XCTSkip("libsnappy is not installed (apt-get install libsnappy1v5)")
        }
        var rng = SystemRandomNumberGenerator()
        let text = Array(DatasetPreparer.shakespeareSplit().val.prefix(200_000))
        var samples: [[UInt8]] = [text, [UInt8](repeating: 7, count: 100_000), (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) }]
        for _ in 0..<20 {
            let n = Int.random(in: 0..<5000, using: &rng)
            samples.append((0..<n).map { _ in UInt8.random(in: 97...100, using: &rng) })
        }
        for sample in samples {
            var compressed = [CChar](repeating: 0, count: maxLength(sample.count))
            var length = compressed.count
            let status = sample.withUnsafeBytes { input in
                compress(input.baseAddress?.assumingMemoryBound(to: CChar.self), sample.count, &compressed, &length)
            }
            XCTAssertEqual(status, 0)
            let block = compressed.prefix(length).map { UInt8(bitPattern: $0) }
            XCTAssertEqual(try snappyBytes(block, size: sample.count), sample)
        }
    }

    // MARK: - RLE / bit-packed hybrid

    func testRLEHybridDecoder() throws {
        func decode(_ bytes: [UInt8], width: Int, count: Int) throws -> [UInt32] {
            var out = [UInt32](repeating: 99, count: count)
            try bytes.withUnsafeBytes { raw in
                var d = RLEHybridDecoder(raw, bitWidth: width)
                try out.withMutableBuffer { (o) throws(ThriftError) in try d.decode(into: o) }
            }
            return out
        }
        // Encodings.md's example: 0...7 bit-packed with width 3, then an RLE run of five 4s.
        let bytes: [UInt8] = [0x03, 0x88, 0xC6, 0xFA, 0x0A, 0x04]
        XCTAssertEqual(try decode(bytes, width: 3, count: 13), [0, 1, 2, 3, 4, 5, 6, 7, 4, 4, 4, 4, 4])
        XCTAssertEqual(try decode(bytes, width: 3, count: 10), [0, 1, 2, 3, 4, 5, 6, 7, 4, 4])
        // Width 0: every value 0 (one-entry dictionaries); 2-byte RLE values for widths 9...16.
        XCTAssertEqual(try decode([0x08], width: 0, count: 4), [0, 0, 0, 0])
        XCTAssertEqual(try decode([0x06, 0x34, 0x12], width: 13, count: 3), [0x1234, 0x1234, 0x1234])
        // Running out of data throws.
        XCTAssertThrowsError(try decode(bytes, width: 3, count: 14))
        XCTAssertThrowsError(try decode([0x03, 0x88], width: 3, count: 8))
        XCTAssertThrowsError(try decode([0x0A], width: 3, count: 5))
        XCTAssertThrowsError(try decode([0x80, 0x80, 0x80, 0x80, 0x80, 0x80], width: 1, count: 1))
        XCTAssertEqual(RLEHybridDecoder.bitWidth(forMaxValue: 0), 0)
        XCTAssertEqual(RLEHybridDecoder.bitWidth(forMaxValue: 1), 1)
        XCTAssertEqual(RLEHybridDecoder.bitWidth(forMaxValue: 4), 3)
    }

    // MARK: - DELTA_BINARY_PACKED

    func testDeltaBinaryPackedDecoder() throws {
        func decode(_ bytes: [UInt8], maxCount: Int = 1000) throws -> ([Int32], Int) {
            try bytes.withUnsafeBytes { raw throws(ThriftError) in try DeltaDecoder.binaryPacked(raw, maxCount: maxCount) }
        }
        // Encodings.md's first example, 1...5: every delta is the min delta, so the widths are 0 and
        // no miniblock has bytes. Header: block 128, 4 miniblocks, 5 values, first 1 (zigzag 2).
        let ones: [UInt8] = [0x80, 0x01, 0x04, 0x05, 0x02, /* min delta 1 */ 0x02, 0, 0, 0, 0]
        XCTAssertEqual(try decode(ones + [0xAA]).0, [1, 2, 3, 4, 5])
        XCTAssertEqual(try decode(ones + [0xAA]).1, ones.count)
        // The second, 7 5 3 1 2 3 4 5: min delta −2 (zigzag 3), the first miniblock 0 0 0 3 3 3 3 at
        // width 2, padded to 32 values (8 bytes); the bytes after it belong to the next section.
        let second: [UInt8] = [0x80, 0x01, 0x04, 0x08, 0x0E, 0x03, 2, 0, 0, 0, 0xC0, 0x3F, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(try decode(second + [0x58, 0x59]).0, [7, 5, 3, 1, 2, 3, 4, 5])
        XCTAssertEqual(try decode(second + [0x58, 0x59]).1, second.count)
        // One value: the header alone; none: likewise.
        XCTAssertEqual(try decode([0x80, 0x01, 0x04, 0x01, 0x54]).0, [42])
        XCTAssertEqual(try decode([0x80, 0x01, 0x04, 0x00, 0x00]).0, [])
        // Bad input throws: cut short, width above 32, more values than the page, a block size that is
        // not a multiple of 128, miniblocks that are not a multiple of 32 values.
        XCTAssertThrowsError(try decode(Array(second.prefix(12))))
        XCTAssertThrowsError(try decode([0x80, 0x01, 0x04, 0x08, 0x0E, 0x03, 33, 0, 0, 0] + [UInt8](repeating: 0, count: 200)))
        XCTAssertThrowsError(try decode(second, maxCount: 7))
        XCTAssertThrowsError(try decode([0x64, 0x04, 0x05, 0x02, 0x02, 0, 0, 0, 0]))
        XCTAssertThrowsError(try decode([0x80, 0x01, 0x08, 0x05, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]))
    }
}

extension ParquetReaderTests {
    /// Row groups come back in order, at most `threads` decoded ahead and within the byte budget
    /// (bounded memory whatever the file size); an error is reported when its row group is taken.
    func testRowGroupPrefetcherIsOrderedAndBounded() throws {
        final class Probe: @unchecked Sendable {
            let lock = NSLock()
            var running = 0, maxRunning = 0, started = 0
        }
        for (threads, budget, limit) in [(4, 1000, 4), (4, 25, 2), (1, 1000, 1)] {
            let probe = Probe()
            let prefetcher = RowGroupPrefetcher(count: 40, threads: threads, budget: budget, cost: { _ in 10 }) { (i) throws(ParquetError) -> ParquetStrings in
                probe.lock.lock(); probe.running += 1; probe.started += 1; probe.maxRunning = max(probe.maxRunning, probe.running); probe.lock.unlock()
                usleep(UInt32(1000 * (i % 3)))
                probe.lock.lock(); probe.running -= 1; probe.lock.unlock()
                if i == 30 { throw .corrupt(path: "f", detail: "row group 30") }
                return ParquetStrings(rowCount: i, nullCount: 0, storages: [], spans: [])
            }
            for i in 0..<30 {
                XCTAssertEqual(try prefetcher.take(i).rowCount, i)
                probe.lock.lock()
                XCTAssertLessThanOrEqual(probe.started, i + 1 + limit, "threads \(threads), budget \(budget)")
                probe.lock.unlock()
            }
            XCTAssertThrowsError(try prefetcher.take(30)) { XCTAssertEqual($0 as? ParquetError, .corrupt(path: "f", detail: "row group 30")) }
            XCTAssertLessThanOrEqual(probe.maxRunning, limit)
        }
    }

    /// DocumentReader's public piece API on Parquet: one document per non-null row, long ones in pieces.
    func testDocumentReaderPieces() throws {
        let path = ParquetTestSupport.committed + "/snappy_dict_v1_nulls.parquet"
        let values = try ParquetTestSupport.readColumn(path).compactMap { $0 }
        let reader = try DocumentReader(inputs: [path], pieceBytes: 32, threads: 2)
        var docs: [[UInt8]] = []
        while let piece = try reader.next() {
            if piece.startsDocument { docs.append([]) }
            docs[docs.count - 1] += piece.bytes
            XCTAssertLessThanOrEqual(piece.bytes.count, 200)
        }
        XCTAssertEqual(docs.map { String(decoding: $0, as: UTF8.self) }, values)
        XCTAssertEqual(reader.documents, values.count)
        XCTAssertEqual(reader.nullRows, 3)
        XCTAssertEqual(reader.sources, [InputSource(path: path, format: .parquet)])
    }
}

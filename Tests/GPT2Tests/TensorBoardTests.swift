// TensorBoard event files read back by the real `tensorboard` package (Tests/reference/tensorboard_events.py):
// EventAccumulator (what the scalar and text dashboards show, including purges), the
// TensorFlow-free TFRecord reader (both CRCs), and byte equality of each Event with the
// serialisation of tensorboard's own protobuf classes.
import Foundation
import XCTest
@testable import GPT2

final class TensorBoardTests: XCTestCase {
    private func python() throws -> String {
        guard let py = referencePython(importing: ["tensorboard"]) else { throw XCTSkip("no Python with tensorboard (pip install tensorboard)") }
        return py
    }

    /// Runs the reference script and decodes its JSON output.
    private func reference(_ args: [String], stdin: Data? = nil, expectFailure: Bool = false) throws -> [String: Any] {
        let script = TestPaths.reference.appendingPathComponent("tensorboard_events.py").path
        let r = try runProcess(try python(), [script] + args, stdin: stdin)
        if expectFailure {
            XCTAssertNotEqual(r.status, 0, "reader accepted a corrupt file: \(r.text)")
        } else {
            XCTAssertEqual(r.status, 0, "tensorboard_events.py \(args): \(r.stderr)\(r.text)")
        }
        guard let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
            throw XCTSkip("unexpected output: \(r.text) \(r.stderr)")
        }
        return json
    }

    private func scalars(_ json: [String: Any], _ tag: String) -> [(Int, Double)] {
        let all = json["scalars"] as? [String: [[Any]]] ?? [:]
        return (all[tag] ?? []).map { (($0[0] as! NSNumber).intValue, ($0[1] as! NSNumber).doubleValue) }
    }

    func testScalarsAndTextAsTensorBoardShowsThem() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let w = try TensorBoardWriter(directory: dir + "/tb")
        let losses = [10.98, 9.1234567, 7.5, 1e-7, 123456.789]
        for (step, loss) in losses.enumerated() {
            try w.scalar("train/loss", loss, step: step)
            try w.scalar("train/lr", 6e-4 * Double(step + 1) / 5, step: step)
            try w.flush()
        }
        try w.scalar("val/loss", 3.2924, step: 4)
        let sample = "First Citizen: **Before** we proceed — any further, hear me speak.\n\n| a | b |\n|---|---|\n| 1 | 2 |"
        try w.text("samples", sample, step: 4)
        try w.text("options", "`--max-steps 5` ünïcödé ✓", step: 0)
        try w.close()

        let json = try reference(["read", dir + "/tb"])
        XCTAssertEqual(json["file_version"] as? Double, 2)
        let loss = scalars(json, "train/loss")
        XCTAssertEqual(loss.map(\.0), [0, 1, 2, 3, 4])
        for (got, want) in zip(loss.map(\.1), losses) {
            XCTAssertEqual(got, Double(Float(want)), "simple_value is a float32")
        }
        XCTAssertEqual(scalars(json, "train/lr").map(\.0), [0, 1, 2, 3, 4])
        XCTAssertEqual(scalars(json, "val/loss").map(\.1), [Double(Float(3.2924))])
        XCTAssertEqual(json["text_plugin_tags"] as? [String], ["options", "samples"])
        let text = json["text"] as? [String: [[Any]]] ?? [:]
        XCTAssertEqual(text["samples"]?.first?[0] as? Int, 4)
        XCTAssertEqual(text["samples"]?.first?[1] as? String, sample)
        XCTAssertEqual(text["options"]?.first?[1] as? String, "`--max-steps 5` ünïcödé ✓")
        let html = text["samples"]?.first?[2] as? String ?? ""
        XCTAssertTrue(html.contains("<strong>Before</strong>") && html.contains("<table>"), "markdown not rendered: \(html)")
    }

    func testPurgeStepDropsOrphanedSteps() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let first = try TensorBoardWriter(directory: dir)
        for step in 0..<10 { try first.scalar("train/loss", Double(step), step: step) }
        try first.close()
        // A resume from the step-5 checkpoint: steps 5..9 of the first run are orphaned.
        let second = try TensorBoardWriter(directory: dir, purgeStep: 5)
        XCTAssertGreaterThan(URL(fileURLWithPath: second.path).lastPathComponent, URL(fileURLWithPath: first.path).lastPathComponent,
                             "the new file must sort after the old one (TensorBoard reads files in name order)")
        for step in 5...7 { try second.scalar("train/loss", 100 + Double(step), step: step) }
        try second.close()

        let loss = scalars(try reference(["read", dir]), "train/loss")
        XCTAssertEqual(loss.map(\.0), Array(0...7), "each step once")
        XCTAssertEqual(loss.map(\.1), [0, 1, 2, 3, 4, 105, 106, 107])
    }

    func testRecordsPassTheCRCChecksAndACorruptByteFails() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let w = try TensorBoardWriter(directory: dir, purgeStep: 3)
        try w.scalar("a", 1.5, step: 3)
        try w.text("t", "hello", step: 4)
        try w.close()
        let name = URL(fileURLWithPath: w.path).lastPathComponent
        let host = ProcessInfo.processInfo.hostName
        XCTAssertNotNil(name.range(of: #"^events\.out\.tfevents\.\d{10}\..+\.\d+\.\d+$"#, options: .regularExpression), name)
        XCTAssertTrue(name.contains(".\(getpid()).") || host.isEmpty, name)

        let json = try reference(["records", w.path])
        let records = json["records"] as? [[String: Any]] ?? []
        XCTAssertEqual(records.map { $0["what"] as? String }, ["file_version", "session_log", "summary", "summary"])
        XCTAssertEqual(records[0]["file_version"] as? String, "brain.Event:2")
        XCTAssertEqual(records[1]["session_log"] as? String, "START")
        XCTAssertEqual(records[1]["step"] as? Int, 3)
        let values = records.compactMap { $0["values"] as? [[String: Any]] }.flatMap { $0 }
        XCTAssertEqual(values.map { $0["value"] as? String }, ["simple_value", "tensor"])
        XCTAssertEqual(values.map { $0["plugin"] as? String }, ["", "text"])

        // Flip one byte of the data of the last record, then one byte of a length: both must fail.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: w.path))
        for offset in [bytes.count - 6, 0] {
            var bad = bytes
            bad[offset] ^= 0x20
            let badPath = dir + "/bad.tfevents"
            try bad.write(to: URL(fileURLWithPath: badPath))
            let failed = try reference(["records", badPath], expectFailure: true)
            XCTAssertTrue((failed["error"] as? String ?? "").contains("crc32"), "\(failed)")
        }
        bytes.removeAll()
    }

    func testEventBytesEqualTensorBoardsProtobufSerialisation() throws {
        let spec: [[String: Any]] = [
            ["kind": "file_version", "wall_time": 1_700_000_000.25, "step": 0],
            ["kind": "start", "wall_time": 1_700_000_001.5, "step": 19073],
            ["kind": "scalar", "wall_time": 1_700_000_002.125, "step": 7, "tag": "train/loss", "value": 3.28125],
            ["kind": "scalar", "wall_time": 0.0, "step": 1 << 40, "tag": "", "value": 0.0],
            ["kind": "text", "wall_time": 1_700_000_003.0, "step": 250, "tag": "samples", "text": String(repeating: "ab\u{e9}", count: 60)],
        ]
        let script = TestPaths.reference.appendingPathComponent("tensorboard_events.py").path
        let r = try runProcess(try python(), [script, "encode"], stdin: try JSONSerialization.data(withJSONObject: spec))
        let hex = try JSONSerialization.jsonObject(with: r.stdout) as? [String] ?? []
        let ours: [[UInt8]] = [
            EventRecord.fileVersion(wallTime: 1_700_000_000.25, step: 0),
            EventRecord.sessionStart(wallTime: 1_700_000_001.5, step: 19073),
            EventRecord.scalar(tag: "train/loss", value: 3.28125, wallTime: 1_700_000_002.125, step: 7),
            EventRecord.scalar(tag: "", value: 0, wallTime: 0, step: 1 << 40),
            EventRecord.text(tag: "samples", text: String(repeating: "ab\u{e9}", count: 60), wallTime: 1_700_000_003, step: 250),
        ]
        XCTAssertEqual(hex.count, ours.count)
        for (i, (h, o)) in zip(hex, ours).enumerated() {
            XCTAssertEqual(o.map { String(format: "%02x", $0) }.joined(), h, "event \(i) (\(spec[i]["kind"]!))")
        }
    }

    func testFramingMatchesTFRecordLayout() {
        let framed = EventRecord.framed(Array("123456789".utf8))
        XCTAssertEqual(framed.count, 8 + 4 + 9 + 4)
        XCTAssertEqual(Array(framed[0..<8]), [9, 0, 0, 0, 0, 0, 0, 0])
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(framed[at + $1]) << (8 * $1) } }
        // tensorboard's masked_crc32c of the length bytes and of "123456789" (CRC-32C check value 0xE3069283)
        XCTAssertEqual(u32(8), 0x3971_F937)
        XCTAssertEqual(Array(framed[12..<21]), Array("123456789".utf8))
        XCTAssertEqual(u32(21), 0xC78A_B0E5)
    }

    func testErrorsNameTheFileAndClosedWritersRefuse() throws {
        let dir = try TestPaths.temporaryDirectory().path
        let blocker = dir + "/file"
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data()))
        XCTAssertThrowsError(try TensorBoardWriter(directory: blocker + "/tb")) { error in
            XCTAssertTrue(error.localizedDescription.contains(blocker + "/tb"), error.localizedDescription)
        }
        let w = try TensorBoardWriter(directory: dir)
        try w.close()
        XCTAssertThrowsError(try w.scalar("x", 1, step: 0)) { error in
            XCTAssertEqual(error as? TensorBoardError, .closed(path: w.path))
        }
        #if os(Linux)
        // A full disk: /dev/full fails every write with ENOSPC.
        if FileManager.default.fileExists(atPath: "/dev/full") {
            let full = try TensorBoardWriter(directory: dir)
            try full.scalar("x", 1, step: 0)
            try full.redirectForTesting(to: "/dev/full")
            XCTAssertThrowsError(try full.flush()) { error in
                XCTAssertTrue(error.localizedDescription.contains(full.path) && error.localizedDescription.contains("space"),
                              error.localizedDescription)
            }
        }
        #endif
    }
}

// `gpt inspect`: attention maps against transformers' output_attentions (committed fixture from
// Tests/reference/make_attention_fixture.py), token pieces against tiktoken's pattern split and
// per-piece BPE (Tests/reference/token_pieces_reference.py), and the two commands end to end.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import GPT2

final class InspectTests: XCTestCase {
    func testAttentionProbabilitiesMatchTransformers() throws {
        let model = try loadHFModel(directory: ModelFixtures.dir("tiny_v96"))
        let ref = try SafeTensorsFile(path: TestPaths.fixtures.appendingPathComponent("attention/tiny_v96_attentions.safetensors").path)
        let tokens = try int32Tensor(ref, "tokens")
        let shape = try ref.info("attentions").shape
        let c = model.config, T = tokens.count
        XCTAssertEqual(shape, [c.numLayers, c.numHeads, T, T])
        let expected = try ref.floats("attentions")
        for layer in 0..<c.numLayers {
            let ours = AttentionMap.probabilities(model: model, tokens: tokens, layer: layer)
            let theirs = expected[(layer * c.numHeads * T * T)..<((layer + 1) * c.numHeads * T * T)]
            var worst: Float = 0, at = 0
            for (i, (a, b)) in zip(ours, theirs).enumerated() where abs(a - b) > worst { worst = abs(a - b); at = i }
            XCTAssertLessThan(worst, 1e-5, "layer \(layer): max |diff| \(worst) at \(at)")
            // Rows sum to one and nothing above the diagonal.
            for h in 0..<c.numHeads {
                for t in 0..<T {
                    let row = ours[((h * T + t) * T)..<((h * T + t + 1) * T)]
                    XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                    XCTAssertTrue(row.dropFirst(t + 1).allSatisfy { $0 == 0 })
                }
            }
        }
    }

    func testHeatMapIsWellFormedWithOneCellPerVisiblePair() throws {
        let T = 5
        var p = [Float](repeating: 0, count: T * T)
        for t in 0..<T { for u in 0...t { p[t * T + u] = 1 / Float(t + 1) } }
        let svg = AttentionMap.svg(probabilities: p[...], labels: ["Hello", ",", "␣I", "<&>", "\"q\""], title: "layer 0 & head 1")
        final class Counter: NSObject, XMLParserDelegate {
            var cells = 0, masked = 0, labels: [String] = [], inLabel = false
            func parser(_ p: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                if attributes["class"] == "cell" { cells += 1 }
                if attributes["class"] == "masked" { masked += 1 }
                inLabel = attributes["class"] == "qlabel"
                if inLabel { labels.append("") }
            }
            func parser(_ p: XMLParser, foundCharacters s: String) { if inLabel { labels[labels.count - 1] += s } }
            func parser(_ p: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) { inLabel = false }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let c = Counter()
        parser.delegate = c
        XCTAssertTrue(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        XCTAssertEqual(c.cells, T * (T + 1) / 2)
        XCTAssertEqual(c.masked, T * (T - 1) / 2)
        XCTAssertEqual(c.labels, ["Hello", ",", "␣I", "<&>", "\"q\""])
        XCTAssertEqual(AttentionMap.colour(0), "#f7fbff")
        XCTAssertEqual(AttentionMap.colour(1), "#08306b")
    }

    func testPiecesMatchTiktoken() throws {
        let texts = ["Hello, I'm a language model,", "  leading spaces\n\n\ttabs and 123,456.78 numbers ",
                     "unbelievably long-ish words: antidisestablishmentarianism", "emoji 🤗🤗 and ünïcödé — dashes",
                     "they'll've it's DON'T <|endoftext|> end", "", "\n"]
        let tok = GPT2Tokenizer.gpt2
        for text in texts {
            let pieces = tok.pieces(text)
            XCTAssertEqual(pieces.flatMap(\.ids), tok.encode(text), "ids of the pieces = encode(\(text.debugDescription))")
            XCTAssertEqual(pieces.flatMap(\.bytes), Array(text.utf8), "pieces cover the text")
        }
        let special = tok.pieces("a<|endoftext|>b", allowSpecial: true)
        XCTAssertEqual(special.map(\.ids), [[64], [50256], [65]])

        guard let python = referencePython(importing: ["tiktoken", "regex"]) else { throw XCTSkip("no Python with tiktoken and regex") }
        let r = try runProcess(python, [TestPaths.reference.appendingPathComponent("token_pieces_reference.py").path],
                               stdin: try JSONSerialization.data(withJSONObject: texts))
        XCTAssertEqual(r.status, 0, r.stderr)
        let reference = try JSONSerialization.jsonObject(with: r.stdout) as? [[[Any]]] ?? []
        XCTAssertEqual(reference.count, texts.count)
        for (text, expected) in zip(texts, reference) {
            let ours = tok.pieces(text)
            XCTAssertEqual(ours.map { String(decoding: $0.bytes, as: UTF8.self) }, expected.map { $0[0] as! String }, "pieces of \(text.debugDescription)")
            XCTAssertEqual(ours.map { $0.ids.map(Int.init) }, expected.map { $0[1] as! [Int] }, "ids of \(text.debugDescription)")
        }
    }

    func testInspectCommands() throws {
        var r = try runGPT(["inspect", "tokens", "Hello, I'm a language model,"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "28 bytes -> 8 pieces -> 8 tokens")
        XCTAssertTrue(lines.contains { $0.hasPrefix("\"␣language\"") && $0.hasSuffix("3303 \"␣language\"") }, r.text)
        XCTAssertEqual(lines.last, "ids: 15496 11 314 1101 257 3303 2746 11")

        let dir = try TestPaths.temporaryDirectory().path
        r = try runGPT(["inspect", "attention", "--model", ModelFixtures.dir("tiny_v96"), "--prompt", "ab", "--layer", "1", "--head", "3"])
        XCTAssertNotEqual(r.status, 0, "tokens beyond the fixture's 96-token vocabulary")
        XCTAssertTrue(r.stderr.contains("vocabulary"), r.stderr)
        r = try runGPT(["inspect", "attention", "--model", "d2", "--prompt", "The cat sat", "--layer", "1", "--head", "1", "--svg", dir + "/att.svg"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.text.hasPrefix("layer 1, head 1 of 2x2 heads, 3 tokens"), r.text)
        XCTAssertTrue(r.text.contains("  0 \"The\"") && r.text.contains("\"The\"@0 1.000"), r.text)
        XCTAssertTrue(try String(contentsOfFile: dir + "/att.svg", encoding: .utf8).contains("class=\"cell\""))
        r = try runGPT(["inspect", "attention", "--model", "d2", "--prompt", "x", "--layer", "2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--layer 2 is outside 0..<2"), r.stderr)
        r = try runGPT(["inspect", "attention", "--model", "d2", "--prompt", "x", "--svg", "/missing/dir/a.svg"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("/missing/dir/a.svg"), r.stderr)
    }
}

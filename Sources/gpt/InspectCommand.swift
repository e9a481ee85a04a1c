import ArgumentParser
import Foundation
import GPT2

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Look inside: how text becomes tokens, the parameters, per-token losses, what a head attends to.",
        subcommands: [InspectTokens.self, InspectParams.self, InspectLoss.self, InspectAttention.self])
}

/// A token's text with invisible characters made visible: space ␣, newline \n, tab \t; bytes
/// that are not whole UTF-8 characters (a token may hold part of one) as <0xNN>.
func visibleToken(_ bytes: some Collection<UInt8>) -> String {
    let b = Array(bytes)
    var out = "", i = 0
    while i < b.count {
        let lead = b[i]
        let n = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0
        guard n > 0, i + n <= b.count, let s = String(validating: b[i..<i + n], as: UTF8.self) else {
            out += String(format: "<0x%02X>", lead)
            i += 1
            continue
        }
        i += n
        for ch in s.unicodeScalars {
            switch ch {
            case " ": out += "␣"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if ch.properties.generalCategory == .control || ch.properties.generalCategory == .format {
                    out += String(format: "\\u{%X}", ch.value)
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
    }
    return out
}

struct InspectTokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "Show how TEXT is split: the pre-tokenizer's pieces, then each piece's BPE tokens and ids.",
        discussion: "Spaces print as ␣ (GPT-2's byte-level vocabulary writes them as Ġ), newlines as \\n.")

    @Argument(help: "The text (use - to read stdin).")
    var text: String

    @Flag(help: "Map the literal <|endoftext|> to id 50256 (otherwise it is ordinary text).")
    var allowSpecial = false

    @Option(help: "Tokenizer directory (encoder.json + vocab.bpe, vocab.json + merges.txt, or *.tiktoken); default: the embedded GPT-2 tokenizer.")
    var tokenizer: String?

    func run() throws {
        let tok = try tokenizer.map { try GPT2Tokenizer(directory: $0) } ?? GPT2Tokenizer.gpt2
        var input = text
        if text == "-" {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            guard let s = String(validating: Array(data), as: UTF8.self) else { throw CLIError("stdin is not valid UTF-8") }
            input = s
        }
        let pieces = tok.pieces(input, allowSpecial: allowSpecial)
        let ids = pieces.flatMap(\.ids)
        print("\(input.utf8.count) bytes -> \(pieces.count) pieces -> \(ids.count) tokens")
        let shown = pieces.map { "\"" + visibleToken($0.bytes) + "\"" }
        let width = max(5, shown.map(\.count).max() ?? 0)
        print("piece".padding(toLength: width + 2, withPad: " ", startingAt: 0) + "tokens (id \"text\")")
        for (piece, label) in zip(pieces, shown) {
            let tokens = piece.ids.map { "\($0) \"\(visibleToken(tok.tokenBytes($0)))\"" }.joined(separator: " | ")
            print(label.padding(toLength: width + 2, withPad: " ", startingAt: 0) + tokens)
        }
        print("ids: " + ids.map(String.init).joined(separator: " "))
    }
}

struct InspectAttention: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "The attention map of one head: softmax(q·kᵀ/√hs) with the causal mask, as a table and an SVG heat map.",
        discussion: """
        Prints, for each token of the prompt, the tokens its query attends to most. With --svg, \
        writes the whole (T, T) map with token labels (rows: queries, columns: keys).
        """)

    @Option(help: "Model: preset (d2, gpt2, ...; random init with --seed), HF directory, llm.c .bin or checkpoint.")
    var model: String

    @Option(help: "Prompt text.")
    var prompt: String

    @Option(help: "Layer, 0-based.")
    var layer: Int = 0

    @Option(help: "Head, 0-based.")
    var head: Int = 0

    @Option(help: "Write the heat map to this SVG file.")
    var svg: String?

    @Option(help: "Keys listed per query in the table.")
    var top: Int = 3

    @Option(help: "Seed of a preset's random initialisation.")
    var seed: UInt64 = 1337

    func validate() throws {
        guard layer >= 0, head >= 0 else { throw ValidationError("--layer and --head are 0-based and must not be negative") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        guard !prompt.isEmpty else { throw ValidationError("--prompt must not be empty") }
    }

    func run() throws {
        let gpt = try resolveModel(model, seed: seed)
        let c = gpt.config
        guard layer < c.numLayers else { throw CLIError("--layer \(layer) is outside 0..<\(c.numLayers) for '\(model)'") }
        guard head < c.numHeads else { throw CLIError("--head \(head) is outside 0..<\(c.numHeads) for '\(model)'") }
        let tok = GPT2Tokenizer.gpt2
        let ids = tok.encode(prompt)
        guard ids.count <= c.maxSeqLen else { throw CLIError("the prompt is \(ids.count) tokens; '\(model)' takes at most \(c.maxSeqLen)") }
        if let bad = ids.first(where: { Int($0) >= c.vocabSize }) {
            throw CLIError("token \(bad) of the prompt is outside the model's vocabulary of \(c.vocabSize)")
        }
        let T = ids.count
        let all = AttentionMap.probabilities(model: gpt, tokens: ids, layer: layer)
        let map = all[(head * T * T)..<((head + 1) * T * T)]
        let labels = ids.map { visibleToken(tok.tokenBytes($0)) }

        print("layer \(layer), head \(head) of \(c.numLayers)x\(c.numHeads) heads, \(T) tokens")
        let width = max(5, labels.map(\.count).max() ?? 0) + 3
        for t in 0..<T {
            let row = (0...t).map { (u: $0, p: map[map.startIndex + t * T + $0]) }.sorted { $0.p > $1.p }.prefix(top)
            let keys = row.map { "\"\(labels[$0.u])\"@\($0.u) " + String(format: "%.3f", $0.p) }.joined(separator: ", ")
            print(String(format: "%3d ", t) + ("\"" + labels[t] + "\"").padding(toLength: width, withPad: " ", startingAt: 0) + "-> " + keys)
        }
        if let svg {
            let title = "attention: layer \(layer), head \(head) (\(URL(fileURLWithPath: model).lastPathComponent))"
            let doc = AttentionMap.svg(probabilities: map, labels: labels, title: title)
            try AtomicOutputFile.write(to: svg) { try $0.write(Array(doc.utf8)) }
            print("wrote \(svg)")
        }
    }
}

/// "124,439,808"
func grouped(_ n: Int) -> String {
    let digits = Array(String(n))
    var out = ""
    for (i, d) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(d)
    }
    return out
}

struct InspectParams: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "params",
        abstract: "List a model's parameter tensors (llm.c order) with shapes and counts, and the total.",
        discussion: "A preset is only counted, not built: `gpt inspect params --model gpt2` prints 124,439,808.")

    @Option(help: "Model: preset (gpt2, d12, ...), HF directory, llm.c .bin or checkpoint.")
    var model: String

    func run() throws {
        let c = try GPT2Config.preset(model) ?? resolveModel(model).config
        let C = c.channels, L = c.numLayers
        print("\(model): \(L) layers, \(c.numHeads) heads, C = \(C), context \(c.maxSeqLen), vocab \(c.vocabSize)")
        let rows: [(String, String, String)] = ParameterName.allCases.map { name in
            var shape = name.shape(c)
            if name == .wte { shape[0] = c.vocabSize }   // the padding rows are not parameters
            let count = shape.reduce(1, *)
            return (name.name, shape.map(String.init).joined(separator: " x "), grouped(count))
        }
        let w0 = max(6, rows.map(\.0.count).max()!) + 2, w1 = max(5, rows.map(\.1.count).max()!) + 2
        let w2 = max(11, grouped(c.parameterCount).count)
        func line(_ a: String, _ b: String, _ n: String) -> String {
            a.padding(toLength: w0, withPad: " ", startingAt: 0) + b.padding(toLength: w1, withPad: " ", startingAt: 0)
                + String(repeating: " ", count: max(0, w2 - n.count)) + n
        }
        print(line("tensor", "shape", "parameters"))
        for r in rows { print(line(r.0, r.1, r.2)) }
        print(line("total", "", grouped(c.parameterCount)))
        let perLayer = 12 * C * C + 13 * C
        print("per layer: 12·C² + 13·C = \(grouped(perLayer)); total = V·C + T·C + L·(12·C² + 13·C) + 2·C")
        if c.paddedVocabSize != c.vocabSize {
            print("wte is stored with \(c.paddedVocabSize) rows (vocab padded to a multiple of 128 for speed); the \(c.paddedVocabSize - c.vocabSize) extra rows are never used")
        }
    }
}

struct InspectLoss: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loss",
        abstract: "Per-token losses: for each position, the next token, its loss -ln p(next), p(next) and the model's top guess.",
        discussion: "The mean of these losses is what training minimises and `gpt eval loss` reports.")

    @Option(help: "Model: preset (random init with --seed), HF directory, llm.c .bin or checkpoint.")
    var model: String

    @Option(help: "Text to score (at least two tokens).")
    var prompt: String

    @Option(help: "Seed of a preset's random initialisation.")
    var seed: UInt64 = 1337

    func run() throws {
        let gpt = try resolveModel(model, seed: seed)
        let c = gpt.config, tok = GPT2Tokenizer.gpt2
        let ids = tok.encode(prompt)
        guard ids.count >= 2 else { throw CLIError("the prompt is \(ids.count) token(s); a loss needs at least two") }
        guard ids.count - 1 <= c.maxSeqLen else { throw CLIError("the prompt is \(ids.count) tokens; '\(model)' scores at most \(c.maxSeqLen + 1)") }
        if let bad = ids.first(where: { Int($0) >= c.vocabSize }) {
            throw CLIError("token \(bad) of the prompt is outside the model's vocabulary of \(c.vocabSize)")
        }
        let T = ids.count - 1
        let mean = gpt.forward(inputs: Array(ids.dropLast()), targets: Array(ids.dropFirst()), B: 1, T: T)
        let losses = Array(gpt.losses.prefix(T))
        let label = { (id: Int32) in "\"" + visibleToken(tok.tokenBytes(id)) + "\"" }
        let w = max(7, ids.map { label($0).count }.max()! + 2)
        func pad(_ s: String) -> String { s.padding(toLength: w, withPad: " ", startingAt: 0) }
        print("  t " + pad("token") + pad("next") + "   loss  p(next)  top guess")
        for t in 0..<T {
            let logits = gpt.logits(b: 0, t: t).prefix(c.vocabSize)
            let guess = Int32(logits.indices.max { logits[$0] < logits[$1] }! - logits.startIndex)
            print(String(format: "%3d ", t) + pad(label(ids[t])) + pad(label(ids[t + 1]))
                  + String(format: "%7.4f  %7.5f  ", losses[t], exp(-losses[t])) + label(guess))
        }
        print(String(format: "mean loss %.4f over %d predictions; a uniform guess scores ln(%d) = %.4f", mean, T, c.vocabSize, log(Double(c.vocabSize))))
    }
}

// The attention probabilities of one layer: softmax(q·kᵀ/√hs) with the causal mask, per head, as
// transformers returns them with output_attentions=True. The blocks below the layer run with
// the training kernels (one sequence, B = 1); the layer itself stops after its qkv projection.
// Legend: T tokens, C channels, NH heads, hs = C/NH head size.
import Foundation

/// Attention maps of a model over one token sequence.
public enum AttentionMap {
    /// The attention probabilities of every head of `layer` for `tokens`: (NH, T, T) row-major,
    /// `[h][t][u]` = how much query position t attends to key position u (0 for u > t).
    /// Each row t sums to 1 over u ≤ t.
    /// - Parameters:
    ///   - model: the model (its parameters are read, its activations untouched).
    ///   - tokens: 1...maxSeqLen ids in [0, vocabSize).
    ///   - layer: 0..<numLayers.
    public static func probabilities(model: GPT2, tokens: [Int32], layer: Int) -> [Float] {
        let c = model.config
        let T = tokens.count, C = c.channels, NH = c.numHeads, hs = C / NH
        precondition(T >= 1 && T <= c.maxSeqLen, "AttentionMap: need 1...\(c.maxSeqLen) tokens (got \(T))")
        precondition((0..<c.numLayers).contains(layer), "AttentionMap: layer \(layer) outside 0..<\(c.numLayers)")
        precondition(tokens.allSatisfy { $0 >= 0 && Int($0) < c.vocabSize }, "AttentionMap: token outside the vocabulary")
        let p = model.params
        let sizes = [T * C, T * C, T * C, T * C, T * 3 * C, T * 4 * C, T, T, NH * T,
                     Parallel.threadCount * Attention.scratchCount(T: T, C: C)]
        let buffers = sizes.map { UnsafeMutablePointer<Float>.allocate(capacity: $0) }
        defer { for b in buffers { b.deallocate() } }
        let x = buffers[0], x2 = buffers[1], h = buffers[2], att = buffers[3]          // (T,C)
        let qkv = buffers[4], fc = buffers[5]                                           // (T,3C), (T,4C)
        let mean = buffers[6], rstd = buffers[7], lse = buffers[8], scratch = buffers[9] // (T), (T), (NH,T)

        tokens.withUnsafeBufferPointer { Encoder.forward(out: x, inp: $0.baseAddress!, wte: p.pointer(.wte), wpe: p.pointer(.wpe), B: 1, T: T, C: C) }
        for l in 0...layer {
            LayerNorm.forward(out: h, mean: mean, rstd: rstd, inp: x, weight: p.pointer(.ln1w, layer: l),
                              bias: p.pointer(.ln1b, layer: l), B: 1, T: T, C: C)
            Matmul.forward(out: qkv, inp: h, weight: p.pointer(.qkvw, layer: l), bias: p.pointer(.qkvb, layer: l),
                           B: 1, T: T, C: C, OC: 3 * C)
            if l == layer { break }
            Attention.forward(out: att, lse: lse, inp: qkv, B: 1, T: T, C: C, NH: NH, scratch: scratch)
            Matmul.forward(out: x2, inp: att, weight: p.pointer(.attprojw, layer: l), bias: p.pointer(.attprojb, layer: l),
                           B: 1, T: T, C: C, OC: C, residual: x)
            LayerNorm.forward(out: h, mean: mean, rstd: rstd, inp: x2, weight: p.pointer(.ln2w, layer: l),
                              bias: p.pointer(.ln2b, layer: l), B: 1, T: T, C: C)
            Matmul.forward(out: fc, inp: h, weight: p.pointer(.fcw, layer: l), bias: p.pointer(.fcb, layer: l),
                           B: 1, T: T, C: C, OC: 4 * C)
            GELU.forward(out: fc, inp: fc, N: T * 4 * C)
            Matmul.forward(out: x, inp: fc, weight: p.pointer(.fcprojw, layer: l), bias: p.pointer(.fcprojb, layer: l),
                           B: 1, T: T, C: 4 * C, OC: C, residual: x2)
        }

        // Scores of each head from the layer's q and k, masked and normalised row by row.
        let scale = 1 / Float(hs).squareRoot()
        var probs = [Float](repeating: 0, count: NH * T * T)
        for head in 0..<NH {
            for t in 0..<T {
                let row = (head * T + t) * T
                var mx = -Float.infinity
                for u in 0...t {
                    var d: Float = 0
                    for i in 0..<hs { d += qkv[t * 3 * C + head * hs + i] * qkv[u * 3 * C + C + head * hs + i] }
                    probs[row + u] = d * scale
                    mx = max(mx, probs[row + u])
                }
                var sum: Float = 0
                for u in 0...t {
                    probs[row + u] = Foundation.exp(probs[row + u] - mx)
                    sum += probs[row + u]
                }
                for u in 0...t { probs[row + u] /= sum }
            }
        }
        return probs
    }
}

// MARK: - Heat map

extension AttentionMap {
    /// matplotlib's "Blues" colour map, 0 → 1.
    static let blues: [(Double, Double, Double)] = [
        (0xF7, 0xFB, 0xFF), (0xDE, 0xEB, 0xF7), (0xC6, 0xDB, 0xEF), (0x9E, 0xCA, 0xE1), (0x6B, 0xAE, 0xD6),
        (0x42, 0x92, 0xC6), (0x21, 0x71, 0xB5), (0x08, 0x51, 0x9C), (0x08, 0x30, 0x6B),
    ]

    /// The colour of probability `p` (0...1) on the Blues map, "#rrggbb".
    static func colour(_ p: Float) -> String {
        let x = Double(min(max(p, 0), 1)) * Double(blues.count - 1)
        let i = min(Int(x), blues.count - 2), t = x - Double(i)
        let a = blues[i], b = blues[i + 1]
        func mix(_ u: Double, _ v: Double) -> Int { Int((u + (v - u) * t).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// An SVG heat map of one head's (T, T) probabilities: rows are queries, columns keys, each
    /// labelled with its token text; cells above the diagonal (masked) are grey.
    /// - Parameters:
    ///   - probabilities: T·T values row-major (one head of `probabilities(model:tokens:layer:)`).
    ///   - labels: T token strings.
    ///   - title: shown above the map.
    public static func svg(probabilities: ArraySlice<Float>, labels: [String], title: String) -> String {
        let T = labels.count
        precondition(probabilities.count == T * T, "AttentionMap.svg: \(probabilities.count) values for \(T) labels")
        let p = Array(probabilities)
        let cell = min(40, max(8, 640 / Double(max(T, 1))))
        let fontSize = min(12, max(6, cell * 0.55))
        let labelWidth = Double(labels.map(\.count).max() ?? 1) * fontSize * 0.62 + 14
        let left = labelWidth + 40, top = 56.0, grid = cell * Double(T)
        let width = left + grid + 90, height = top + grid + labelWidth * 0.9 + 50
        var s = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="\(svgNum(fontSize))" fill="#222">
        <title>\(svgEscape(title))</title>
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(svgNum(left + grid / 2))" y="28" text-anchor="middle" font-size="15">\(svgEscape(title))</text>

        """
        for t in 0..<T {
            for u in 0..<T {
                let x = left + Double(u) * cell, y = top + Double(t) * cell
                if u > t {
                    s += "<rect class=\"masked\" x=\"\(svgNum(x))\" y=\"\(svgNum(y))\" width=\"\(svgNum(cell))\" height=\"\(svgNum(cell))\" fill=\"#eeeeee\"/>\n"
                    continue
                }
                let v = p[t * T + u]
                s += "<rect class=\"cell\" data-q=\"\(t)\" data-k=\"\(u)\" data-p=\"\(String(format: "%.6f", v))\" x=\"\(svgNum(x))\" y=\"\(svgNum(y))\" width=\"\(svgNum(cell))\" height=\"\(svgNum(cell))\" fill=\"\(colour(v))\"/>\n"
                if cell >= 30 {   // values fit inside big cells
                    s += "<text x=\"\(svgNum(x + cell / 2))\" y=\"\(svgNum(y + cell / 2 + 3))\" text-anchor=\"middle\" font-size=\"9\" fill=\"\(v > 0.55 ? "white" : "#333")\">\(String(format: "%.2f", v))</text>\n"
                }
            }
        }
        s += "<rect x=\"\(svgNum(left))\" y=\"\(svgNum(top))\" width=\"\(svgNum(grid))\" height=\"\(svgNum(grid))\" fill=\"none\" stroke=\"#888\"/>\n"
        for (i, label) in labels.enumerated() {
            let c = Double(i) * cell + cell / 2
            s += "<text class=\"qlabel\" x=\"\(svgNum(left - 6))\" y=\"\(svgNum(top + c + fontSize * 0.35))\" text-anchor=\"end\" xml:space=\"preserve\">\(svgEscape(label))</text>\n"
            let kx = left + c, ky = top + grid + 8
            s += "<text class=\"klabel\" x=\"\(svgNum(kx))\" y=\"\(svgNum(ky))\" text-anchor=\"end\" xml:space=\"preserve\" transform=\"rotate(-60 \(svgNum(kx)) \(svgNum(ky)))\">\(svgEscape(label))</text>\n"
        }
        let ly = top + grid / 2
        s += "<text x=\"16\" y=\"\(svgNum(ly))\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 16 \(svgNum(ly)))\">query (attending token)</text>\n"
        s += "<text x=\"\(svgNum(left + grid / 2))\" y=\"\(svgNum(height - 12))\" text-anchor=\"middle\" font-size=\"12\">key (attended token)</text>\n"
        // Colour bar 0...1.
        let bx = left + grid + 24, steps = 50
        for k in 0..<steps {
            let y = top + grid * Double(steps - 1 - k) / Double(steps)
            s += "<rect x=\"\(svgNum(bx))\" y=\"\(svgNum(y))\" width=\"14\" height=\"\(svgNum(grid / Double(steps) + 0.5))\" fill=\"\(colour(Float(k) / Float(steps - 1)))\"/>\n"
        }
        for v in [0.0, 0.5, 1.0] {
            s += "<text x=\"\(svgNum(bx + 20))\" y=\"\(svgNum(top + grid * (1 - v) + 4))\" font-size=\"11\">\(v)</text>\n"
        }
        return s + "</svg>\n"
    }
}

// Helpers for the model/kernel tests: fixture paths, relative-error comparison, tensor mapping
// between HF reference tensors and our llm.c layout.
import Foundation
import XCTest
@testable import GPT2

enum ModelFixtures {
    /// Tests/Fixtures/model (this file is Tests/GPT2Tests/ModelTestSupport.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/model")

    static func dir(_ name: String) -> String { root.appendingPathComponent(name).path }

    static func scratchDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-model-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// max|a - b| / max|b| with the index of the largest difference.
func relativeError(_ a: [Float], _ b: [Float]) -> (rel: Float, maxDiff: Float, index: Int) {
    precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) values")
    var maxDiff: Float = 0, maxRef: Float = 0, index = 0
    for i in 0..<a.count {
        let d = abs(a[i] - b[i])
        if d > maxDiff || d.isNaN { maxDiff = d; index = i }
        maxRef = max(maxRef, abs(b[i]))
    }
    return (maxRef > 0 ? maxDiff / maxRef : maxDiff, maxDiff, index)
}

/// Asserts relative error < tol; returns it for the summary.
@discardableResult
func assertClose(_ a: [Float], _ b: [Float], tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) -> Float {
    let e = relativeError(a, b)
    XCTAssert(e.rel < tol && !e.rel.isNaN,
              "\(what): relative error \(e.rel) (max diff \(e.maxDiff) at \(e.index): \(a[e.index]) vs \(b[e.index])) >= \(tol)",
              file: file, line: line)
    return e.rel
}

/// Int32 tensor from a safetensors file.
func int32Tensor(_ f: SafeTensorsFile, _ name: String) throws -> [Int32] {
    let raw = try f.rawBytes(name)
    return (0..<raw.count / 4).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) }
}

/// Our tensor `name` (layer `layer`) converted to the HF layout: Conv1D weights transposed to
/// (in, out), wte cut to V rows.
func hfLayout(_ t: ParameterTensors, _ name: ParameterName, layer: Int) -> [Float] {
    let c = t.config
    let src = name.isPerLayer ? t.pointer(name, layer: layer) : t.pointer(name)
    let shape = name.layerShape(c)
    if name == .wte { return Array(UnsafeBufferPointer(start: src, count: c.vocabSize * c.channels)) }
    if name.isTransposedInHF {
        let outDim = shape[0], inDim = shape[1]
        var r = [Float](repeating: 0, count: outDim * inDim)
        for o in 0..<outDim { for i in 0..<inDim { r[i * outDim + o] = src[o * inDim + i] } }
        return r
    }
    return Array(UnsafeBufferPointer(start: src, count: shape.reduce(1, *)))
}

/// Every (name, layer) pair of a config.
func allParameterSlices(_ c: GPT2Config) -> [(ParameterName, Int)] {
    ParameterName.allCases.flatMap { n in (0..<(n.isPerLayer ? c.numLayers : 1)).map { (n, $0) } }
}

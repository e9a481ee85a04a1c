// Model FLOPs utilisation as llm.c reports it (gpt2_estimate_mfu): FLOPs per token =
// 6·N + 6·L·C·T (N parameters counting the padded vocabulary, as llm.c's num_parameters; the
// second term is attention's QKᵀ and AV), divided by the device's dense peak for the precision.
// Peaks are NVIDIA's datasheet numbers without sparsity; unknown devices get no MFU.
import Foundation

public enum MFU {
    /// Training FLOPs per token (forward + backward).
    public static func flopsPerToken(config c: GPT2Config, T: Int) -> Double {
        let N = ParameterName.allCases.reduce(0) { $0 + $1.count(c) }
        return 6 * Double(N) + 6 * Double(c.numLayers) * Double(c.channels) * Double(T)
    }

    /// Dense peak FLOP/s of a device named like the driver's cuDeviceGetName, for `bf16` tensor-core
    /// math or plain fp32 (the fp32 mode disables TF32). Nil when unknown.
    /// H100 SXM / H200: 989 TFLOPS bf16, 67 fp32; H100 PCIe: 756 / 51; A100: 312 / 19.5.
    public static func peakFLOPS(deviceName name: String, bf16: Bool) -> Double? {
        let n = name.uppercased()
        let table: [(match: (String) -> Bool, bf16: Double, fp32: Double)] = [
            ({ $0.contains("H100") && $0.contains("PCIE") }, 756e12, 51e12),
            ({ $0.contains("H100") || $0.contains("H200") || $0.contains("GH200") }, 989e12, 67e12),
            ({ $0.contains("A100") }, 312e12, 19.5e12),
        ]
        guard let row = table.first(where: { $0.match(n) }) else { return nil }
        return bf16 ? row.bf16 : row.fp32
    }

    /// Fraction (0…1) of `peak` reached at `tokensPerSecond`.
    public static func utilisation(tokensPerSecond: Double, config: GPT2Config, T: Int, peakFLOPS: Double) -> Double {
        tokensPerSecond * flopsPerToken(config: config, T: T) / peakFLOPS
    }
}

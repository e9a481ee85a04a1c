import ArgumentParser
import Foundation
import GPT2

/// Whether a command asked to run on CUDA: `cuda` must be usable (else `CUDAUnavailable`, whose
/// description is `gpt info`'s report, ends the command with a non-zero exit); `auto` takes CUDA
/// when it is usable and the CPU otherwise (GPT2_CUDA_AUTO=0 keeps it on the CPU).
/// - Returns: the report when CUDA is to be used, nil for the CPU.
func wantsCUDA(_ device: ComputeDevice, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> CUDAReport? {
    switch device {
    case .cpu: return nil
    case .cuda:
        guard case .cuda(let r) = try device.resolve() else { return nil }
        return r
    case .auto:
        guard Settings(environment: environment).cudaAuto else { return nil }
        if case .cuda(let r) = try device.resolve() { return r }
        return nil
    }
}

/// The GPU of a process with node-local rank `localRank`: that ordinal, or 0 when only one
/// device is visible (CUDA_VISIBLE_DEVICES set per rank).
func deviceOrdinal(localRank: Int, visibleDevices: Int) -> Int {
    localRank < visibleDevices ? localRank : (visibleDevices == 1 ? 0 : localRank)
}

/// Opens GPU `ordinal` with kernels for attention heads of `headSize`.
func openCUDA(ordinal: Int, precision: CUDAPrecision, headSize: Int) throws -> CUDAContext {
    try CUDAContext(ordinal: ordinal, precision: precision, headSize: headSize)
}

/// A CUDA engine for (B, T) holding `gpt`'s weights (and AdamW moments with `includeOptimizer`).
func makeCUDAEngine(_ gpt: GPT2, B: Int, T: Int, context: CUDAContext, includeOptimizer: Bool = false) throws -> CUDABackend {
    let engine = try CUDABackend(config: gpt.config, B: B, T: T, context: context)
    try engine.loadState(from: gpt, includeOptimizer: includeOptimizer)
    return engine
}

/// "[0] NVIDIA H100 80GB HBM3 (sm_90, 132 SMs), bf16; MFU against 989 TFLOPS (bf16 dense peak)".
func describeCUDA(_ context: CUDAContext) -> String {
    let d = context.device
    var s = "CUDA [\(d.ordinal)] \(d.name) (sm_\(d.arch), \(d.multiprocessors) SMs, \(String(format: "%.0f", Double(d.totalMemory) / 1_073_741_824)) GiB), \(context.precision.rawValue)"
    if let peak = MFU.peakFLOPS(deviceName: d.name, bf16: context.precision == .bf16) {
        s += String(format: "; MFU against %.0f TFLOPS (%@ dense peak)", peak / 1e12, context.precision == .bf16 ? "bf16" : "fp32")
    } else {
        s += "; no MFU (peak FLOP/s of this GPU unknown)"
    }
    return s
}

/// " | mfu 41.2%" for the device, or "" when its peak is unknown.
func mfuText(_ context: CUDAContext?, tokensPerSecond: Double, config: GPT2Config, T: Int) -> String {
    guard let context, let peak = MFU.peakFLOPS(deviceName: context.device.name, bf16: context.precision == .bf16) else { return "" }
    return String(format: " | mfu %.1f%%", 100 * MFU.utilisation(tokensPerSecond: tokensPerSecond, config: config, T: T, peakFLOPS: peak))
}

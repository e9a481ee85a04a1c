// What the CPU offers the engine, read once from CPUID (and XCR0 for what the OS saves): the
// instruction sets behind the bf16 matmul kernels. On Linux, probing also asks the kernel for the
// AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM), which must happen before any tile instruction.
import Foundation
import GPT2Kernels

/// CPU capabilities relevant to the matmul kernels.
public struct CPUFeatures: Sendable, Equatable {
    /// CPUID brand string, e.g. "AMD EPYC 9R14 96-Core Processor" (empty when unavailable).
    public let brand: String
    /// AVX-512 F/DQ/BW/VL with the OS saving the ZMM state.
    public let avx512: Bool
    /// AVX512-BF16 (VDPBF16PS).
    public let avx512BF16: Bool
    /// AMX-BF16 and AMX-TILE in CPUID.
    public let amxBF16: Bool
    /// XCR0 enables the tile state (XTILECFG, XTILEDATA).
    public let osAMX: Bool
    /// Result of asking Linux for the tile state: 0 granted, an errno when refused, -1 not asked.
    public let amxPermission: Int32

    /// This machine's features (probed on first use).
    public static let current: CPUFeatures = {
        var info = gpt2k_bf16_info()
        gpt2k_bf16_probe(&info)
        var chars = [CChar](repeating: 0, count: 49)
        gpt2k_cpu_brand(&chars)
        let brand = String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return CPUFeatures(brand: brand.trimmingCharacters(in: .whitespaces), avx512: info.avx512 != 0,
                           avx512BF16: info.avx512_bf16 != 0, amxBF16: info.amx_bf16 != 0, osAMX: info.os_amx != 0,
                           amxPermission: info.amx_permission)
    }()

    /// Whether the AVX512-BF16 kernel can run.
    public var canRunAVX512BF16: Bool { avx512 && avx512BF16 }
    /// Whether the AMX kernel can run (it also uses AVX512-BF16 to pack its panels).
    public var canRunAMX: Bool { canRunAVX512BF16 && amxBF16 && osAMX && amxPermission == 0 }

    /// Why the AMX kernel cannot run (nil when it can).
    public var amxProblem: String? {
        if !amxBF16 { return "no AMX-BF16 on this CPU" }
        if !osAMX { return "the OS does not enable the AMX tile state (XCR0)" }
        if amxPermission != 0 {
            return "Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM: errno \(amxPermission); kernel 5.16 or later needed)"
        }
        if !canRunAVX512BF16 { return "AMX present but AVX512-BF16 missing" }
        return nil
    }

    /// Why the AVX512-BF16 kernel cannot run (nil when it can).
    public var avx512BF16Problem: String? {
        if !avx512 { return "no usable AVX-512 on this CPU/OS" }
        if !avx512BF16 { return "no AVX512-BF16 (VDPBF16PS) on this CPU" }
        return nil
    }
}

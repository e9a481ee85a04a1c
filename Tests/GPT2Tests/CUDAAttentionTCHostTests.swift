// Host side of the tensor-core attention (no GPU): launch configurations, when the path may be
// chosen, and the kernel unit's registration (the NVRTC compile itself is CUDAKernelCompileTests).
import XCTest
@testable import GPT2

final class CUDAAttentionTCHostTests: XCTestCase {
    func testQueryAndKeyTileGrids() {
        typealias L = CUDALaunchConfig
        // selftest size: T=96 → 2 tiles of 64 (the second ragged), B·NH = 8
        XCTAssertEqual(L.attentionTCQueryTiles(B: 2, T: 96, NH: 4).grid, .init(2, 8))
        XCTAssertEqual(L.attentionTCKeyTiles(B: 2, T: 96, NH: 4).grid, .init(2, 8))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 2, T: 96, NH: 4).block, .init(128))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 2, T: 96, NH: 4).sharedBytes, 0)   // static shared memory only
        // ragged selftest size: T=200 → 4 tiles, the last with 8 rows
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 200, NH: 2).grid, .init(4, 2))
        // training: T=1024, GPT-2 small (NH 12) at B=8 → 16 tiles × 96
        XCTAssertEqual(L.attentionTCQueryTiles(B: 8, T: 1024, NH: 12).grid, .init(16, 96))
        XCTAssertEqual(L.attentionTCKeyTiles(B: 8, T: 1024, NH: 12).grid, .init(16, 96))
        // tiny: T below one tile, exact multiples
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 1, NH: 1).grid, .init(1, 1))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 64, NH: 1).grid, .init(1, 1))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 65, NH: 1).grid, .init(2, 1))
        // GPT-2 XL: 25 heads
        XCTAssertEqual(L.attentionTCKeyTiles(B: 4, T: 1024, NH: 25).grid, .init(16, 100))
    }

    func testTilingMatchesTheKernelSource() {
        let t = CUDAKernelSource.AttentionTCTiling.self
        let code = CUDAKernelSource.attentionTCKernels.code
        XCTAssertTrue(code.contains("#define TC_R \(t.rows) "))
        XCTAssertTrue(code.contains("#define TC_THREADS \(t.threads) "))
        XCTAssertTrue(code.contains("#define TC_HS \(t.headSize) "))
        XCTAssertEqual(t.threads % 32, 0)
        XCTAssertEqual(t.rows, (t.threads / 32) * 16, "each warp owns 16 rows")
    }

    func testSupportedOnlyForBF16HeadSize64OnAmpereOrNewer() {
        typealias L = CUDALaunchConfig
        XCTAssertTrue(L.attentionTCSupported(precision: .bf16, headSize: 64, deviceArch: 80))
        XCTAssertTrue(L.attentionTCSupported(precision: .bf16, headSize: 64, deviceArch: 90))
        XCTAssertFalse(L.attentionTCSupported(precision: .fp32, headSize: 64, deviceArch: 90))
        XCTAssertFalse(L.attentionTCSupported(precision: .bf16, headSize: 8, deviceArch: 90))
        XCTAssertFalse(L.attentionTCSupported(precision: .bf16, headSize: 128, deviceArch: 90))
        XCTAssertFalse(L.attentionTCSupported(precision: .bf16, headSize: 64, deviceArch: 75))
    }

    func testRegisteredInEverySource() {
        let unit = CUDAKernelSource.attentionTCKernels
        XCTAssertTrue(CUDAKernelSource.all.contains(unit))
        XCTAssertEqual(unit.kernels, ["attention_forward_tc_kernel", "attention_backward_dkdv_tc_kernel",
                                      "attention_backward_dq_tc_kernel"])
        // the backward reuses the SIMT unit's preprocess kernel rather than defining its own
        XCTAssertTrue(CUDAKernelSource.attentionKernels.kernels.contains("attention_backward_preprocess_kernel"))
        XCTAssertFalse(unit.code.contains("attention_backward_preprocess_kernel("))
    }
}

/// NVRTC compiles the unit's trapping stubs where the real kernels do not apply (other head sizes,
/// pre-Ampere targets), since CUDAContext compiles every unit whatever the model.
final class CUDAAttentionTCCompileTests: XCTestCase {
    func testStubsCompileForOtherHeadSizesAndOlderArchitectures() throws {
        let tc = try CUDAKernelCompileTests.toolchain()
        let compiler = NVRTCCompiler(nvrtc: tc.nvrtc, includeDirectory: tc.include, cacheDirectory: nil)
        let archs = tc.nvrtc.supportedArchs()
        var cases: [(Int, String)] = [(8, "sm_90"), (128, "sm_80"), (64, "sm_90")]
        if archs.contains(75) { cases.append((64, "sm_75")) }
        for (hs, target) in cases {
            for precision in CUDAPrecision.allCases {
                do {
                    let out = try compiler.compile(CUDAKernelSource.attentionTCKernels, precision: precision, headSize: hs,
                                                   target: target, format: .cubin)
                    XCTAssertEqual(out.log, "", "attention_tc.cu ATT_HS=\(hs) \(precision) \(target): warnings")
                } catch let e as NVRTCCompileError {
                    XCTFail("attention_tc.cu ATT_HS=\(hs) \(precision) \(target):\n\(e.log)")
                }
            }
        }
    }
}

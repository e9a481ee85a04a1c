// Host side of the tensor-core attention (no GPU): launch configurations, when the path may be
// chosen, and the kernel unit's registration (the NVRTC compile itself is CUDAKernelCompileTests).
import XCTest
@testable import GPT2

final class CUDAAttentionTCHostTests: XCTestCase {
    func testQueryAndKeyTileGrids() {
        typealias L = CUDALaunchConfig
        // selftest size: T=96 → one ragged 128-query block (2 key tiles of 64, the second ragged), B·NH = 8
        XCTAssertEqual(L.attentionTCQueryTiles(B: 2, T: 96, NH: 4).grid, .init(1, 8))
        XCTAssertEqual(L.attentionTCKeyTiles(B: 2, T: 96, NH: 4).grid, .init(2, 8))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 2, T: 96, NH: 4).block, .init(256))   // 8 warps × 16 queries
        XCTAssertEqual(L.attentionTCKeyTiles(B: 2, T: 96, NH: 4).block, .init(128))     // 4 warps × 16 keys
        XCTAssertEqual(L.attentionTCQueryTiles(B: 2, T: 96, NH: 4).sharedBytes, 0)   // static shared memory only
        XCTAssertEqual(L.attentionTCKeyTiles(B: 2, T: 96, NH: 4).sharedBytes, 0)
        // ragged selftest size: T=200 → 2 query blocks (the last with 72 rows), 4 key tiles (the last with 8)
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 200, NH: 2).grid, .init(2, 2))
        XCTAssertEqual(L.attentionTCKeyTiles(B: 1, T: 200, NH: 2).grid, .init(4, 2))
        // training: T=1024, GPT-2 small (NH 12) at B=8 → 8 query blocks, 16 key tiles × 96
        XCTAssertEqual(L.attentionTCQueryTiles(B: 8, T: 1024, NH: 12).grid, .init(8, 96))
        XCTAssertEqual(L.attentionTCKeyTiles(B: 8, T: 1024, NH: 12).grid, .init(16, 96))
        // tiny: T below one tile, exact multiples
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 1, NH: 1).grid, .init(1, 1))
        XCTAssertEqual(L.attentionTCKeyTiles(B: 1, T: 1, NH: 1).grid, .init(1, 1))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 64, NH: 1).grid, .init(1, 1))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 65, NH: 1).grid, .init(1, 1))
        XCTAssertEqual(L.attentionTCKeyTiles(B: 1, T: 65, NH: 1).grid, .init(2, 1))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 128, NH: 1).grid, .init(1, 1))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 1, T: 129, NH: 1).grid, .init(2, 1))
        // GPT-2 XL: 25 heads
        XCTAssertEqual(L.attentionTCKeyTiles(B: 4, T: 1024, NH: 25).grid, .init(16, 100))
        XCTAssertEqual(L.attentionTCQueryTiles(B: 4, T: 1024, NH: 25).grid, .init(8, 100))
    }

    func testTilingMatchesTheKernelSource() {
        let t = CUDAKernelSource.AttentionTCTiling.self
        let code = CUDAKernelSource.attentionTCKernels.code
        XCTAssertTrue(code.contains("#define TC_R \(t.rows) "))
        XCTAssertTrue(code.contains("#define TC_THREADS \(t.threads) "))
        XCTAssertTrue(code.contains("#define TC_QR \(t.queryRows) "))
        XCTAssertTrue(code.contains("#define TC_QTHREADS \(t.queryThreads) "))
        XCTAssertTrue(code.contains("#define TC_HS \(t.headSize) "))
        XCTAssertEqual(t.threads % 32, 0)
        XCTAssertEqual(t.rows, (t.threads / 32) * 16, "each dK/dV warp owns 16 key rows")
        XCTAssertEqual(t.queryRows, (t.queryThreads / 32) * 16, "each forward / dQ warp owns 16 query rows")
        // the forward / dQ kernels stage their 128 queries as two 64-row tiles; the loaders assume 8 threads per row of 64
        XCTAssertEqual(t.queryRows, 2 * t.rows)
        XCTAssertEqual((t.rows * t.headSize / 8) % t.queryThreads, 0)
        XCTAssertEqual((t.rows * t.headSize / 8) % t.threads, 0)
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
        // the backward needs no preprocess kernel: dQ writes D = rowsum(dout ∘ out) (hence its `out` and
        // writable Dbuf arguments) and dK/dV reads it
        XCTAssertFalse(unit.code.contains("attention_backward_preprocess_kernel("))
        XCTAssertTrue(unit.code.contains("attention_backward_dq_tc_kernel(floatX* dinp, const floatX* dout, const floatX* inp, const floatX* out,"))
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

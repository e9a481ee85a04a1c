// Compiles every embedded CUDA kernel source, in both precisions, for sm_80 and sm_90 through our
// own Swift NVRTC shim (no GPU needed): the CI guard that the kernels the GPU backend compiles at
// start-up are valid CUDA C. NVRTC and the headers come from a Python environment's nvidia wheels
// ($GPT2_PYTHON, ./.venv, /work/venv: `pip install nvidia-cuda-nvrtc nvidia-cuda-runtime`), or
// GPT2_CUDA_LIB_DIRS / GPT2_CUDA_INCLUDE, or a CUDA toolkit. Skipped only when no NVRTC is found.
import Foundation
import XCTest
@testable import GPT2

final class CUDAKernelCompileTests: XCTestCase {
    /// NVRTC and the include directory, found once.
    struct Toolchain { let nvrtc: NVRTC; let include: String }
    nonisolated(unsafe) static var cached: Result<Toolchain, XCTSkip>?

    static func toolchain() throws -> Toolchain {
        if let c = cached { return try c.get() }
        let env = ProcessInfo.processInfo.environment
        var pythons: [String] = []
        if let p = env["GPT2_PYTHON"] { pythons.append(p) }
        pythons += [TestPaths.root.appendingPathComponent(".venv/bin/python").path, "/work/venv/bin/python"]
        var sitePackages: [String] = []
        for p in pythons where FileManager.default.isExecutableFile(atPath: p) {
            sitePackages += CUDALibrarySearch.runPython(p)
        }
        let search = CUDALibrarySearch(environment: env, sitePackages: sitePackages)
        let result: Result<Toolchain, XCTSkip>
        if let path = search.find(.nvrtc), let nvrtc = try? NVRTC(path: path) {
            if let include = search.findInclude(nvrtcPath: nvrtc.path) {
                result = .success(Toolchain(nvrtc: nvrtc, include: include))
            } else {
                // NVRTC without headers is a broken install, not a reason to skip
                result = .failure(XCTSkip("NVRTC found but no CUDA headers (reported as a failure once)"))
                XCTFail("NVRTC found at \(path) but no cuda_bf16.h (pip install nvidia-cuda-runtime, or set GPT2_CUDA_INCLUDE)")
            }
        } else {
            result = .failure(XCTSkip("no NVRTC found (pip install nvidia-cuda-nvrtc nvidia-cuda-runtime into $GPT2_PYTHON's environment); searched \(search.libraryDirectories)"))
        }
        cached = result
        return try result.get()
    }

    /// Every source × precision × {sm_80, sm_90} compiles to CUBIN (an ELF holding every entry point).
    func testEveryKernelCompilesToCUBINForSM80AndSM90() throws {
        let tc = try Self.toolchain()
        let version = try tc.nvrtc.version()
        XCTAssertTrue(tc.nvrtc.canEmitCUBIN, "NVRTC \(version) cannot emit CUBIN")
        let compiler = NVRTCCompiler(nvrtc: tc.nvrtc, includeDirectory: tc.include, cacheDirectory: nil)
        for source in CUDAKernelSource.all {
            for precision in CUDAPrecision.allCases {
                for arch in [80, 90] {
                    let label = "\(source.name).cu \(precision) sm_\(arch) (NVRTC \(version.major).\(version.minor))"
                    do {
                        let out = try compiler.compile(source, precision: precision, target: "sm_\(arch)", format: .cubin)
                        XCTAssertEqual(Array(out.image.prefix(4)), [0x7F, 0x45, 0x4C, 0x46], "\(label): not an ELF cubin")
                        for kernel in source.kernels {
                            XCTAssertNotNil(out.image.firstRange(of: Array(kernel.utf8)), "\(label): \(kernel) missing from the cubin")
                        }
                        XCTAssertEqual(out.log, "", "\(label): NVRTC warnings:\n\(out.log)")
                    } catch let e as NVRTCCompileError {
                        XCTFail("\(label):\n\(e.log)")
                    }
                }
            }
        }
    }

    /// PTX (the fallback for architectures NVRTC does not know) declares every entry point unmangled.
    func testEveryKernelCompilesToPTX() throws {
        let tc = try Self.toolchain()
        let compiler = NVRTCCompiler(nvrtc: tc.nvrtc, includeDirectory: tc.include, cacheDirectory: nil)
        for source in CUDAKernelSource.all {
            do {
                let out = try compiler.compile(source, precision: .bf16, target: "compute_80", format: .ptx)
                let text = String(decoding: out.image.prefix { $0 != 0 }, as: UTF8.self)
                XCTAssertTrue(text.contains(".target sm_80"), "\(source.name): \(text.prefix(300))")
                for kernel in source.kernels {
                    XCTAssertTrue(text.contains(".entry \(kernel)("), "\(source.name): no .entry \(kernel)")
                }
            } catch let e as NVRTCCompileError {
                XCTFail("\(source.name).cu bf16 compute_80:\n\(e.log)")
            }
        }
    }

    /// Attention (training and decoding) is compiled per head size (-DATT_HS): the tiny test
    /// models' 8 and a 128 besides GPT-2's 64.
    func testAttentionCompilesForOtherHeadSizes() throws {
        let tc = try Self.toolchain()
        let compiler = NVRTCCompiler(nvrtc: tc.nvrtc, includeDirectory: tc.include, cacheDirectory: nil)
        for source in [CUDAKernelSource.attentionKernels, CUDAKernelSource.decodeKernels] {
            for hs in [8, 128] {
                for precision in CUDAPrecision.allCases {
                    do {
                        _ = try compiler.compile(source, precision: precision, headSize: hs, target: "sm_90", format: .cubin)
                    } catch let e as NVRTCCompileError {
                        XCTFail("\(source.name).cu ATT_HS=\(hs) \(precision):\n\(e.log)")
                    }
                }
            }
        }
    }

    /// A broken source fails with NVRTC's log in the error.
    func testCompileErrorCarriesTheLog() throws {
        let tc = try Self.toolchain()
        let compiler = NVRTCCompiler(nvrtc: tc.nvrtc, includeDirectory: tc.include, cacheDirectory: nil)
        let broken = CUDAKernelSource(name: "broken", kernels: ["k"], code: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }")
        XCTAssertThrowsError(try compiler.compile(broken, precision: .fp32, target: "sm_80", format: .cubin)) { error in
            guard let e = error as? NVRTCCompileError else { return XCTFail("unexpected \(error)") }
            XCTAssertTrue(e.log.contains("undefined_name"), e.log)
            XCTAssertTrue(e.description.contains("broken.cu"), e.description)
        }
    }

    /// The second compile of the same unit comes from the on-disk cache, byte for byte.
    func testCompiledImagesAreCachedOnDisk() throws {
        let tc = try Self.toolchain()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2-nvrtc-cache-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let compiler = NVRTCCompiler(nvrtc: tc.nvrtc, includeDirectory: tc.include, cacheDirectory: dir)
        let first = try compiler.compile(CUDAKernelSource.geluKernels, precision: .bf16, target: "sm_90", format: .cubin)
        let second = try compiler.compile(CUDAKernelSource.geluKernels, precision: .bf16, target: "sm_90", format: .cubin)
        XCTAssertFalse(first.fromCache)
        XCTAssertTrue(second.fromCache)
        XCTAssertEqual(first.image, second.image)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(files.count, 1, "\(files)")
        XCTAssertTrue(files[0].hasPrefix("gelu-bf16-sm_90-nvrtc") && files[0].hasSuffix(".cubin"), files[0])
        // another precision is another entry
        let fp32 = try compiler.compile(CUDAKernelSource.geluKernels, precision: .fp32, target: "sm_90", format: .cubin)
        XCTAssertFalse(fp32.fromCache)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).count, 2)
    }

    /// The report names the NVRTC found and its version.
    func testNVRTCVersionAndTargets() throws {
        let tc = try Self.toolchain()
        let v = try tc.nvrtc.version()
        XCTAssertGreaterThanOrEqual(v.major, 11)
        let archs = tc.nvrtc.supportedArchs()
        if !archs.isEmpty {
            XCTAssertTrue(archs.contains(80) && archs.contains(90), "NVRTC \(v) targets \(archs)")
            XCTAssertEqual(NVRTCCompiler.target(deviceArch: 90, supported: archs, canEmitCUBIN: true)?.target, "sm_90")
        }
    }
}

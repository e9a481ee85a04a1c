// The CPUID probe against the kernel's view of the CPU (/proc/cpuinfo flags, Linux), and the
// precision resolver's choices on this machine.
import Foundation
import XCTest
@testable import GPT2

final class CPUFeaturesTests: XCTestCase {
    func testProbeAgreesWithProcCpuinfo() throws {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { throw XCTSkip("no /proc/cpuinfo") }
        guard let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { throw XCTSkip("no flags line") }
        let flags = Set(flagsLine.split(separator: ":")[1].split(separator: " ").map(String.init))
        let f = CPUFeatures.current
        XCTAssertEqual(f.avx512BF16, flags.contains("avx512_bf16"))
        XCTAssertEqual(f.amxBF16, flags.contains("amx_bf16") && flags.contains("amx_tile"))
        XCTAssertEqual(f.avx512, ["avx512f", "avx512dq", "avx512bw", "avx512vl"].allSatisfy(flags.contains))
        if let model = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }) {
            let name = model.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
            XCTAssertEqual(f.brand, name)
        }
        if f.amxBF16 && f.osAMX { XCTAssertEqual(f.amxPermission, 0, "Linux refused the AMX tile state") }
    }

    func testResolve() throws {
        let fp32 = try CPUPrecision.fp32.resolve()
        XCTAssertEqual(fp32.path, .fp32)
        let auto = try CPUPrecision.auto.resolve()
        let f = CPUFeatures.current
        let expected: CPUMatmulPath = f.canRunAMX ? .bf16AMX : f.canRunAVX512BF16 ? .bf16AVX512 : .fp32
        XCTAssertEqual(auto.path, expected, auto.reason)
        XCTAssertFalse(auto.reason.isEmpty)
        if expected == .fp32 {
            XCTAssertThrowsError(try CPUPrecision.bf16.resolve()) { e in
                XCTAssertTrue("\(e.localizedDescription)".contains("bf16 is unavailable on this CPU"), "\(e.localizedDescription)")
            }
        } else {
            XCTAssertEqual(try CPUPrecision.bf16.resolve().path, expected)
            XCTAssertLessThanOrEqual(BF16SelfCheck.maxRelativeError(expected), BF16SelfCheck.tolerance)
        }
    }
}

// The training-engine seam without a GPU: GPT2 through `any TrainingEngine` is bit-identical to
// calling it directly, state copies round-trip, MFU arithmetic (llm.c's formula), the NCCL id
// exchange (file and TCP on 127.0.0.1 between threads, a fake 128-byte id; MPI-style broadcast
// through a reducer), and `--device cuda` failing with the `gpt info` report on this machine.
import Foundation
import XCTest
@testable import GPT2

final class TrainingEngineTests: XCTestCase {
    // MARK: - GPT2 conformance

    func testGPT2ThroughTheProtocolIsBitIdentical() throws {
        let direct = TrainingTests.tinyModel(), viaProtocol = TrainingTests.tinyModel()
        let engine: any TrainingEngine = viaProtocol
        let B = 2, T = 8
        var rng = SplitMix64(seed: 7)
        for step in 1...3 {
            let ids = (0...B * T).map { _ in Int32(rng.next() % 256) }
            let x = Array(ids[0..<B * T]), y = Array(ids[1...B * T])
            direct.zeroGrad()
            let l1 = direct.forward(inputs: x, targets: y, B: B, T: T)
            direct.backward(lossScale: 0.5)
            let n1 = direct.clipGradients(maxNorm: 0.1)
            direct.update(learningRate: 1e-3, weightDecay: 0.1, step: step)
            try engine.zeroGrad()
            let l2 = try engine.forward(inputs: x, targets: y, B: B, T: T)
            try engine.backward(lossScale: 0.5)
            let n2 = try engine.clipGradients(maxNorm: 0.1)
            try engine.update(learningRate: 1e-3, weightDecay: 0.1, step: step)
            XCTAssertEqual(l1.bitPattern, l2.bitPattern)
            XCTAssertEqual(n1.bitPattern, n2.bitPattern)
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: direct.params.memory, count: direct.params.count)),
                       Array(UnsafeBufferPointer(start: viaProtocol.params.memory, count: viaProtocol.params.count)))
        XCTAssertEqual(Array(UnsafeBufferPointer(start: direct.adamV.memory, count: direct.adamV.count)),
                       Array(UnsafeBufferPointer(start: viaProtocol.adamV.memory, count: viaProtocol.adamV.count)))
    }

    func testCopyAndLoadState() throws {
        let a = TrainingTests.tinyModel(seed: 1), b = TrainingTests.tinyModel(seed: 2)
        a.adamM.memory[3] = 0.25; a.adamV.memory[5] = 0.5
        try a.copyState(to: b, includeOptimizer: true)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: a.params.memory, count: a.params.count)),
                       Array(UnsafeBufferPointer(start: b.params.memory, count: b.params.count)))
        XCTAssertEqual(b.adamM.memory[3], 0.25); XCTAssertEqual(b.adamV.memory[5], 0.5)
        let c = TrainingTests.tinyModel(seed: 3)
        c.adamM.memory[3] = 9
        try c.loadState(from: a, includeOptimizer: false)
        XCTAssertEqual(c.params.memory[7], a.params.memory[7])
        XCTAssertEqual(c.adamM.memory[3], 0)
        try a.copyState(to: a, includeOptimizer: true)   // itself: nothing to do
    }

    // MARK: - MFU

    func testMFUArithmetic() {
        let c = GPT2Config.preset("gpt2")!
        // llm.c: N = 124,475,904 (padded vocab 50304); 6N + 6·12·768·1024
        XCTAssertEqual(MFU.flopsPerToken(config: c, T: 1024), 6 * 124_475_904 + 6 * 12 * 768 * 1024)
        XCTAssertEqual(MFU.peakFLOPS(deviceName: "NVIDIA H100 80GB HBM3", bf16: true), 989e12)
        XCTAssertEqual(MFU.peakFLOPS(deviceName: "NVIDIA H100 PCIe", bf16: true), 756e12)
        XCTAssertEqual(MFU.peakFLOPS(deviceName: "NVIDIA H200", bf16: true), 989e12)
        XCTAssertEqual(MFU.peakFLOPS(deviceName: "NVIDIA A100-SXM4-80GB", bf16: true), 312e12)
        XCTAssertEqual(MFU.peakFLOPS(deviceName: "NVIDIA A100-SXM4-80GB", bf16: false), 19.5e12)
        XCTAssertNil(MFU.peakFLOPS(deviceName: "Tesla V100-SXM2-16GB", bf16: true))
        // llm.c's anchor: 468K tok/s per H100 is ~38% of the bf16 peak by this formula
        let u = MFU.utilisation(tokensPerSecond: 468_000, config: c, T: 1024, peakFLOPS: 989e12)
        XCTAssertEqual(u, 468_000 * 803_478_528 / 989e12, accuracy: 1e-12)
        XCTAssertEqual(u, 0.380, accuracy: 0.001)
    }

    // MARK: - NCCL id exchange

    static let fakeID: [UInt8] = (0..<128).map { UInt8(($0 * 37 + 11) & 0xFF) }

    /// Runs `ranks` closures on threads; returns their results in rank order.
    func onThreads(_ ranks: Int, _ body: @escaping @Sendable (Int) throws -> [UInt8]) -> [Result<[UInt8], Error>] {
        final class Box: @unchecked Sendable { var results: [Result<[UInt8], Error>?]; init(_ n: Int) { results = .init(repeating: nil, count: n) } }
        let box = Box(ranks), lock = NSLock(), group = DispatchGroup()
        for r in 0..<ranks {
            group.enter()
            Thread.detachNewThread {
                let res = Result { try body(r) }
                lock.lock(); box.results[r] = res; lock.unlock()
                group.leave()
            }
        }
        group.wait()
        return box.results.map { $0! }
    }

    func testFileExchange() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nccl-id-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let results = onThreads(3) { rank in
            if rank == 0 { usleep(200_000) }   // the readers start first and must wait
            return try NCCLIdExchange.file(path: path).exchange(rank: rank, worldSize: 3, timeout: 10) { Self.fakeID }
        }
        for r in results { XCTAssertEqual(try r.get(), Self.fakeID) }
    }

    func testFileExchangeTimesOut() {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("nccl-missing-\(UUID().uuidString)").path
        XCTAssertThrowsError(try NCCLIdExchange.file(path: path).exchange(rank: 1, worldSize: 2, timeout: 0.3) { [] }) { e in
            XCTAssertTrue("\(e.localizedDescription)".contains("timed out"), "\(e)")
        }
    }

    /// A port nothing listens on right now.
    func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func testTCPExchange() throws {
        let port = try freePort()
        let results = onThreads(3) { rank in
            if rank == 0 { usleep(300_000) }   // clients retry until rank 0 listens
            return try NCCLIdExchange.tcp(host: "127.0.0.1", port: port).exchange(rank: rank, worldSize: 3, timeout: 10) { Self.fakeID }
        }
        for r in results { XCTAssertEqual(try r.get(), Self.fakeID) }
    }

    /// Two "ranks" of a reducer whose sum is computed across threads (stands in for MPI).
    final class ThreadReducer: GradientReducer, @unchecked Sendable {
        let rank: Int, worldSize: Int
        let shared: Shared
        final class Shared: @unchecked Sendable {
            let cond = NSCondition(); var acc: [Double] = []; var arrived = 0; var generation = 0; var result: [Double] = []
        }
        init(rank: Int, worldSize: Int, shared: Shared) { self.rank = rank; self.worldSize = worldSize; self.shared = shared }
        func averageInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) throws { fatalError("unused") }
        func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) throws {
            let s = shared
            s.cond.lock(); defer { s.cond.unlock() }
            if s.arrived == 0 { s.acc = .init(repeating: 0, count: count) }
            for i in 0..<count { s.acc[i] += values[i] }
            s.arrived += 1
            let gen = s.generation
            if s.arrived == worldSize { s.result = s.acc; s.arrived = 0; s.generation += 1; s.cond.broadcast() }
            while s.generation == gen { s.cond.wait() }
            for i in 0..<count { values[i] = s.result[i] }
        }
    }

    func testReducerBroadcastExchange() {
        let shared = ThreadReducer.Shared()
        let results = onThreads(2) { rank in
            let r = ThreadReducer(rank: rank, worldSize: 2, shared: shared)
            return try NCCLIdExchange.reducer(r).exchange(rank: rank, worldSize: 2) { Self.fakeID }
        }
        for r in results { XCTAssertEqual(try r.get(), Self.fakeID) }
    }

    func testExchangeChoice() throws {
        guard case .file(let p) = try NCCLIdExchange.choose(environment: ["GPT2_NCCL_ID_FILE": "/shared/id", "MASTER_ADDR": "h"], hostReducer: nil) else { return XCTFail() }
        XCTAssertEqual(p, "/shared/id")
        guard case .tcp(let h, let port) = try NCCLIdExchange.choose(environment: ["MASTER_ADDR": "node0", "MASTER_PORT": "29500"], hostReducer: nil) else { return XCTFail() }
        XCTAssertEqual(h, "node0"); XCTAssertEqual(port, 29501)   // torchrun's store holds MASTER_PORT
        guard case .tcp(_, let p2) = try NCCLIdExchange.choose(environment: ["MASTER_ADDR": "n", "MASTER_PORT": "29500", "GPT2_NCCL_PORT": "4000"], hostReducer: nil) else { return XCTFail() }
        XCTAssertEqual(p2, 4000)
        guard case .reducer = try NCCLIdExchange.choose(environment: ["MASTER_ADDR": "n", "MASTER_PORT": "1"],
                                                      hostReducer: ThreadReducer(rank: 0, worldSize: 1, shared: .init())) else { return XCTFail() }
        XCTAssertThrowsError(try NCCLIdExchange.choose(environment: [:], hostReducer: nil)) { e in
            XCTAssertEqual(e as? NCCLSetupError, .noExchange)
        }
        XCTAssertEqual(NCCLIdExchange.timeout(environment: ["GPT2_NCCL_TIMEOUT": "12"]), 12)
        XCTAssertEqual(NCCLIdExchange.idBytes, 128)
    }

    // MARK: - CLI without a GPU

    func testDeviceCudaFailsWithTheReport() throws {
        if CUDAProbe.run().isUsable { throw XCTSkip("this machine has a usable CUDA device") }
        let text = FileManager.default.temporaryDirectory.appendingPathComponent("engine-\(UUID().uuidString).txt")
        try Data("Hello, world. Hello again.".utf8).write(to: text)
        defer { try? FileManager.default.removeItem(at: text) }
        for args in [["train", "--device", "cuda", "--max-steps", "1", "--out", "/nonexistent/never"],
                     ["eval", "loss", "--device", "cuda", "--model", "d2", "--text", text.path],
                     ["sample", "--device", "cuda", "--model", "d2"],
                     ["bench", "train", "--device", "cuda", "--model", "d2"]] {
            let r = try runGPT(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            let all = String(decoding: r.stdout, as: UTF8.self) + r.stderr
            XCTAssertTrue(all.contains("CUDA requested but unavailable"), "\(args): \(all)")
            XCTAssertTrue(all.contains("Status: CUDA unavailable"), "\(args): \(all)")
        }
    }
}

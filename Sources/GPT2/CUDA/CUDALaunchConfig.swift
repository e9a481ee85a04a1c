// Launch geometry shared by every kernel: dim3, a launch's grid/block/shared memory, and the
// grid-stride and one-thread-per-element shapes. Each op's own sizes live beside its kernels
// (Kernels/CUDA<Op>.swift, `extension CUDALaunchConfig`), as pure functions of the problem size
// and the device's SM count, so they are unit-tested without a GPU.
// Legend: N rows or elements, C channels, OC output channels, B batch, T time, NH heads.

/// Launch configurations (pure).
public enum CUDALaunchConfig {
    /// A CUDA dim3.
    public struct Dim3: Equatable, Sendable, CustomStringConvertible {
        public var x: UInt32, y: UInt32, z: UInt32
        public init(_ x: Int, _ y: Int = 1, _ z: Int = 1) {
            precondition(x >= 1 && y >= 1 && z >= 1 && x <= Int(Int32.max) && y <= 65535 && z <= 65535,
                         "launch dimension (\(x), \(y), \(z)) out of range")
            self.x = UInt32(x); self.y = UInt32(y); self.z = UInt32(z)
        }
        public var count: Int { Int(x) * Int(y) * Int(z) }
        public var description: String { "(\(x), \(y), \(z))" }
    }

    /// Grid, block and dynamic shared memory of one launch.
    public struct Launch: Equatable, Sendable {
        public var grid: Dim3
        public var block: Dim3
        public var sharedBytes: Int = 0
    }

    /// Threads per block of the elementwise kernels.
    public static let elementwiseBlock = 256
    /// Blocks per SM a grid-stride kernel is given (enough to hide latency, few enough to loop).
    public static let blocksPerSM = 16

    static func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

    /// Grid-stride elementwise kernels over `count` elements.
    public static func elementwise(count: Int, multiprocessors: Int) -> Launch {
        let blocks = max(1, min(ceilDiv(count, elementwiseBlock), max(1, multiprocessors) * blocksPerSM))
        return Launch(grid: Dim3(blocks), block: Dim3(elementwiseBlock))
    }

    /// One thread per element, no grid-stride loop: covers all `count` elements.
    public static func cover(count: Int, block: Int = elementwiseBlock) -> Launch {
        Launch(grid: Dim3(max(1, ceilDiv(count, block))), block: Dim3(block))
    }
}

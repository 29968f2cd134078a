// swift-tools-version: 6.1
// Veil: private Transformer inference on secret shares. See README.md and DESIGN.md.
import PackageDescription

let package = Package(
  name: "Veil",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "veil", targets: ["veil"]),
    .library(name: "VeilRing", targets: ["VeilRing"]),
    .library(name: "VeilModels", targets: ["VeilModels"]),
    .library(name: "VeilFSS", targets: ["VeilFSS"]),
    .library(name: "VeilNet", targets: ["VeilNet"]),
    .library(name: "VeilMPC", targets: ["VeilMPC"]),
    .library(name: "VeilService", targets: ["VeilService"]),
    .executable(name: "veil-example", targets: ["veil-example"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
    .package(url: "https://github.com/apple/swift-certificates", from: "1.10.0"),
    .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
    .package(url: "https://github.com/apple/swift-asn1", from: "1.3.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
  ],
  targets: [
    .plugin(name: "BuildInfo", capability: .buildTool()),
    .target(name: "CVeilKernels"),
    .target(name: "VeilRing", dependencies: ["CVeilKernels"]),
    .target(name: "VeilModels", dependencies: ["VeilRing"]),
    .target(
      name: "VeilFSS",
      dependencies: ["CVeilKernels", "VeilRing", .product(name: "Crypto", package: "swift-crypto")]),
    .target(
      name: "VeilMPC",
      dependencies: [
        "CVeilKernels", "VeilRing", "VeilFSS", "VeilModels", "VeilNet",
        .product(name: "Crypto", package: "swift-crypto"),
      ]),
    .target(
      name: "VeilNet",
      dependencies: [
        "VeilRing",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ]),
    .target(
      name: "VeilService",
      dependencies: [
        "VeilRing", "VeilFSS", "VeilModels", "VeilNet", "VeilMPC",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Hummingbird", package: "hummingbird"),
      ]),
    .executableTarget(
      name: "veil-example", dependencies: ["VeilService"], path: "Examples/veil-example"),
    .executableTarget(
      name: "veil",
      dependencies: [
        "CVeilKernels", "VeilRing", "VeilModels", "VeilFSS", "VeilNet", "VeilMPC", "VeilService",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      plugins: [.plugin(name: "BuildInfo")]
    ),
    .target(name: "VeilTestSupport", dependencies: ["VeilModels", "VeilRing"], path: "Tests/VeilTestSupport"),
    .testTarget(name: "VeilRingTests", dependencies: ["VeilRing", "CVeilKernels", "VeilTestSupport"]),
    .testTarget(
      name: "VeilFSSTests",
      dependencies: [
        "VeilFSS", "VeilRing", "CVeilKernels", "VeilTestSupport", .product(name: "Crypto", package: "swift-crypto"),
      ]),
    .testTarget(name: "VeilNetTests", dependencies: ["VeilNet", "VeilRing", "VeilTestSupport"]),
    .testTarget(
      name: "VeilMPCTests",
      dependencies: ["VeilMPC", "VeilModels", "VeilRing", "VeilFSS", "VeilNet", "VeilTestSupport"]),
    .testTarget(
      name: "VeilServiceTests",
      dependencies: ["VeilService", "VeilMPC", "VeilNet", "VeilModels", "VeilTestSupport"]),
    .testTarget(
      name: "VeilModelsTests", dependencies: ["VeilModels", "VeilTestSupport"],
      resources: [.copy("Data")]
    ),
  ],
  swiftLanguageModes: [.v6]
)

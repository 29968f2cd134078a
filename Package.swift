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
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    .target(name: "CVeilKernels"),
    .target(name: "VeilRing", dependencies: ["CVeilKernels"]),
    .target(name: "VeilModels", dependencies: ["VeilRing"]),
    .executableTarget(
      name: "veil",
      dependencies: [
        "VeilRing", "VeilModels",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    .testTarget(name: "VeilRingTests", dependencies: ["VeilRing", "CVeilKernels"]),
    .testTarget(
      name: "VeilModelsTests", dependencies: ["VeilModels"],
      resources: [.copy("Data")]
    ),
  ],
  swiftLanguageModes: [.v6]
)

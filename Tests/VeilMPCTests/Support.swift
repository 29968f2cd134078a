import Foundation
import VeilFSS
import VeilModels
import VeilRing

@testable import VeilMPC

/// Deterministic generator for test data (not for anything secret).
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A standard normal draw (Box–Muller).
  mutating func normal() -> Double {
    let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
    let v = Double.random(in: 0..<1, using: &self)
    return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
  }
}

/// A site for gates called directly from tests.
func testSite(_ kind: OpKind = .add, _ gate: String = "test") -> GateSite {
  GateSite(op: OpSite(layer: 0, kind: kind, index: 0), gate: gate)
}

let testOp = OpSite(layer: 0, kind: .add, index: 0)

/// A clear back end and recipe at (n, f) holding `weights`.
func makeRecipe(
  _ parameters: SigmaParameters = SigmaParameters(), weights: [String: Tensor<Double>] = [:]
) throws -> SigmaRecipe<ClearBackend> {
  let format = try FixedPointFormat(bits: parameters.ringBits, fractionalBits: parameters.fractionalBits)
  let tensors = Dictionary(uniqueKeysWithValues: weights.map { (WeightID($0.key), $0.value) })
  let backend = ClearBackend(weights: try ClearWeights(Float64Weights(tensors: tensors), format: format))
  return try SigmaRecipe(backend: backend, parameters: parameters)
}

/// Reals encoded at the format (round to nearest), as a clear value.
func encode(_ reals: [Double], shape: [Int], bits: Int = 50, scale: Int = 12) throws -> FixedTensor {
  let format = try FixedPointFormat(bits: bits, fractionalBits: scale)
  return try FixedTensor(
    format: WireFormat(bits: bits, scale: scale), shape: shape,
    values: try reals.map { format.ring.signed(try format.encode($0)) })
}

func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

/// A small random-weight BERT (the shapes of TinyBertFixture in VeilModelsTests, written
/// again here because test targets cannot share files).
enum TinyBert {
  static func config(layers: Int = 2, hidden: Int = 32, heads: Int = 4, maxPositions: Int = 40) -> ModelConfig {
    ModelConfig(
      architecture: .bert, vocabularySize: 30, hiddenSize: hidden, layers: layers, heads: heads,
      intermediateSize: 4 * hidden, maxPositions: maxPositions, typeVocabularySize: 2, normEpsilon: 1e-12)
  }

  /// Random weights drawn so activations stay in a realistic range (LayerNorm γ near 1,
  /// matrices ≈ U(±1.7/√fan_in), vectors ≈ U(±0.17)).
  static func weights(_ config: ModelConfig, seed: UInt64 = 1) -> Float64Weights {
    var rng = SeededGenerator(seed: seed)
    var tensors: [WeightID: Tensor<Double>] = [:]
    for (id, shape) in BertModel(config: config).expectedWeights {
      let count = shape.reduce(1, *)
      let values: [Double]
      if id.name.hasSuffix("LayerNorm.weight") {
        values = (0..<count).map { _ in Double.random(in: 0.8...1.2, using: &rng) }
      } else {
        let scale = shape.count == 2 ? 1 / Double(shape[1]).squareRoot() : 0.1
        values = (0..<count).map { _ in Double.random(in: -scale...scale, using: &rng) * 1.7 }
      }
      tensors[id] = try! Tensor(shape: shape, scalars: values)
    }
    return Float64Weights(tensors: tensors)
  }
}

/// The real all-MiniLM-L6-v2: VEIL_MODEL_DIR, else ~/.cache/veil/models/all-MiniLM-L6-v2.
enum MiniLM {
  static var directory: String {
    if let dir = ProcessInfo.processInfo.environment["VEIL_MODEL_DIR"], !dir.isEmpty { return dir }
    return FileManager.default.homeDirectoryForCurrentUser
      .appendingPathComponent(".cache/veil/models/all-MiniLM-L6-v2").path
  }

  static var isPresent: Bool {
    FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("model.safetensors"))
  }

  static var required: Bool { ProcessInfo.processInfo.environment["VEIL_REQUIRE_MODEL"] == "1" }

  /// Run when the model is there, or when it is required (then a missing model fails).
  static var shouldRun: Bool { isPresent || required }

  struct Case: Decodable {
    let text: String
    let ids: [Int]
    let embedding: [Double]
  }

  static func cases() throws -> [Case] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("VeilModelsTests/Data/embedding_cases.json")
    return try JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
  }

  /// Loads the model once per process (weights read as Float64).
  static let loaded: Result<(SentenceEmbedder, Float64Weights), Error> = Result {
    let embedder = try SentenceEmbedder(modelDirectory: directory)
    return (embedder, try embedder.float64Weights())
  }
}

#if DEBUG
  let isDebugBuild = true
#else
  let isDebugBuild = false
#endif

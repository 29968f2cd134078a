// VeilTestSupport owns what several test targets share: the deterministic generator for test
// data (from VeilModels), the rules for finding the reference model, the float64 reference
// cases, and a tiny random-weight BERT. Test-only: nothing in Sources depends on it.
import Foundation
import VeilModels
import VeilRing

/// The deterministic test-data generator lives beside the random benchmark weights.
public typealias SplitMix64 = VeilModels.SplitMix64

/// Where the tests find all-MiniLM-L6-v2: `VEIL_MODEL_DIR`, else the cache that
/// `scripts/fetch-model.sh` fills. With `VEIL_REQUIRE_MODEL=1` (CI) a missing model fails the
/// tests instead of skipping them.
public enum TestModel {
  public static let defaultName = "all-MiniLM-L6-v2"

  private static var environment: [String: String] { ProcessInfo.processInfo.environment }

  public static var isRequired: Bool { environment["VEIL_REQUIRE_MODEL"] == "1" }

  public static func directory() -> String { directory(defaultName, variable: "VEIL_MODEL_DIR") }

  /// The folder `scripts/fetch-model.sh` writes for the model `name` (e.g. "gpt2-tiny",
  /// "SmolLM2-135M-Instruct"), or the one the environment `variable` names.
  public static func directory(_ name: String, variable: String) -> String {
    if let explicit = environment[variable], !explicit.isEmpty { return explicit }
    let cache =
      environment["VEIL_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
      ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache/veil")
    return ((cache as NSString).appendingPathComponent("models") as NSString)
      .appendingPathComponent(name)
  }

  public static var isPresent: Bool {
    FileManager.default.fileExists(
      atPath: (directory() as NSString).appendingPathComponent("config.json"))
  }

  /// Use as `@Test(.enabled(if: TestModel.shouldRun))`.
  public static var shouldRun: Bool { isPresent || isRequired }
}

/// Float64 reference embeddings made by scripts/reference (Tests/VeilModelsTests/Data).
public enum ReferenceEmbeddings {
  public struct Case: Decodable, Sendable {
    public let text: String
    public let ids: [Int]
    public let embedding: [Double]
  }

  public static func cases() throws -> [Case] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .deletingLastPathComponent()
      .appendingPathComponent("VeilModelsTests/Data/embedding_cases.json")
    return try JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
  }
}

/// A tiny BERT with random weights drawn so activations stay in a realistic range
/// (LayerNorm γ near 1, matrices ≈ U(±1.7/√fan_in), vectors ≈ U(±0.17)).
public enum TinyBert {
  public static func config(
    vocabularySize: Int = 30, layers: Int = 2, hidden: Int = 32, heads: Int = 4,
    maxPositions: Int = 40
  ) -> ModelConfig {
    ModelConfig(
      architecture: .bert, vocabularySize: vocabularySize, hiddenSize: hidden, layers: layers,
      heads: heads,
      intermediateSize: 4 * hidden, maxPositions: maxPositions, typeVocabularySize: 2,
      normEpsilon: 1e-12)
  }

  /// Every weight of `config` as (name, shape, values).
  public static func weightTensors(_ config: ModelConfig, seed: UInt64 = 1) -> [(
    String, [Int], [Double]
  )] {
    BertModel(config: config).randomWeightTensors(seed: seed)
  }

  /// The same weights for the Float64 engine.
  public static func weights(_ config: ModelConfig, seed: UInt64 = 1) -> Float64Weights {
    BertModel(config: config).randomWeights(seed: seed)
  }
}

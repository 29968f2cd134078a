// Random weights at a model's real shapes, for benchmarks at full size without a download and
// for tiny test models: LayerNorm γ in [0.8, 1.2], matrices U(±1.7/√fan_in), other vectors
// U(±0.17), so activations stay in a trained model's range. Deterministic per seed (SplitMix64);
// never a source of anything secret.
import Foundation
import VeilRing

/// Public model shapes of the benchmark tables (Hugging Face configs).
public enum ModelPreset: String, Sendable, CaseIterable {
  case bertTiny = "bert-tiny"
  case minilm
  case bertBase = "bert-base"
  case bertLarge = "bert-large"
  case gpt2
  case smollm2 = "smollm2-135m"
  case llama2_7b = "llama2-7b"
  case llama2_13b = "llama2-13b"

  public var config: ModelConfig {
    func bert(hidden: Int, layers: Int, heads: Int) -> ModelConfig {
      ModelConfig(
        architecture: .bert, vocabularySize: 30522, hiddenSize: hidden, layers: layers,
        heads: heads,
        intermediateSize: 4 * hidden, maxPositions: 512)
    }
    switch self {
    case .bertTiny: return bert(hidden: 128, layers: 2, heads: 2)
    case .minilm: return bert(hidden: 384, layers: 6, heads: 12)
    case .bertBase: return bert(hidden: 768, layers: 12, heads: 12)
    case .bertLarge: return bert(hidden: 1024, layers: 24, heads: 16)
    case .gpt2:
      return ModelConfig(
        architecture: .gpt2, vocabularySize: 50257, hiddenSize: 768, layers: 12, heads: 12,
        intermediateSize: 3072,
        maxPositions: 1024, typeVocabularySize: 0, normEpsilon: 1e-5, hiddenActivation: "gelu_new")
    case .smollm2:
      return llama(hidden: 576, layers: 30, heads: 9, keyValue: 3, ff: 1536, vocabulary: 49152)
    case .llama2_7b:
      return llama(hidden: 4096, layers: 32, heads: 32, keyValue: 32, ff: 11008, vocabulary: 32000)
    case .llama2_13b:
      return llama(hidden: 5120, layers: 40, heads: 40, keyValue: 40, ff: 13824, vocabulary: 32000)
    }
  }

  private func llama(
    hidden: Int, layers: Int, heads: Int, keyValue: Int, ff: Int, vocabulary: Int
  ) -> ModelConfig {
    ModelConfig(
      architecture: .llama, vocabularySize: vocabulary, hiddenSize: hidden, layers: layers,
      heads: heads, keyValueHeads: keyValue, intermediateSize: ff, maxPositions: 4096,
      typeVocabularySize: 0, normEpsilon: 1e-5, hiddenActivation: "silu",
      ropeTheta: self == .smollm2 ? 100000 : 10000, tiedEmbeddings: self == .smollm2)
  }

  /// The graph of a config.
  public static func graph(_ config: ModelConfig) -> any TransformerGraph {
    switch config.architecture {
    case .bert: BertModel(config: config)
    case .gpt2: GPT2Model(config: config)
    case .llama: LlamaModel(config: config)
    }
  }
}

extension TransformerGraph {
  /// Every weight as (name, shape, values).
  public func randomWeightTensors(seed: UInt64) -> [(String, [Int], [Double])] {
    var rng = SplitMix64(seed: seed)
    return expectedWeights.map { id, shape in
      let count = shape.reduce(1, *)
      let values: [Double]
      if id.isNormScale {
        values = (0..<count).map { _ in Double.random(in: 0.8...1.2, using: &rng) }
      } else {
        let scale = shape.count == 2 ? 1 / Double(shape[1]).squareRoot() : 0.1
        values = (0..<count).map { _ in Double.random(in: -scale...scale, using: &rng) * 1.7 }
      }
      return (id.name, shape, values)
    }
  }

  /// The same weights for the engines.
  public func randomWeights(seed: UInt64) -> Float64Weights {
    var tensors: [WeightID: Tensor<Double>] = [:]
    for (name, shape, values) in randomWeightTensors(seed: seed) {
      // Shapes come from expectedWeights and the counts from the shapes: cannot mismatch.
      tensors[WeightID(name)] = try? Tensor(shape: shape, scalars: values)
    }
    return Float64Weights(tensors: tensors)
  }
}

/// SplitMix64: deterministic, fast data for benchmarks and tests — never for anything a party
/// must not predict (that is `SecureRandom`'s job).
public struct SplitMix64: RandomNumberGenerator, Sendable {
  public var state: UInt64
  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A standard normal draw (Box–Muller).
  public mutating func normal() -> Double {
    let u = Double.random(in: Double.ulpOfOne..<1, using: &self)
    let v = Double.random(in: 0..<1, using: &self)
    return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
  }
}

extension WeightID {
  /// A LayerNorm γ (BERT's "….LayerNorm.weight", GPT-2's "h.N.ln_1.weight", "ln_f.weight").
  var isNormScale: Bool {
    name.hasSuffix("LayerNorm.weight") || name.hasSuffix("layernorm.weight")
      || name == "model.norm.weight"
      || (name.hasSuffix(".weight") && name.split(separator: ".").contains { $0.hasPrefix("ln_") })
  }
}

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
    }
  }

  /// The graph of a config of this preset's family.
  public func graph(_ config: ModelConfig) -> any TransformerGraph {
    self == .gpt2 ? GPT2Model(config: config) : BertModel(config: config)
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

// Random weights at a model's real shapes, for benchmarks at full size without a download and
// for tiny test models: LayerNorm γ in [0.8, 1.2], matrices U(±1.7/√fan_in), other vectors
// U(±0.17), so activations stay in a trained model's range. Deterministic per seed (SplitMix64);
// never a source of anything secret.
import Foundation
import VeilRing

/// Public BERT shapes of the benchmark tables (Hugging Face configs).
public enum BertPreset: String, Sendable, CaseIterable {
  case bertTiny = "bert-tiny", minilm, bertBase = "bert-base", bertLarge = "bert-large"

  public var config: ModelConfig {
    let (hidden, layers, heads, positions): (Int, Int, Int, Int) =
      switch self {
      case .bertTiny: (128, 2, 2, 512)
      case .minilm: (384, 6, 12, 512)
      case .bertBase: (768, 12, 12, 512)
      case .bertLarge: (1024, 24, 16, 512)
      }
    return ModelConfig(
      architecture: .bert, vocabularySize: 30522, hiddenSize: hidden, layers: layers, heads: heads,
      intermediateSize: 4 * hidden, maxPositions: positions)
  }
}

extension BertModel {
  /// Every weight as (name, shape, values).
  public func randomWeightTensors(seed: UInt64) -> [(String, [Int], [Double])] {
    var rng = SplitMix64(seed: seed)
    return expectedWeights.map { id, shape in
      let count = shape.reduce(1, *)
      let values: [Double]
      if id.name.hasSuffix("LayerNorm.weight") {
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

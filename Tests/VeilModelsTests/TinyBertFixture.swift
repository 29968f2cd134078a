import Foundation
import VeilRing

@testable import VeilModels

/// Writes a tiny BERT model folder (config.json, vocab.txt, model.safetensors with random F32
/// weights) so graph and error-path tests need no download.
enum TinyBertFixture {
  static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", ".", "##s", "a", "dog"]

  static func config(layers: Int = 2, hidden: Int = 32, heads: Int = 4) -> ModelConfig {
    ModelConfig(
      architecture: .bert, vocabularySize: vocabulary.count, hiddenSize: hidden, layers: layers, heads: heads,
      intermediateSize: 4 * hidden, maxPositions: 16, typeVocabularySize: 2, normEpsilon: 1e-12)
  }

  /// Random weights for `config`, drawn so activations stay in a realistic range.
  static func weights(_ config: ModelConfig, seed: UInt64 = 1) -> [(String, [Int], [Float])] {
    var rng = SeededGenerator(seed: seed)
    return BertModel(config: config).expectedWeights.map { id, shape in
      let count = shape.reduce(1, *)
      let values: [Float]
      if id.name.hasSuffix("LayerNorm.weight") {
        values = (0..<count).map { _ in Float.random(in: 0.8...1.2, using: &rng) }
      } else {
        let scale: Float = shape.count == 2 ? 1 / Float(shape[1]).squareRoot() : 0.1
        values = (0..<count).map { _ in Float.random(in: -scale...scale, using: &rng) * 1.7 }
      }
      return (id.name, shape, values)
    }
  }

  /// Serialises tensors as safetensors (F32, or another dtype name for corrupt variants).
  static func safetensors(_ tensors: [(String, [Int], [Float])], dtypeOverride: [String: String] = [:]) -> [UInt8] {
    var header: [String] = []
    var data: [UInt8] = []
    for (name, shape, values) in tensors {
      let start = data.count
      data += SafeTensorsFixture.f32(values)
      let dtype = dtypeOverride[name] ?? "F32"
      header.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(start),\(data.count)]}")
    }
    return SafeTensorsFixture.bytes(header: "{" + header.joined(separator: ",") + "}", data: data)
  }

  /// Writes a complete folder and returns its path.
  static func folder(
    config: ModelConfig = config(), tensors: [(String, [Int], [Float])]? = nil, dtypeOverride: [String: String] = [:]
  ) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("veil-tiny-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let configJSON = """
      {"model_type":"bert","vocab_size":\(config.vocabularySize),"hidden_size":\(config.hiddenSize),\
      "num_hidden_layers":\(config.layers),"num_attention_heads":\(config.heads),\
      "intermediate_size":\(config.intermediateSize),"max_position_embeddings":\(config.maxPositions),\
      "type_vocab_size":2,"layer_norm_eps":1e-12,"hidden_act":"gelu"}
      """
    try Data(configJSON.utf8).write(to: dir.appendingPathComponent("config.json"))
    try Data((vocabulary.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("vocab.txt"))
    try Data(#"{"do_lower_case": true}"#.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
    let bytes = safetensors(tensors ?? weights(config), dtypeOverride: dtypeOverride)
    try Data(bytes).write(to: dir.appendingPathComponent("model.safetensors"))
    return dir.path
  }
}

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
}

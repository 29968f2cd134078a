import Foundation
import VeilRing
import VeilTestSupport

@testable import VeilModels

/// Writes a tiny BERT model folder (config.json, vocab.txt, model.safetensors with random F32
/// weights) so graph and error-path tests need no download.
enum TinyBertFixture {
  static let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", ".", "##s", "a", "dog"]

  static func config() -> ModelConfig { TinyBert.config(vocabularySize: vocabulary.count, maxPositions: 16) }

  /// The shared tiny-BERT weights as F32 tensors.
  static func weights(_ config: ModelConfig, seed: UInt64 = 1) -> [(String, [Int], [Float])] {
    TinyBert.weightTensors(config, seed: seed).map { ($0.0, $0.1, $0.2.map(Float.init)) }
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

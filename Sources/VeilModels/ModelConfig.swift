// Hugging Face `config.json` (public architecture) for BERT, with the fields GPT-2 and LLaMA
// models will need, and sentence-transformers' `sentence_bert_config.json` length limit.
import Foundation

/// Which Transformer family a config describes.
public enum ModelArchitecture: String, Sendable, Codable {
  case bert, gpt2, llama
}

/// The public shape of a Transformer model, read from `config.json`.
public struct ModelConfig: Sendable, Equatable, Codable {
  public var architecture: ModelArchitecture
  public var vocabularySize: Int
  public var hiddenSize: Int
  public var layers: Int
  public var heads: Int
  /// Key/value heads (LLaMA grouped-query attention); equals `heads` elsewhere.
  public var keyValueHeads: Int
  public var intermediateSize: Int
  public var maxPositions: Int
  public var typeVocabularySize: Int
  public var normEpsilon: Double
  public var hiddenActivation: String
  /// RoPE base (LLaMA).
  public var ropeTheta: Double
  /// sentence-transformers' `max_seq_length`, when the folder has one.
  public var maxSequenceLength: Int?
  /// `tie_word_embeddings`: the LM head reads the token table (nil: tied, as GPT-2's is;
  /// optional so that manifests written before decoders existed still decode).
  public var tieWordEmbeddings: Bool?

  /// Whether the LM head is the token embedding table.
  public var tiedEmbeddings: Bool { tieWordEmbeddings ?? true }

  public var headDimension: Int { hiddenSize / heads }

  /// The longest input the model accepts (DESIGN §9): `max_seq_length`, else `max_position_embeddings`.
  public var tokenLimit: Int { min(maxSequenceLength ?? maxPositions, maxPositions) }

  public init(
    architecture: ModelArchitecture, vocabularySize: Int, hiddenSize: Int, layers: Int, heads: Int,
    keyValueHeads: Int? = nil, intermediateSize: Int, maxPositions: Int,
    typeVocabularySize: Int = 2,
    normEpsilon: Double = 1e-12, hiddenActivation: String = "gelu", ropeTheta: Double = 10000,
    maxSequenceLength: Int? = nil, tiedEmbeddings: Bool = true
  ) {
    self.architecture = architecture
    self.vocabularySize = vocabularySize
    self.hiddenSize = hiddenSize
    self.layers = layers
    self.heads = heads
    self.keyValueHeads = keyValueHeads ?? heads
    self.intermediateSize = intermediateSize
    self.maxPositions = maxPositions
    self.typeVocabularySize = typeVocabularySize
    self.normEpsilon = normEpsilon
    self.hiddenActivation = hiddenActivation
    self.ropeTheta = ropeTheta
    self.maxSequenceLength = maxSequenceLength
    tieWordEmbeddings = tiedEmbeddings
  }

  /// Reads `config.json` (and `sentence_bert_config.json` if present) from a model folder.
  public init(modelDirectory: String) throws(ModelError) {
    let path = (modelDirectory as NSString).appendingPathComponent("config.json")
    let object = try readJSONObject(path: path)
    func int(_ keys: String...) throws(ModelError) -> Int {
      for key in keys {
        if let v = object[key] as? NSNumber, let i = Int(exactly: v.doubleValue) { return i }
      }
      throw .malformed(path: path, reason: "missing integer field '\(keys[0])'")
    }
    func optionalInt(_ key: String) -> Int? {
      (object[key] as? NSNumber).flatMap { Int(exactly: $0.doubleValue) }
    }
    func double(_ key: String, default value: Double) -> Double {
      (object[key] as? NSNumber)?.doubleValue ?? value
    }
    let modelType = (object["model_type"] as? String)?.lowercased() ?? ""
    switch modelType {
    case "bert":
      self.init(
        architecture: .bert, vocabularySize: try int("vocab_size"),
        hiddenSize: try int("hidden_size"),
        layers: try int("num_hidden_layers"), heads: try int("num_attention_heads"),
        intermediateSize: try int("intermediate_size"),
        maxPositions: try int("max_position_embeddings"),
        typeVocabularySize: optionalInt("type_vocab_size") ?? 2,
        normEpsilon: double("layer_norm_eps", default: 1e-12),
        hiddenActivation: object["hidden_act"] as? String ?? "gelu")
    case "gpt2":
      let hidden = try int("n_embd", "hidden_size")
      self.init(
        architecture: .gpt2, vocabularySize: try int("vocab_size"), hiddenSize: hidden,
        layers: try int("n_layer", "num_hidden_layers"),
        heads: try int("n_head", "num_attention_heads"),
        intermediateSize: optionalInt("n_inner") ?? 4 * hidden,
        maxPositions: try int("n_positions", "max_position_embeddings"), typeVocabularySize: 0,
        normEpsilon: double("layer_norm_epsilon", default: 1e-5),
        hiddenActivation: object["activation_function"] as? String ?? "gelu_new",
        tiedEmbeddings: object["tie_word_embeddings"] as? Bool ?? true)
      guard tiedEmbeddings else {
        throw .unsupported(path: path, reason: "an untied GPT-2 LM head")
      }
    case "llama":
      self.init(
        architecture: .llama, vocabularySize: try int("vocab_size"),
        hiddenSize: try int("hidden_size"),
        layers: try int("num_hidden_layers"), heads: try int("num_attention_heads"),
        keyValueHeads: optionalInt("num_key_value_heads"),
        intermediateSize: try int("intermediate_size"),
        maxPositions: try int("max_position_embeddings"), typeVocabularySize: 0,
        normEpsilon: double("rms_norm_eps", default: 1e-6),
        hiddenActivation: object["hidden_act"] as? String ?? "silu",
        ropeTheta: double("rope_theta", default: 10000),
        tiedEmbeddings: object["tie_word_embeddings"] as? Bool ?? false)
      if let headDim = optionalInt("head_dim"), headDim * heads != hiddenSize {
        throw .unsupported(
          path: path,
          reason: "head_dim \(headDim) × \(heads) heads differs from hidden size \(hiddenSize)")
      }
      if let scaling = object["rope_scaling"], !(scaling is NSNull) {
        throw .unsupported(path: path, reason: "rope_scaling (Veil rotates by rope_theta only)")
      }
      if object["attention_bias"] as? Bool == true || object["mlp_bias"] as? Bool == true {
        throw .unsupported(path: path, reason: "attention or MLP biases (LLaMA has none)")
      }
      guard heads % keyValueHeads == 0, headDimension % 2 == 0 else {
        throw .malformed(
          path: path, reason: "\(heads) heads do not share \(keyValueHeads) key/value heads evenly")
      }
    default:
      throw .unsupported(
        path: path, reason: "model_type '\(modelType)' (Veil knows bert, gpt2, llama)")
    }
    for (name, value) in [
      ("vocabulary size", vocabularySize), ("hidden size", hiddenSize), ("layers", layers),
      ("heads", heads), ("intermediate size", intermediateSize), ("positions", maxPositions),
    ] where value <= 0 {
      throw .malformed(path: path, reason: "\(name) must be positive, is \(value)")
    }
    guard hiddenSize % heads == 0 else {
      throw .malformed(
        path: path, reason: "hidden size \(hiddenSize) is not a multiple of \(heads) heads")
    }
    let sbert = (modelDirectory as NSString).appendingPathComponent("sentence_bert_config.json")
    if FileManager.default.fileExists(atPath: sbert) {
      let limit = try readJSONObject(path: sbert)["max_seq_length"] as? NSNumber
      if let limit, let value = Int(exactly: limit.doubleValue), value > 0 {
        maxSequenceLength = value
      }
    }
  }
}

/// Reads a JSON file whose top level is an object.
func readJSONObject(path: String) throws(ModelError) -> [String: Any] {
  guard FileManager.default.fileExists(atPath: path) else { throw .missingFile(path: path) }
  let data: Data
  do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
    throw .malformed(path: path, reason: "cannot read: \(error.localizedDescription)")
  }
  let json: Any
  do { json = try JSONSerialization.jsonObject(with: data) } catch {
    throw .malformed(path: path, reason: "not valid JSON")
  }
  guard let object = json as? [String: Any] else {
    throw .malformed(path: path, reason: "not a JSON object")
  }
  return object
}

// A sentence-embedding model folder (config, tokenizer, weights) and the text → tokens →
// embedding path shared by the CLI and the tests, independent of the engine.
import Foundation
import VeilRing

/// A loaded sentence-embedding model: public config and tokenizer, private weights file.
public struct SentenceEmbedder: Sendable {
  public let directory: String
  public let config: ModelConfig
  public let tokenizer: WordPieceTokenizer
  public let weightsFile: SafeTensorsFile
  public let bert: BertModel

  /// Opens a model folder and validates every file: config, tokenizer, and each weight's
  /// presence, dtype and shape (no weight values are read yet).
  public init(modelDirectory: String) throws(ModelError) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: modelDirectory, isDirectory: &isDirectory), isDirectory.boolValue
    else { throw .missingFile(path: modelDirectory) }
    directory = modelDirectory
    config = try ModelConfig(modelDirectory: modelDirectory)
    guard config.architecture == .bert else {
      throw .unsupported(
        path: (modelDirectory as NSString).appendingPathComponent("config.json"),
        reason: "sentence embeddings need a BERT model, this is \(config.architecture.rawValue)")
    }
    tokenizer = try WordPieceTokenizer(modelDirectory: modelDirectory)
    weightsFile = try SafeTensorsFile(path: (modelDirectory as NSString).appendingPathComponent("model.safetensors"))
    let prefix = weightsFile.entries["bert.embeddings.word_embeddings.weight"] != nil ? "bert." : ""
    bert = BertModel(config: config, prefix: prefix)
    for (id, shape) in bert.expectedWeights {
      guard let entry = weightsFile.entries[id.name] else {
        throw .missingTensor(path: weightsFile.path, tensor: id.name)
      }
      guard entry.shape == shape else {
        throw .shapeMismatch(path: weightsFile.path, tensor: id.name, expected: shape, found: entry.shape)
      }
      guard entry.dtype.isReadableAsFloat else {
        throw .unsupported(path: weightsFile.path, reason: "tensor '\(id.name)' has dtype \(entry.dtype.rawValue)")
      }
    }
    guard tokenizer.vocabularySize <= config.vocabularySize else {
      throw .malformed(
        path: tokenizer.sourcePath,
        reason: "\(tokenizer.vocabularySize) tokens exceed the model's vocabulary of \(config.vocabularySize)")
    }
  }

  /// Reads all weights as Float64 (the plaintext reference engine's input).
  public func float64Weights() throws(ModelError) -> Float64Weights {
    try Float64Weights(file: weightsFile, expected: bert.expectedWeights)
  }

  /// Tokenizes `text` for this model. Longer texts are truncated to the model's limit unless
  /// `allowTruncation` is false; a text with no tokens besides [CLS]/[SEP] is an error.
  public func tokenize(_ text: String, allowTruncation: Bool = true) throws -> TokenizedText {
    try Self.tokenize(text, config: config, tokenizer: tokenizer, allowTruncation: allowTruncation)
  }

  /// Tokenizes `text` with a model's public config and tokenizer (what a remote client has).
  public static func tokenize(
    _ text: String, config: ModelConfig, tokenizer: WordPieceTokenizer, allowTruncation: Bool = true
  ) throws -> TokenizedText {
    let limit = config.tokenLimit
    let encoding = tokenizer.encode(text, maxLength: limit)
    guard encoding.untruncatedLength > 2 else { throw TextError.empty }
    if encoding.wasTruncated && !allowTruncation {
      throw TextError.tooLong(tokens: encoding.untruncatedLength, limit: limit)
    }
    return TokenizedText(
      ids: encoding.ids.map(Int.init), truncatedFrom: encoding.wasTruncated ? encoding.untruncatedLength : nil)
  }

  /// The plaintext Float64 sentence embedding of `tokens`.
  public func embed(_ tokens: TokenizedText, weights: Float64Weights) async throws -> [Double] {
    try await bert.sentenceEmbedding(TokenInput(ids: tokens.ids), engine: Float64Engine(weights: weights)).scalars
  }
}

/// A text's token ids, and its original length when it was truncated.
public struct TokenizedText: Sendable, Equatable {
  public let ids: [Int]
  public let truncatedFrom: Int?
}

/// Problems with a text given for inference.
public enum TextError: Error, Equatable, CustomStringConvertible {
  case empty
  case tooLong(tokens: Int, limit: Int)

  public var description: String {
    switch self {
    case .empty: return "the text is empty: it has no tokens"
    case .tooLong(let n, let limit):
      return "the text has \(n) tokens, more than the model's \(limit) (drop --no-truncate to truncate it)"
    }
  }
}

/// Cosine similarity of two vectors (0 when either is zero).
public func cosineSimilarity(_ a: [Double], _ b: [Double]) -> Double {
  var dot = 0.0
  var na = 0.0
  var nb = 0.0
  for (x, y) in zip(a, b) {
    dot += x * y
    na += x * x
    nb += y * y
  }
  return na == 0 || nb == 0 ? 0 : dot / (na.squareRoot() * nb.squareRoot())
}

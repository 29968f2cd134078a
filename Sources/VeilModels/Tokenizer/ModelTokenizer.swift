// ModelTokenizer owns choosing a model folder's tokenizer by its files — WordPiece (BERT) or
// byte-level BPE (GPT-2, SmolLM2) — and one face for both: ids without special tokens added,
// their token strings, and decoding.
import Foundation

public enum ModelTokenizer: Sendable {
  case wordPiece(WordPieceTokenizer)
  case byteLevelBPE(ByteLevelBPETokenizer)

  /// The tokenizer of the folder: tokenizer.json's model type decides; without one, vocab.json
  /// and merges.txt mean GPT-2's BPE and vocab.txt BERT's WordPiece.
  public init(modelDirectory directory: String) throws(ModelError) {
    let file = { (name: String) in (directory as NSString).appendingPathComponent(name) }
    let manager = FileManager.default
    if manager.fileExists(atPath: file("tokenizer.json")) {
      // Parsed once, then read by the tokenizer its model type names.
      let path = file("tokenizer.json")
      let root = try TokenizerFiles.readJSON(path: path)
      switch root["model"]?["type"]?.stringValue {
      case "BPE":
        self = .byteLevelBPE(try ByteLevelBPETokenizer(tokenizerJSON: root, path: path))
      case "WordPiece", nil:
        self = .wordPiece(
          try WordPieceTokenizer(
            definition: TokenizerFiles.readTokenizerJSON(root: root, path: path)))
      case let other?:
        throw .unsupported(path: path, reason: "model type '\(other)'")
      }
    } else if manager.fileExists(atPath: file("vocab.json")) {
      self = .byteLevelBPE(try ByteLevelBPETokenizer(modelDirectory: directory))
    } else {
      self = .wordPiece(try WordPieceTokenizer(modelDirectory: directory))
    }
  }

  /// "wordpiece" or "byte-level-bpe".
  public var kind: String {
    switch self {
    case .wordPiece: "wordpiece"
    case .byteLevelBPE: "byte-level-bpe"
    }
  }

  /// The ids of `text` without special tokens added (special tokens written in it are found).
  public func encode(_ text: String) -> [Int] {
    switch self {
    case .wordPiece(let t): t.contentIds(of: text).map(Int.init)
    case .byteLevelBPE(let t): t.encode(text).map(Int.init)
    }
  }

  /// The token string of each id, as `tokenizers` prints them.
  public func tokens(_ ids: [Int]) -> [String] {
    switch self {
    case .wordPiece(let t): ids.map { t.token(forId: Int32(clamping: $0)) ?? "<unk:\($0)>" }
    case .byteLevelBPE(let t): t.tokens(ids.map { Int32(clamping: $0) })
    }
  }

  /// The text of `ids` (special tokens kept).
  public func decode(_ ids: [Int]) -> String {
    switch self {
    case .wordPiece(let t):
      ids.compactMap { t.token(forId: Int32(clamping: $0)) }.joined(separator: " ")
    case .byteLevelBPE(let t): t.decode(ids.map { Int32(clamping: $0) })
    }
  }
}

// ModelTokenizer owns choosing a model folder's tokenizer by its files — WordPiece (BERT) or
// BPE (byte-level: GPT-2, SmolLM2, LLaMA-3; SentencePiece-style: LLaMA-2) — and one face for
// all: ids without special tokens added, their token strings, and decoding.
import Foundation

public enum ModelTokenizer: Sendable {
  case wordPiece(WordPieceTokenizer)
  case bpe(BPETokenizer)

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
        self = .bpe(try BPETokenizer(tokenizerJSON: root, path: path))
      case "WordPiece", nil:
        self = .wordPiece(
          try WordPieceTokenizer(
            definition: TokenizerFiles.readTokenizerJSON(root: root, path: path)))
      case let other?:
        throw .unsupported(path: path, reason: "model type '\(other)'")
      }
    } else if manager.fileExists(atPath: file("vocab.json")) {
      self = .bpe(try BPETokenizer(modelDirectory: directory))
    } else {
      self = .wordPiece(try WordPieceTokenizer(modelDirectory: directory))
    }
  }

  /// "wordpiece", "byte-level-bpe" or "sentencepiece-bpe".
  public var kind: String {
    switch self {
    case .wordPiece: "wordpiece"
    case .bpe(let t):
      if case .byteLevel = t.scheme { "byte-level-bpe" } else { "sentencepiece-bpe" }
    }
  }

  /// The ids of `text` without special tokens added (special tokens written in it are found).
  public func encode(_ text: String) -> [Int] {
    switch self {
    case .wordPiece(let t): t.contentIds(of: text).map(Int.init)
    case .bpe(let t): t.encode(text).map(Int.init)
    }
  }

  /// The token string of each id, as `tokenizers` prints them.
  public func tokens(_ ids: [Int]) -> [String] {
    switch self {
    case .wordPiece(let t): ids.map { t.token(forId: Int32(clamping: $0)) ?? "<unk:\($0)>" }
    case .bpe(let t): t.tokens(ids.map { Int32(clamping: $0) })
    }
  }

  /// The text of `ids` (special tokens kept).
  public func decode(_ ids: [Int]) -> String {
    switch self {
    case .wordPiece(let t):
      ids.compactMap { t.token(forId: Int32(clamping: $0)) }.joined(separator: " ")
    case .bpe(let t): t.decode(ids.map { Int32(clamping: $0) })
    }
  }
}

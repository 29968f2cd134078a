// WordPieceTokenizer owns the public face of the BERT tokenizer: loading it from a model
// folder and turning text into token ids exactly as Hugging Face `tokenizers` does
// (added tokens, then BertNormalizer, BertPreTokenizer and WordPiece, then [CLS]/[SEP] with
// truncation to a maximum length).

/// A BERT WordPiece tokenizer that gives the same ids as Hugging Face `tokenizers`.
///
/// Load it from a model folder holding `tokenizer.json`, or `vocab.txt` (with an optional
/// `tokenizer_config.json`), then call ``encode(_:maxLength:)``:
///
/// ```swift
/// let tokenizer = try WordPieceTokenizer(modelDirectory: folder)
/// let encoding = tokenizer.encode("Hello, world!", maxLength: 256)
/// // encoding.ids == [101, 7592, 1010, 2088, 999, 102]
/// ```
///
/// - Note: Character classes follow `tokenizers`, not today's Unicode: punctuation, control
///   and non-spacing-mark tables are Unicode 9.0, as in the Rust crate `tokenizers` uses.
///   Lowercasing uses Swift's tables and NFD uses Foundation's; they differ from `tokenizers`
///   only for characters whose mappings changed between Unicode versions, if any.
public struct WordPieceTokenizer: Sendable {
  /// The ids of one encoded text.
  public struct Encoding: Sendable, Equatable {
    /// Token ids, with the classifier token first and the separator token last.
    public var ids: [Int32]
    /// Whether tokens were dropped to respect the maximum length.
    public var wasTruncated: Bool
    /// How many ids the text has without truncation, special tokens included.
    public var untruncatedLength: Int

    /// Creates an encoding.
    public init(ids: [Int32], wasTruncated: Bool, untruncatedLength: Int) {
      self.ids = ids
      self.wasTruncated = wasTruncated
      self.untruncatedLength = untruncatedLength
    }
  }

  /// The file the tokenizer was read from (tokenizer.json or vocab.txt).
  public let sourcePath: String
  /// The number of rows an embedding table needs: one more than the largest token id.
  public let vocabularySize: Int
  /// The id put before the text (`[CLS]`).
  public let clsId: Int32
  /// The id put after the text (`[SEP]`).
  public let sepId: Int32
  /// The id used to pad to a fixed length (`[PAD]`).
  public let padId: Int32
  /// The id of a word that cannot be split into known pieces (`[UNK]`).
  public let unkId: Int32

  private let normalizer: BertNormalizer
  private let vocabulary: WordPieceVocabulary
  /// Added tokens searched in the raw text, and those searched in the normalised text.
  private let rawAddedTokens: AddedTokenMatcher
  private let normalizedAddedTokens: AddedTokenMatcher
  private let prefixIds: [Int32]
  private let suffixIds: [Int32]
  /// Token text by id, for ``tokens(_:maxLength:)`` and ``token(forId:)``.
  private let tokenById: [String?]

  /// Loads the tokenizer of a model folder.
  ///
  /// `tokenizer.json` is preferred (its normalizer, pre-tokenizer, WordPiece model, added
  /// tokens and post-processor are honoured; its truncation and padding are ignored). Without
  /// it, `vocab.txt` is read with the settings of `tokenizer_config.json` and
  /// `special_tokens_map.json` when present, else BERT-uncased defaults.
  ///
  /// - Parameter modelDirectory: The model folder.
  /// - Throws: `ModelError.missingFile` when the folder or both tokenizer files are missing,
  ///   `.malformed` when a file cannot be parsed or lacks a required field, `.unsupported`
  ///   when it describes a tokenizer other than BERT WordPiece.
  public init(modelDirectory: String) throws(ModelError) {
    try self.init(definition: TokenizerFiles.load(directory: modelDirectory))
  }

  init(definition: TokenizerDefinition) throws(ModelError) {
    let path = definition.path
    var vocabulary = WordPieceVocabulary(
      entries: definition.vocabulary,
      continuingSubwordPrefix: Array(definition.continuingSubwordPrefix.unicodeScalars),
      unknownId: 0, maxInputCharsPerWord: definition.maxInputCharsPerWord)
    guard let unkId = vocabulary.id(of: Array(definition.unknownToken.unicodeScalars)) else {
      throw ModelError.malformed(
        path: path, reason: "the unknown token '\(definition.unknownToken)' is not in the vocabulary")
    }
    vocabulary.unknownId = unkId
    self.vocabulary = vocabulary
    self.unkId = unkId

    guard let clsId = definition.prefixIds.first, let sepId = definition.suffixIds.last else {
      throw ModelError.unsupported(
        path: path, reason: "the post-processor must add a token before and after the text ([CLS] and [SEP])")
    }
    self.clsId = clsId
    self.sepId = sepId
    prefixIds = definition.prefixIds
    suffixIds = definition.suffixIds

    let padScalars = Array(definition.padToken.unicodeScalars)
    guard
      let padId = definition.declaredPadId
        ?? definition.addedTokens.last(where: { $0.content == padScalars })?.id
        ?? self.vocabulary.id(of: padScalars)
    else {
      throw ModelError.malformed(
        path: path, reason: "no padding id: the padding token '\(definition.padToken)' is not in the vocabulary")
    }
    self.padId = padId

    normalizer = definition.normalizer
    rawAddedTokens = AddedTokenMatcher(tokens: definition.addedTokens.filter { !$0.normalized })
    let normalizer = definition.normalizer
    normalizedAddedTokens = AddedTokenMatcher(
      tokens: definition.addedTokens.filter(\.normalized),
      pattern: { normalizer.normalize($0.content[...]) })

    // Token text by id: the vocabulary, then added tokens over it (as `tokenizers` looks up
    // added tokens first).
    var largestId: Int32 = -1
    for entry in definition.vocabulary { largestId = max(largestId, entry.id) }
    for token in definition.addedTokens { largestId = max(largestId, token.id) }
    for id in definition.prefixIds + definition.suffixIds + [padId] { largestId = max(largestId, id) }
    // Ids should be dense; a stray huge id must not make us allocate gigabytes.
    let entryCount = definition.vocabulary.count + definition.addedTokens.count
    guard Int(largestId) < 4 * entryCount + 1024 else {
      throw ModelError.malformed(
        path: path, reason: "token id \(largestId) is far beyond the \(entryCount) tokens defined")
    }
    var tokenById = [String?](repeating: nil, count: Int(largestId) + 1)
    for entry in definition.vocabulary {
      tokenById[Int(entry.id)] = String(String.UnicodeScalarView(entry.token))
    }
    for token in definition.addedTokens {
      tokenById[Int(token.id)] = String(String.UnicodeScalarView(token.content))
    }
    self.tokenById = tokenById
    vocabularySize = tokenById.count
    sourcePath = path
  }

  /// Encodes one text: `[CLS]`, the WordPiece ids of the text, `[SEP]`.
  ///
  /// With `maxLength`, the text's ids are cut to `maxLength - 2` (keeping the first ones) and
  /// `[CLS]`/`[SEP]` are added after, so the result has at most `maxLength` ids, as
  /// `tokenizers` does with truncation enabled. A `maxLength` below 2 keeps no text ids.
  ///
  /// - Parameters:
  ///   - text: Any text; nothing in it makes encoding fail.
  ///   - maxLength: The most ids to return, special tokens included; nil for no limit.
  /// - Returns: The ids, whether they were truncated, and the untruncated length.
  public func encode(_ text: String, maxLength: Int? = nil) -> Encoding {
    var contentIds = contentIds(of: text)
    let untruncatedLength = contentIds.count + prefixIds.count + suffixIds.count
    var wasTruncated = false
    if let maxLength {
      let limit = max(0, maxLength - prefixIds.count - suffixIds.count)
      if contentIds.count > limit {
        contentIds.removeSubrange(limit...)
        wasTruncated = true
      }
    }
    return Encoding(
      ids: prefixIds + contentIds + suffixIds, wasTruncated: wasTruncated,
      untruncatedLength: untruncatedLength)
  }

  /// The token strings of ``encode(_:maxLength:)``'s ids, for debugging
  /// (e.g. `["[CLS]", "token", "##izer", "[SEP]"]`).
  public func tokens(_ text: String, maxLength: Int? = nil) -> [String] {
    encode(text, maxLength: maxLength).ids.map { token(forId: $0) ?? "<\($0)>" }
  }

  /// The text of the token with id `id`, or nil if no token has it.
  public func token(forId id: Int32) -> String? {
    guard id >= 0, Int(id) < tokenById.count else { return nil }
    return tokenById[Int(id)]
  }

  /// The ids of the text alone, before special tokens and truncation (`tokenizers`'
  /// `add_special_tokens=False`).
  public func contentIds(of text: String) -> [Int32] {
    let raw = Array(text.unicodeScalars)
    var ids: [Int32] = []
    ids.reserveCapacity(raw.count / 3 + 4)
    for piece in rawAddedTokens.split(raw, 0..<raw.count) {
      switch piece {
      case .token(let id):
        ids.append(id)
      case .text(let range):
        let normalized = normalizer.normalize(raw[range])
        for inner in normalizedAddedTokens.split(normalized, 0..<normalized.count) {
          switch inner {
          case .token(let id):
            ids.append(id)
          case .text(let innerRange):
            BertPreTokenizer.forEachWord(in: normalized, innerRange) { word in
              vocabulary.appendIds(ofWord: normalized[word], to: &ids)
            }
          }
        }
      }
    }
    return ids
  }
}

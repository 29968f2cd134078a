// TokenizerFiles owns reading a tokenizer from a model folder: tokenizer.json when present,
// else vocab.txt with tokenizer_config.json (and special_tokens_map.json) and the settings
// `transformers` gives a BERT tokenizer converted from them. Every problem becomes a
// `ModelError` naming the file.
//
// The truncation and padding sections of tokenizer.json are ignored on purpose (DESIGN §9:
// Veil chooses the maximum length, and padding never enters mean pooling).
import Foundation

/// Everything a `WordPieceTokenizer` is built from, independent of which files it came from.
struct TokenizerDefinition: Sendable {
  /// The file the definition was read from, for error messages.
  var path: String
  var normalizer: BertNormalizer
  /// Vocabulary entries in file order (later duplicates win).
  var vocabulary: [(token: [Unicode.Scalar], id: Int32)]
  var unknownToken: String
  var continuingSubwordPrefix: String
  var maxInputCharsPerWord: Int
  var addedTokens: [AddedToken]
  /// Ids the post-processor puts before and after the text of a single sequence.
  var prefixIds: [Int32]
  var suffixIds: [Int32]
  /// The padding id a tokenizer.json names in its padding section, if any.
  var declaredPadId: Int32?
  /// The padding token to look up when no id is declared.
  var padToken: String
}

/// Readers of the files of a tokenizer.
enum TokenizerFiles {
  /// Reads the tokenizer in `directory`: tokenizer.json if present, else vocab.txt.
  static func load(directory: String) throws(ModelError) -> TokenizerDefinition {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory),
      isDirectory.boolValue
    else { throw ModelError.missingFile(path: directory) }
    let tokenizerJSON = (directory as NSString).appendingPathComponent("tokenizer.json")
    let vocabText = (directory as NSString).appendingPathComponent("vocab.txt")
    if FileManager.default.fileExists(atPath: tokenizerJSON) {
      return try readTokenizerJSON(path: tokenizerJSON)
    }
    if FileManager.default.fileExists(atPath: vocabText) {
      return try readVocabText(path: vocabText, directory: directory)
    }
    throw ModelError.missingFile(path: tokenizerJSON)
  }

  // MARK: - Reading files

  /// The bytes of a file; `missingFile` when it does not exist.
  static func readBytes(path: String) throws(ModelError) -> [UInt8] {
    guard FileManager.default.fileExists(atPath: path) else {
      throw ModelError.missingFile(path: path)
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ModelError.malformed(path: path, reason: "cannot be read")
    }
    return [UInt8](data)
  }

  /// A parsed JSON file; `malformed` with the parser's reason when it is not valid JSON.
  static func readJSON(path: String) throws(ModelError) -> JSONValue {
    let bytes = try readBytes(path: path)
    do {
      return try JSONParser.parse(bytes)
    } catch {
      throw ModelError.malformed(path: path, reason: error.description)
    }
  }

  // MARK: - tokenizer.json

  /// Reads a tokenizer.json whose model is WordPiece, normalizer BertNormalizer (or null),
  /// pre-tokenizer BertPreTokenizer and post-processor TemplateProcessing or BertProcessing.
  static func readTokenizerJSON(path: String) throws(ModelError) -> TokenizerDefinition {
    try readTokenizerJSON(root: try readJSON(path: path), path: path)
  }

  /// The same, from the file's parsed contents.
  static func readTokenizerJSON(root: JSONValue, path: String) throws(ModelError)
    -> TokenizerDefinition
  {
    let fields = FieldReader(path: path)
    guard root.objectValue != nil else {
      throw ModelError.malformed(
        path: path, reason: "the top level is \(root.kindName), not an object")
    }

    // model
    guard let model = root["model"], model.objectValue != nil else {
      throw ModelError.malformed(path: path, reason: "no 'model' object")
    }
    if let type = try fields.optionalString(model, "type", in: "model"), type != "WordPiece" {
      throw ModelError.unsupported(
        path: path, reason: "model type '\(type)' (only WordPiece is supported)")
    }
    guard let vocabMembers = model["vocab"]?.objectValue else {
      throw ModelError.malformed(path: path, reason: "model.vocab is missing or not an object")
    }
    var vocabulary: [(token: [Unicode.Scalar], id: Int32)] = []
    vocabulary.reserveCapacity(vocabMembers.count)
    for (token, value) in vocabMembers {
      let id = try fields.tokenId(value, what: "model.vocab['\(token)']")
      vocabulary.append((Array(token.unicodeScalars), id))
    }
    let unknownToken = try fields.optionalString(model, "unk_token", in: "model") ?? "[UNK]"
    let prefix = try fields.optionalString(model, "continuing_subword_prefix", in: "model") ?? "##"
    let maxChars = try fields.optionalInt(model, "max_input_chars_per_word", in: "model") ?? 100
    guard maxChars >= 0 else {
      throw ModelError.malformed(path: path, reason: "model.max_input_chars_per_word is negative")
    }

    // normalizer
    let normalizer: BertNormalizer
    switch root["normalizer"] {
    case nil, .null?:
      normalizer = .identity
    case let value?:
      let type = try fields.optionalString(value, "type", in: "normalizer")
      guard type == "BertNormalizer" else {
        throw ModelError.unsupported(
          path: path, reason: "normalizer type '\(type ?? "?")' (only BertNormalizer is supported)")
      }
      let lowercase = try fields.optionalBool(value, "lowercase", in: "normalizer") ?? true
      normalizer = BertNormalizer(
        cleanText: try fields.optionalBool(value, "clean_text", in: "normalizer") ?? true,
        handleChineseChars: try fields.optionalBool(value, "handle_chinese_chars", in: "normalizer")
          ?? true,
        stripAccents: try fields.optionalBool(value, "strip_accents", in: "normalizer")
          ?? lowercase,
        lowercase: lowercase)
    }

    // pre_tokenizer
    var preTokenizerType: String?
    if let preTokenizer = root["pre_tokenizer"], !preTokenizer.isNull {
      preTokenizerType = try fields.optionalString(preTokenizer, "type", in: "pre_tokenizer")
    }
    guard preTokenizerType == "BertPreTokenizer" else {
      throw ModelError.unsupported(
        path: path,
        reason:
          "pre_tokenizer type '\(preTokenizerType ?? "null")' (only BertPreTokenizer is supported)")
    }

    let addedTokens = try readAddedTokens(root, fields: fields, path: path)

    // post_processor
    guard let postProcessor = root["post_processor"], !postProcessor.isNull else {
      throw ModelError.unsupported(
        path: path, reason: "post_processor is null (a BERT tokenizer must add [CLS] and [SEP])")
    }
    let (prefixIds, suffixIds) = try readPostProcessor(postProcessor, fields: fields)

    // padding: only its id is used, to know which id pads.
    var declaredPadId: Int32?
    var padToken = "[PAD]"
    if let padding = root["padding"], !padding.isNull {
      if let idValue = padding["pad_id"] {
        declaredPadId = try fields.tokenId(idValue, what: "padding.pad_id")
      }
      padToken = try fields.optionalString(padding, "pad_token", in: "padding") ?? padToken
    }

    return TokenizerDefinition(
      path: path, normalizer: normalizer, vocabulary: vocabulary, unknownToken: unknownToken,
      continuingSubwordPrefix: prefix, maxInputCharsPerWord: maxChars, addedTokens: addedTokens,
      prefixIds: prefixIds, suffixIds: suffixIds, declaredPadId: declaredPadId, padToken: padToken)
  }

  /// The `added_tokens` of a tokenizer.json.
  static func readAddedTokens(_ root: JSONValue, fields: FieldReader, path: String)
    throws(ModelError) -> [AddedToken]
  {
    var addedTokens: [AddedToken] = []
    switch root["added_tokens"] {
    case nil, .null?:
      break
    case .array(let entries)?:
      for (index, entry) in entries.enumerated() {
        let place = "added_tokens[\(index)]"
        guard entry.objectValue != nil else {
          throw ModelError.malformed(
            path: path, reason: "\(place) is \(entry.kindName), not an object")
        }
        guard let idValue = entry["id"] else {
          throw ModelError.malformed(path: path, reason: "\(place) has no 'id'")
        }
        guard let content = try fields.optionalString(entry, "content", in: place) else {
          throw ModelError.malformed(path: path, reason: "\(place) has no 'content'")
        }
        addedTokens.append(
          AddedToken(
            id: try fields.tokenId(idValue, what: "\(place).id"),
            content: Array(content.unicodeScalars),
            singleWord: try fields.optionalBool(entry, "single_word", in: place) ?? false,
            leftStrip: try fields.optionalBool(entry, "lstrip", in: place) ?? false,
            rightStrip: try fields.optionalBool(entry, "rstrip", in: place) ?? false,
            normalized: try fields.optionalBool(entry, "normalized", in: place) ?? false,
            special: try fields.optionalBool(entry, "special", in: place) ?? false))
      }
    case let other?:
      throw ModelError.malformed(
        path: path, reason: "added_tokens is \(other.kindName), not an array")
    }

    return addedTokens
  }

  /// The ids a TemplateProcessing or BertProcessing post-processor adds around one sequence.
  private static func readPostProcessor(
    _ value: JSONValue, fields: FieldReader
  ) throws(ModelError) -> (prefix: [Int32], suffix: [Int32]) {
    let path = fields.path
    let type = try fields.optionalString(value, "type", in: "post_processor")
    switch type {
    case "BertProcessing":
      func pair(_ name: String) throws(ModelError) -> Int32 {
        guard let items = value[name]?.arrayValue, items.count == 2, items[0].stringValue != nil
        else {
          throw ModelError.malformed(
            path: path, reason: "post_processor.\(name) is not a [token, id] pair")
        }
        return try fields.tokenId(items[1], what: "post_processor.\(name)[1]")
      }
      return ([try pair("cls")], [try pair("sep")])

    case "TemplateProcessing":
      guard let single = value["single"]?.arrayValue else {
        throw ModelError.malformed(
          path: path, reason: "post_processor.single is missing or not an array")
      }
      let specialTokens = value["special_tokens"]
      var prefix: [Int32] = []
      var suffix: [Int32] = []
      var sawSequence = false
      for (index, piece) in single.enumerated() {
        let place = "post_processor.single[\(index)]"
        if let sequence = piece["Sequence"] {
          guard !sawSequence, sequence["id"]?.stringValue == "A" else {
            throw ModelError.unsupported(
              path: path, reason: "\(place): only one sequence, 'A', is supported")
          }
          sawSequence = true
        } else if let special = piece["SpecialToken"] {
          guard let name = special["id"]?.stringValue else {
            throw ModelError.malformed(
              path: path, reason: "\(place).SpecialToken has no string 'id'")
          }
          guard let entry = specialTokens?[name], let idValues = entry["ids"]?.arrayValue else {
            throw ModelError.malformed(
              path: path,
              reason:
                "\(place): special token '\(name)' has no ids in post_processor.special_tokens")
          }
          for (offset, idValue) in idValues.enumerated() {
            let id = try fields.tokenId(
              idValue, what: "post_processor.special_tokens['\(name)'].ids[\(offset)]")
            if sawSequence { suffix.append(id) } else { prefix.append(id) }
          }
        } else {
          throw ModelError.malformed(
            path: path, reason: "\(place) is neither a Sequence nor a SpecialToken")
        }
      }
      guard sawSequence else {
        throw ModelError.malformed(path: path, reason: "post_processor.single has no Sequence 'A'")
      }
      return (prefix, suffix)

    default:
      throw ModelError.unsupported(
        path: path,
        reason:
          "post_processor type '\(type ?? "?")' (TemplateProcessing or BertProcessing are supported)"
      )
    }
  }

  // MARK: - vocab.txt and tokenizer_config.json

  /// The special tokens of a BERT tokenizer_config.json, in the order `transformers` adds them.
  private static let specialTokenNames = [
    "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
  ]

  /// Reads vocab.txt (one token per line, the id is the line number) with the settings
  /// `transformers`' BERT converter derives from tokenizer_config.json and special_tokens_map.json.
  static func readVocabText(path: String, directory: String) throws(ModelError)
    -> TokenizerDefinition
  {
    let bytes = try readBytes(path: path)
    guard let text = String(validating: bytes, as: UTF8.self) else {
      throw ModelError.malformed(path: path, reason: "not valid UTF-8")
    }
    let lines = splitLinesLikePython(text)
    guard !lines.isEmpty else {
      throw ModelError.malformed(path: path, reason: "the vocabulary is empty")
    }
    guard lines.count <= Int(Int32.max) else {
      throw ModelError.malformed(path: path, reason: "too many lines for 32-bit token ids")
    }
    let vocabulary = lines.enumerated().map { (token: $0.element, id: Int32($0.offset)) }

    // Settings: BertTokenizer's defaults, then tokenizer_config.json, then special_tokens_map.json.
    var lowercase = true
    var chineseChars = true
    var stripAccents: Bool?
    var tokens = [
      "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
      "cls_token": "[CLS]", "mask_token": "[MASK]",
    ]
    var addedTokens: [AddedToken] = []

    let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
    if FileManager.default.fileExists(atPath: configPath) {
      let config = try readJSON(path: configPath)
      let fields = FieldReader(path: configPath)
      guard config.objectValue != nil else {
        throw ModelError.malformed(
          path: configPath, reason: "the top level is \(config.kindName), not an object")
      }
      lowercase = try fields.optionalBool(config, "do_lower_case", in: nil) ?? lowercase
      chineseChars =
        try fields.optionalBool(config, "tokenize_chinese_chars", in: nil) ?? chineseChars
      stripAccents = try fields.optionalBool(config, "strip_accents", in: nil)
      for name in specialTokenNames {
        if let content = try fields.tokenContent(config[name], what: name) {
          tokens[name] = content
        }
      }
      if let decoder = config["added_tokens_decoder"], !decoder.isNull {
        guard let members = decoder.objectValue else {
          throw ModelError.malformed(
            path: configPath, reason: "added_tokens_decoder is not an object")
        }
        for (key, entry) in members {
          let place = "added_tokens_decoder['\(key)']"
          guard let id = Int32(key), id >= 0 else {
            throw ModelError.malformed(
              path: configPath, reason: "\(place): the key is not a token id")
          }
          guard let content = try fields.optionalString(entry, "content", in: place) else {
            throw ModelError.malformed(path: configPath, reason: "\(place) has no 'content'")
          }
          addedTokens.append(
            AddedToken(
              id: id, content: Array(content.unicodeScalars),
              singleWord: try fields.optionalBool(entry, "single_word", in: place) ?? false,
              leftStrip: try fields.optionalBool(entry, "lstrip", in: place) ?? false,
              rightStrip: try fields.optionalBool(entry, "rstrip", in: place) ?? false,
              normalized: try fields.optionalBool(entry, "normalized", in: place) ?? false,
              special: try fields.optionalBool(entry, "special", in: place) ?? false))
        }
      }
    }

    let mapPath = (directory as NSString).appendingPathComponent("special_tokens_map.json")
    if FileManager.default.fileExists(atPath: mapPath) {
      let map = try readJSON(path: mapPath)
      let fields = FieldReader(path: mapPath)
      for name in specialTokenNames {
        if let content = try fields.tokenContent(map[name], what: name) { tokens[name] = content }
      }
    }

    // The special tokens are added tokens (not normalised) unless the config already lists them.
    func vocabularyId(of scalars: [Unicode.Scalar]) -> Int32? {
      vocabulary.last(where: { $0.token == scalars })?.id
    }
    func id(of token: String) -> Int32? {
      let scalars = Array(token.unicodeScalars)
      return addedTokens.last(where: { $0.content == scalars })?.id ?? vocabularyId(of: scalars)
    }
    for name in specialTokenNames {
      guard let content = tokens[name] else { continue }
      let scalars = Array(content.unicodeScalars)
      if addedTokens.contains(where: { $0.content == scalars }) { continue }
      if let id = vocabularyId(of: scalars) {
        addedTokens.append(AddedToken(id: id, content: scalars, special: true))
      }
    }

    let cls = tokens["cls_token"] ?? "[CLS]"
    let sep = tokens["sep_token"] ?? "[SEP]"
    guard let clsId = id(of: cls) else {
      throw ModelError.malformed(
        path: path, reason: "the classifier token '\(cls)' is not in the vocabulary")
    }
    guard let sepId = id(of: sep) else {
      throw ModelError.malformed(
        path: path, reason: "the separator token '\(sep)' is not in the vocabulary")
    }

    return TokenizerDefinition(
      path: path,
      normalizer: BertNormalizer(
        cleanText: true, handleChineseChars: chineseChars, stripAccents: stripAccents ?? lowercase,
        lowercase: lowercase),
      vocabulary: vocabulary, unknownToken: tokens["unk_token"] ?? "[UNK]",
      continuingSubwordPrefix: "##",
      maxInputCharsPerWord: 100, addedTokens: addedTokens, prefixIds: [clsId], suffixIds: [sepId],
      declaredPadId: nil, padToken: tokens["pad_token"] ?? "[PAD]")
  }

  /// Lines as Python's `open(...).readlines()` with `rstrip("\n")` gives them (how
  /// `transformers` reads vocab.txt): "\n", "\r\n" and "\r" all end a line, and a final line
  /// break does not start an empty last line.
  static func splitLinesLikePython(_ text: String) -> [[Unicode.Scalar]] {
    var lines: [[Unicode.Scalar]] = []
    var current: [Unicode.Scalar] = []
    var previousWasCarriageReturn = false
    for scalar in text.unicodeScalars {
      if scalar == "\n" {
        if previousWasCarriageReturn {
          previousWasCarriageReturn = false
          continue
        }
        lines.append(current)
        current.removeAll(keepingCapacity: true)
      } else if scalar == "\r" {
        lines.append(current)
        current.removeAll(keepingCapacity: true)
        previousWasCarriageReturn = true
        continue
      } else {
        current.append(scalar)
      }
      previousWasCarriageReturn = false
    }
    if !current.isEmpty { lines.append(current) }
    return lines
  }
}

/// Typed access to the fields of a JSON object, turning each wrong type into a `ModelError`
/// that names the file and the field.
struct FieldReader {
  let path: String

  private func name(_ key: String, in parent: String?) -> String {
    parent.map { "\($0).\(key)" } ?? key
  }

  /// A string field; nil when absent or null.
  func optionalString(_ object: JSONValue, _ key: String, in parent: String?) throws(ModelError)
    -> String?
  {
    switch object[key] {
    case nil, .null?: return nil
    case .string(let text)?: return text
    case let other?:
      throw ModelError.malformed(
        path: path, reason: "\(name(key, in: parent)) is \(other.kindName), not a string")
    }
  }

  /// A boolean field; nil when absent or null.
  func optionalBool(_ object: JSONValue, _ key: String, in parent: String?) throws(ModelError)
    -> Bool?
  {
    switch object[key] {
    case nil, .null?: return nil
    case .bool(let flag)?: return flag
    case let other?:
      throw ModelError.malformed(
        path: path, reason: "\(name(key, in: parent)) is \(other.kindName), not a boolean")
    }
  }

  /// An integer field; nil when absent or null.
  func optionalInt(_ object: JSONValue, _ key: String, in parent: String?) throws(ModelError)
    -> Int?
  {
    switch object[key] {
    case nil, .null?: return nil
    case let value?:
      guard let number = value.intValue else {
        throw ModelError.malformed(path: path, reason: "\(name(key, in: parent)) is not an integer")
      }
      return number
    }
  }

  /// A token id: an integer in 0...Int32.max.
  func tokenId(_ value: JSONValue, what: String) throws(ModelError) -> Int32 {
    guard let number = value.intValue, number >= 0, let id = Int32(exactly: number) else {
      throw ModelError.malformed(
        path: path, reason: "\(what) is not a token id (a non-negative 32-bit integer)")
    }
    return id
  }

  /// A special token given as a string or as an AddedToken object with "content".
  func tokenContent(_ value: JSONValue?, what: String) throws(ModelError) -> String? {
    switch value {
    case nil, .null?: return nil
    case .string(let text)?: return text
    case let object?:
      guard let content = object["content"]?.stringValue else {
        throw ModelError.malformed(
          path: path, reason: "\(what) is neither a string nor an object with 'content'")
      }
      return content
    }
  }
}

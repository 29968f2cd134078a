// ByteLevelBPEFiles owns reading a byte-level BPE tokenizer from a model folder: tokenizer.json
// with a BPE model (GPT-2, SmolLM2, LLaMA-3 style), else GPT-2's original vocab.json +
// merges.txt. Every problem becomes a `ModelError` naming the file.
import Foundation

extension ByteLevelBPETokenizer {
  /// The tokenizer in `directory`: tokenizer.json if present, else vocab.json and merges.txt.
  public init(modelDirectory directory: String) throws(ModelError) {
    let json = (directory as NSString).appendingPathComponent("tokenizer.json")
    if FileManager.default.fileExists(atPath: json) {
      try self.init(tokenizerJSON: json)
    } else {
      try self.init(
        vocabJSON: (directory as NSString).appendingPathComponent("vocab.json"),
        mergesText: (directory as NSString).appendingPathComponent("merges.txt"))
    }
  }

  /// A tokenizer.json whose model is BPE over GPT-2's byte alphabet.
  init(tokenizerJSON path: String) throws(ModelError) {
    try self.init(tokenizerJSON: try TokenizerFiles.readJSON(path: path), path: path)
  }

  /// The same, from the file's parsed contents.
  init(tokenizerJSON root: JSONValue, path: String) throws(ModelError) {
    let fields = FieldReader(path: path)
    guard let model = root["model"], model.objectValue != nil else {
      throw .malformed(path: path, reason: "no 'model' object")
    }
    guard try fields.optionalString(model, "type", in: "model") == "BPE" else {
      throw .unsupported(path: path, reason: "model type is not BPE")
    }
    if try fields.optionalBool(model, "byte_fallback", in: "model") == true {
      throw .unsupported(
        path: path, reason: "BPE with byte_fallback (SentencePiece style) is not supported yet")
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
      if let value = try fields.optionalString(model, key, in: "model"), !value.isEmpty {
        throw .unsupported(path: path, reason: "model.\(key) '\(value)'")
      }
    }
    guard let vocab = model["vocab"]?.objectValue else {
      throw .malformed(path: path, reason: "model.vocab is missing or not an object")
    }
    var vocabulary: [(token: String, id: Int32)] = []
    vocabulary.reserveCapacity(vocab.count)
    for (token, value) in vocab {
      vocabulary.append((token, try fields.tokenId(value, what: "model.vocab['\(token)']")))
    }
    var merges: [(String, String)] = []
    for (index, entry) in (model["merges"]?.arrayValue ?? []).enumerated() {
      switch entry {
      case .string(let line):
        guard let pair = Self.mergePair(line[...]) else {
          throw .malformed(path: path, reason: "model.merges[\(index)] is not two tokens")
        }
        merges.append(pair)
      case .array(let pair):
        guard pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue else {
          throw .malformed(path: path, reason: "model.merges[\(index)] is not a pair of tokens")
        }
        merges.append((a, b))
      default:
        throw .malformed(path: path, reason: "model.merges[\(index)] is \(entry.kindName)")
      }
    }
    switch root["normalizer"] {
    case nil, .null?: break
    default: throw .unsupported(path: path, reason: "a normalizer before byte-level BPE")
    }
    let (preTokenizer, addPrefixSpace) = try Self.readPreTokenizer(
      root["pre_tokenizer"], fields: fields)
    try self.init(
      vocabulary: vocabulary, merges: merges,
      addedTokens: try TokenizerFiles.readAddedTokens(root, fields: fields, path: path),
      preTokenizer: preTokenizer, addPrefixSpace: addPrefixSpace,
      ignoreMerges: try fields.optionalBool(model, "ignore_merges", in: "model") ?? false,
      unknownToken: try fields.optionalString(model, "unk_token", in: "model"), path: path)
  }

  /// ByteLevel (GPT-2's regex), or Sequence[Digits(individual_digits), ByteLevel] (SmolLM2).
  static func readPreTokenizer(_ value: JSONValue?, fields: FieldReader) throws(ModelError) -> (
    PreTokenizer, Bool
  ) {
    let path = fields.path
    func byteLevel(_ value: JSONValue, _ place: String) throws(ModelError) -> Bool {
      guard try fields.optionalString(value, "type", in: place) == "ByteLevel" else {
        throw .unsupported(path: path, reason: "\(place) is not ByteLevel")
      }
      guard try fields.optionalBool(value, "use_regex", in: place) ?? true else {
        throw .unsupported(
          path: path,
          reason: "\(place) without GPT-2's regex (a Split pattern) is not supported yet")
      }
      return try fields.optionalBool(value, "add_prefix_space", in: place) ?? false
    }
    guard let value, !value.isNull else {
      throw .unsupported(path: path, reason: "a BPE tokenizer without a pre_tokenizer")
    }
    if try fields.optionalString(value, "type", in: "pre_tokenizer") == "Sequence" {
      let steps = value["pretokenizers"]?.arrayValue ?? []
      guard steps.count == 2,
        try fields.optionalString(steps[0], "type", in: "pre_tokenizer.pretokenizers[0]")
          == "Digits",
        try fields.optionalBool(steps[0], "individual_digits", in: "pre_tokenizer.pretokenizers[0]")
          == true
      else {
        throw .unsupported(
          path: path,
          reason: "pre_tokenizer Sequence other than [Digits(individual_digits), ByteLevel]")
      }
      return (.digitsThenGPT2, try byteLevel(steps[1], "pre_tokenizer.pretokenizers[1]"))
    }
    return (.gpt2, try byteLevel(value, "pre_tokenizer"))
  }

  /// GPT-2's original files: vocab.json (token → id) and merges.txt ("#version" line, then one
  /// "a b" pair a line); `<|endoftext|>` is a special token, as `transformers` registers it.
  init(vocabJSON: String, mergesText: String) throws(ModelError) {
    let root = try TokenizerFiles.readJSON(path: vocabJSON)
    let fields = FieldReader(path: vocabJSON)
    guard let members = root.objectValue else {
      throw .malformed(path: vocabJSON, reason: "the top level is \(root.kindName), not an object")
    }
    var vocabulary: [(token: String, id: Int32)] = []
    vocabulary.reserveCapacity(members.count)
    for (token, value) in members {
      vocabulary.append((token, try fields.tokenId(value, what: "'\(token)'")))
    }
    let text = String(decoding: try TokenizerFiles.readBytes(path: mergesText), as: UTF8.self)
    var merges: [(String, String)] = []
    // Lines split on scalars: Swift reads "\r\n" as one Character, so a Character split would
    // leave CRLF lines whole.
    let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
    for (number, scalars) in lines.enumerated() {
      let line = Substring(
        String(String.UnicodeScalarView(scalars.last == "\r" ? scalars.dropLast() : scalars)))
      if line.isEmpty || (number == 0 && line.hasPrefix("#version")) { continue }
      guard let pair = Self.mergePair(line) else {
        throw .malformed(path: mergesText, reason: "line \(number + 1) is not two tokens")
      }
      merges.append(pair)
    }
    let end = Array("<|endoftext|>".unicodeScalars)
    let added = vocabulary.first { $0.token.unicodeScalars.elementsEqual(end) }.map {
      [AddedToken(id: $0.id, content: end, special: true)]
    }
    try self.init(
      vocabulary: vocabulary, merges: merges, addedTokens: added ?? [], preTokenizer: .gpt2,
      addPrefixSpace: false, ignoreMerges: false, unknownToken: nil, path: vocabJSON)
  }

  /// A merge written "a b" (byte-level tokens hold no space: it is "Ġ" in their alphabet).
  static func mergePair(_ line: Substring) -> (String, String)? {
    let parts = line.split(separator: " ", omittingEmptySubsequences: false)
    return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
  }
}

// BPEFiles owns reading a BPE tokenizer from a model folder: tokenizer.json with a BPE model —
// byte-level (GPT-2, SmolLM2, LLaMA-3) or SentencePiece-style with byte fallback (LLaMA-2, in
// Meta's normalizer layout or the newer Metaspace one) — else GPT-2's original vocab.json +
// merges.txt. Every problem becomes a `ModelError` naming the file; layouts this reader does not
// know are refused by name rather than tokenized differently.
import Foundation

extension BPETokenizer {
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

  /// A tokenizer.json whose model is BPE.
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
    let addedTokens = try TokenizerFiles.readAddedTokens(root, fields: fields, path: path)
    let scheme = try Self.readScheme(root, fields: fields)
    let byteFallback = try fields.optionalBool(model, "byte_fallback", in: "model") ?? false
    var stripsLeadingSpace = false
    if case .sentencePiece(let prepend) = scheme {
      if prepend == .always, let token = addedTokens.first(where: \.normalized) {
        throw .unsupported(
          path: path,
          reason:
            "added token '\(String(String.UnicodeScalarView(token.content)))' is matched in normalized text"
        )
      }
      stripsLeadingSpace = try Self.readDecoderStrip(root["decoder"], fields: fields)
    } else if byteFallback {
      throw .unsupported(path: path, reason: "byte_fallback with a byte-level pre-tokenizer")
    }
    try self.init(
      vocabulary: vocabulary, merges: merges, addedTokens: addedTokens, scheme: scheme,
      ignoreMerges: try fields.optionalBool(model, "ignore_merges", in: "model") ?? false,
      byteFallback: byteFallback,
      fuseUnknown: try fields.optionalBool(model, "fuse_unk", in: "model") ?? false,
      decodeStripsLeadingSpace: stripsLeadingSpace,
      unknownToken: try fields.optionalString(model, "unk_token", in: "model"), path: path)
  }

  /// The scheme the normalizer and pre-tokenizer describe: SentencePiece's Prepend("▁") +
  /// Replace(" ", "▁") normalizer with no pre-tokenizer, or a Metaspace pre-tokenizer without
  /// normalizer; else byte-level with one of the pre-tokenizers `readPreTokenizer` knows.
  static func readScheme(_ root: JSONValue, fields: FieldReader) throws(ModelError) -> Scheme {
    let path = fields.path
    let preTokenizer = root["pre_tokenizer"].flatMap { $0.isNull ? nil : $0 }
    switch root["normalizer"] {
    case nil, .null?:
      if let preTokenizer,
        try fields.optionalString(preTokenizer, "type", in: "pre_tokenizer") == "Metaspace"
      {
        return .sentencePiece(try readMetaspace(preTokenizer, fields: fields))
      }
      let (split, addPrefixSpace) = try readPreTokenizer(preTokenizer, fields: fields)
      return .byteLevel(split, addPrefixSpace: addPrefixSpace)
    case let normalizer?:
      let steps = normalizer["normalizers"]?.arrayValue ?? []
      let space = "\u{2581}"
      guard try fields.optionalString(normalizer, "type", in: "normalizer") == "Sequence",
        steps.count == 2,
        try fields.optionalString(steps[0], "type", in: "normalizer[0]") == "Prepend",
        try fields.optionalString(steps[0], "prepend", in: "normalizer[0]") == space,
        try fields.optionalString(steps[1], "type", in: "normalizer[1]") == "Replace",
        let pattern = steps[1]["pattern"],
        try fields.optionalString(pattern, "String", in: "normalizer[1].pattern") == " ",
        try fields.optionalString(steps[1], "content", in: "normalizer[1]") == space
      else {
        throw .unsupported(
          path: path,
          reason:
            "a normalizer other than SentencePiece's Sequence[Prepend(\"▁\"), Replace(\" \", \"▁\")]"
        )
      }
      guard preTokenizer == nil else {
        throw .unsupported(path: path, reason: "a pre_tokenizer after SentencePiece's normalizer")
      }
      return .sentencePiece(.always)
    }
  }

  /// Metaspace("▁", prepend_scheme, split false); older files say add_prefix_space instead.
  static func readMetaspace(_ value: JSONValue, fields: FieldReader) throws(ModelError) -> Prepend {
    let path = fields.path
    guard
      try fields.optionalString(value, "replacement", in: "pre_tokenizer") ?? "\u{2581}"
        == "\u{2581}"
    else {
      throw .unsupported(path: path, reason: "Metaspace with a replacement other than \"▁\"")
    }
    if try fields.optionalBool(value, "split", in: "pre_tokenizer") == true {
      throw .unsupported(path: path, reason: "Metaspace with split true")
    }
    switch try fields.optionalString(value, "prepend_scheme", in: "pre_tokenizer") {
    case "always"?: return .unlessSpaced
    case "first"?: return .firstUnlessSpaced
    case "never"?: return .never
    case nil:
      return try fields.optionalBool(value, "add_prefix_space", in: "pre_tokenizer") ?? true
        ? .unlessSpaced : .never
    case let other?:
      throw .unsupported(path: path, reason: "Metaspace prepend_scheme '\(other)'")
    }
  }

  /// Whether a SentencePiece decoder drops the leading space: a Strip(" ", ≥ 1 left) step (Meta's
  /// Sequence[Replace, ByteFallback, Fuse, Strip]) or a Metaspace decoder that prepends.
  static func readDecoderStrip(_ value: JSONValue?, fields: FieldReader) throws(ModelError) -> Bool
  {
    guard let value, !value.isNull else { return false }
    let steps = value["decoders"]?.arrayValue ?? [value]
    for (index, step) in steps.enumerated() {
      let place = "decoder[\(index)]"
      switch try fields.optionalString(step, "type", in: place) {
      case "Strip"?:
        if try fields.optionalString(step, "content", in: place) == " ",
          (step["start"]?.intValue ?? 0) >= 1
        {
          return true
        }
      case "Metaspace"?:
        return try fields.optionalString(step, "prepend_scheme", in: place) != "never"
      default:
        continue
      }
    }
    return false
  }

  /// ByteLevel (GPT-2's regex), Sequence[Digits(individual_digits), ByteLevel] (SmolLM2) or
  /// Sequence[Split(LLaMA-3's regex, Isolated), ByteLevel(use_regex false)] (LLaMA-3).
  static func readPreTokenizer(_ value: JSONValue?, fields: FieldReader) throws(ModelError) -> (
    PreTokenizer, Bool
  ) {
    let path = fields.path
    func byteLevel(_ value: JSONValue, _ place: String, regex: Bool) throws(ModelError) -> Bool {
      guard try fields.optionalString(value, "type", in: place) == "ByteLevel" else {
        throw .unsupported(path: path, reason: "\(place) is not ByteLevel")
      }
      guard try fields.optionalBool(value, "use_regex", in: place) ?? true == regex else {
        throw .unsupported(
          path: path,
          reason: regex
            ? "\(place) without GPT-2's regex (a Split pattern before it) is not supported"
            : "\(place) applies GPT-2's regex after a Split")
      }
      return try fields.optionalBool(value, "add_prefix_space", in: place) ?? false
    }
    guard let value, !value.isNull else {
      throw .unsupported(path: path, reason: "a BPE tokenizer without a pre_tokenizer")
    }
    guard try fields.optionalString(value, "type", in: "pre_tokenizer") == "Sequence" else {
      return (.gpt2, try byteLevel(value, "pre_tokenizer", regex: true))
    }
    let steps = value["pretokenizers"]?.arrayValue ?? []
    let first = "pre_tokenizer.pretokenizers[0]"
    let second = "pre_tokenizer.pretokenizers[1]"
    guard steps.count == 2 else {
      throw .unsupported(path: path, reason: "a pre_tokenizer Sequence of \(steps.count) steps")
    }
    switch try fields.optionalString(steps[0], "type", in: first) {
    case "Digits"? where try fields.optionalBool(steps[0], "individual_digits", in: first) == true:
      return (.digitsThenGPT2, try byteLevel(steps[1], second, regex: true))
    case "Split"?:
      let pattern = steps[0]["pattern"]
      let regex = try pattern.flatMap { (p: JSONValue) throws(ModelError) in
        try fields.optionalString(p, "Regex", in: "\(first).pattern")
      }
      guard regex == Llama3Split.pattern,
        try fields.optionalString(steps[0], "behavior", in: first) == "Isolated",
        try fields.optionalBool(steps[0], "invert", in: first) != true
      else {
        throw .unsupported(
          path: path, reason: "\(first): a Split other than LLaMA-3's regex, isolated")
      }
      return (.llama3, try byteLevel(steps[1], second, regex: false))
    default:
      throw .unsupported(
        path: path,
        reason:
          "pre_tokenizer Sequence other than [Digits(individual_digits), ByteLevel] or [Split(LLaMA-3), ByteLevel]"
      )
    }
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
      vocabulary: vocabulary, merges: merges, addedTokens: added ?? [],
      scheme: .byteLevel(.gpt2, addPrefixSpace: false), ignoreMerges: false, unknownToken: nil,
      path: vocabJSON)
  }

  /// A merge written "a b" (byte-level tokens hold no space: it is "Ġ" in their alphabet).
  static func mergePair(_ line: Substring) -> (String, String)? {
    let parts = line.split(separator: " ", omittingEmptySubsequences: false)
    return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
  }
}

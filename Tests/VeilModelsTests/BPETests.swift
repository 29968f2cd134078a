// The BPE tokenizers against Hugging Face `tokenizers` (Data/tokenizers, made by
// scripts/reference/make-tokenizer-references.py): GPT-2 from its tokenizer.json and from its
// original vocab.json + merges.txt, SmolLM2 (digits split one by one), LLaMA-3 (its Split regex,
// ignore_merges) and LLaMA-2 (SentencePiece-style with byte fallback, in Meta's layout and the
// Metaspace one), 390+ texts each — bytes, Unicode, spaces, newlines, digits, emoji,
// special-token text — and llama.cpp's GPT-2, llama-spm and llama-bpe vectors. The tokenizer
// files come from `scripts/fetch-model.sh gpt2-tiny`, `… smollm2`, `… llama2-tokenizer` and
// `… llama3-tokenizer`.
import Foundation
import Testing
import VeilTestSupport

@testable import VeilModels

@Suite struct BPETests {
  struct Reference: Decodable {
    struct Case: Decodable {
      let text: String
      let ids: [Int32]
      let tokens: [String]?
      /// `tokenizers`' decode of the ids, special tokens kept (LLaMA-2 files).
      let decoded: String?
    }
    let cases: [Case]
  }

  static func reference(_ name: String) throws -> Reference {
    let url = try #require(
      Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Data/tokenizers"),
      "Data/tokenizers/\(name).json is missing from the test bundle")
    return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
  }

  static let gpt2 = TestModel.directory("gpt2-tiny", variable: "VEIL_GPT2_TINY_DIR")
  static let smollm2 = TestModel.directory("SmolLM2-135M-Instruct", variable: "VEIL_SMOLLM2_DIR")
  static let llama2 = TestModel.directory(
    "llama2-tokenizer", variable: "VEIL_LLAMA2_TOKENIZER_DIR")
  static let llama3 = TestModel.directory(
    "llama3-tokenizer", variable: "VEIL_LLAMA3_TOKENIZER_DIR")
  static func present(_ folder: String) -> Bool {
    FileManager.default.fileExists(atPath: folder + "/config.json")
      || FileManager.default.fileExists(atPath: folder + "/tokenizer.json") || TestModel.isRequired
  }

  /// Every case's ids (and tokens) equal the reference's; mismatches are listed.
  func check(_ tokenizer: BPETokenizer, _ reference: Reference, tokens: Bool = true) {
    var mismatches: [String] = []
    for c in reference.cases {
      let ids = tokenizer.encode(c.text)
      if ids != c.ids || (tokens && c.tokens.map { $0 != tokenizer.tokens(ids) } == true) {
        mismatches.append(
          "\(String(reflecting: String(c.text.prefix(80))))\n  expected \(c.tokens ?? c.ids.map(String.init))\n  got      \(tokenizer.tokens(ids))"
        )
      }
    }
    #expect(
      mismatches.isEmpty,
      "\(mismatches.count) of \(reference.cases.count) differ:\n\(mismatches.prefix(8).joined(separator: "\n"))"
    )
  }

  @Test(.enabled(if: present(gpt2))) func gpt2FromTokenizerJSON() throws {
    let reference = try Self.reference("gpt2")
    #expect(reference.cases.count >= 200)
    check(try BPETokenizer(tokenizerJSON: Self.gpt2 + "/tokenizer.json"), reference)
  }

  @Test(.enabled(if: present(gpt2))) func gpt2FromVocabAndMerges() throws {
    let tokenizer = try BPETokenizer(
      vocabJSON: Self.gpt2 + "/vocab.json", mergesText: Self.gpt2 + "/merges.txt")
    #expect(tokenizer.vocabularySize == 50257)
    check(tokenizer, try Self.reference("gpt2"))
    check(tokenizer, try Self.reference("gpt2-llamacpp"), tokens: false)
  }

  /// merges.txt with CRLF line ends reads like the LF original.
  @Test(.enabled(if: present(gpt2))) func mergesWithCRLFLines() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-crlf-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let merges = try Data(contentsOf: URL(fileURLWithPath: Self.gpt2 + "/merges.txt"))
    var crlf = Data()
    for byte in merges {
      if byte == 0x0A { crlf.append(0x0D) }
      crlf.append(byte)
    }
    try crlf.write(to: URL(fileURLWithPath: folder + "/merges.txt"))
    let tokenizer = try BPETokenizer(
      vocabJSON: Self.gpt2 + "/vocab.json", mergesText: folder + "/merges.txt")
    check(tokenizer, try Self.reference("gpt2"))
  }

  @Test(.enabled(if: present(smollm2))) func smolLM2() throws {
    let tokenizer = try BPETokenizer(modelDirectory: Self.smollm2)
    #expect(tokenizer.vocabularySize == 49152)
    let reference = try Self.reference("smollm2")
    #expect(reference.cases.count >= 200)
    check(tokenizer, reference)
  }

  /// LLaMA-3: byte-level BPE after its Split regex, whole pre-tokens taken before merging.
  @Test(.enabled(if: present(llama3))) func llama3Tokenizer() throws {
    let model = try ModelTokenizer(modelDirectory: Self.llama3)
    #expect(model.kind == "byte-level-bpe")
    guard case .bpe(let tokenizer) = model else { return }
    #expect(tokenizer.vocabularySize == 128_256)
    let reference = try Self.reference("llama3")
    #expect(reference.cases.count >= 200)
    check(tokenizer, reference)
    check(tokenizer, try Self.reference("llama-bpe-llamacpp"), tokens: false)
    for c in reference.cases {
      #expect(
        Array(tokenizer.decode(c.ids).unicodeScalars) == Array(c.text.unicodeScalars),
        "\(String(reflecting: c.text.prefix(60)))")
    }
  }

  /// LLaMA-2 in Meta's layout (a "▁" before every piece of text between added tokens) and in
  /// the Metaspace layout (only before the text's start, and not before a leading space): ids,
  /// pieces, and decoding (byte pieces joined as UTF-8, one leading space dropped).
  @Test(.enabled(if: present(llama2)), arguments: ["tokenizer.json", "tokenizer.metaspace.json"])
  func llama2Tokenizer(file: String) throws {
    let tokenizer = try BPETokenizer(tokenizerJSON: Self.llama2 + "/" + file)
    #expect(tokenizer.vocabularySize == 32_000)
    let metaspace = file.contains("metaspace")
    let reference = try Self.reference(metaspace ? "llama2-metaspace" : "llama2")
    #expect(reference.cases.count >= 200)
    check(tokenizer, reference)
    if !metaspace {
      check(tokenizer, try Self.reference("llama-spm-llamacpp"), tokens: false)
      #expect(try ModelTokenizer(modelDirectory: Self.llama2).kind == "sentencepiece-bpe")
    }
    var wrong: [String] = []
    for c in reference.cases {
      let decoded = tokenizer.decode(c.ids)
      if !decoded.unicodeScalars.elementsEqual(try #require(c.decoded).unicodeScalars) {
        wrong.append("\(String(reflecting: c.text.prefix(60))): \(String(reflecting: decoded))")
      }
    }
    #expect(
      wrong.isEmpty, "\(wrong.count) decodings differ:\n\(wrong.prefix(8).joined(separator: "\n"))")
  }

  /// A LLaMA-2 folder's text side: the begin-of-text token before a plain prompt
  /// (add_bos_token), special tokens written as objects, and a chat template that is not ChatML
  /// refused for chat prompts only.
  @Test(.enabled(if: present(llama2))) func llama2PromptText() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-llama2-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try FileManager.default.copyItem(
      atPath: Self.llama2 + "/tokenizer.json", toPath: folder + "/tokenizer.json")
    try Data(
      #"{"add_bos_token": true, "bos_token": {"content": "<s>", "special": true}, "eos_token": "</s>", "chat_template": "{% for message in messages %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% endfor %}"}"#
        .utf8
    ).write(to: URL(fileURLWithPath: folder + "/tokenizer_config.json"))
    let text = try DecoderText(modelDirectory: folder)
    #expect(try text.promptIds("Hello world", chat: false) == [1, 15043, 3186])
    #expect(text.endOfText == 2)
    #expect(text.chat == nil)
    #expect(throws: ModelError.self) { try text.promptIds("Hello", chat: true) }
    #expect(text.text([15043, 3186, 29991]) == "Hello world!")
  }

  /// LLaMA-3's regex, scalar by scalar: case-insensitive contractions, a non-letter glued to
  /// the word after it, numbers in threes, newlines kept with the whitespace before them.
  @Test func llama3SplitsLikeTheRegex() {
    func pieces(_ text: String) -> [String] {
      Llama3Split.split(Array(text.unicodeScalars)[...]).map {
        String(String.UnicodeScalarView($0))
      }
    }
    #expect(pieces("I'LL don'T 'x") == ["I", "'LL", " don", "'T", " '", "x"])
    #expect(pieces("1234567 (ab") == ["123", "456", "7", " (", "ab"])
    #expect(pieces("a \n\n  b") == ["a", " \n\n", " ", " b"])
    #expect(pieces("x   1") == ["x", "  ", " ", "1"])
    #expect(pieces("ok!!\n\nthen") == ["ok", "!!\n\n", "then"])
    #expect(pieces("end  ") == ["end", "  "])
  }

  /// Decoding GPT-2's ids gives the text back, scalar for scalar (it has a token per byte).
  @Test(.enabled(if: present(gpt2))) func decodingRoundTrips() throws {
    let tokenizer = try BPETokenizer(modelDirectory: Self.gpt2)
    for c in try Self.reference("gpt2").cases {
      #expect(
        Array(tokenizer.decode(c.ids).unicodeScalars) == Array(c.text.unicodeScalars),
        "\(String(reflecting: c.text.prefix(60)))")
    }
  }

  /// GPT-2's regex, scalar by scalar: contractions, optional leading space, the
  /// whitespace-before-a-word rule.
  @Test func gpt2SplitsLikeTheRegex() {
    func pieces(_ text: String) -> [String] {
      GPT2Split.split(Array(text.unicodeScalars)[...]).map {
        String(String.UnicodeScalarView($0))
      }
    }
    #expect(pieces("I'll don't 'S") == ["I", "'ll", " don", "'t", " '", "S"])
    #expect(pieces("a   b") == ["a", "  ", " b"])
    #expect(pieces("x\n\ny") == ["x", "\n", "\n", "y"])
    #expect(pieces("3.14 !!") == ["3", ".", "14", " !!"])
    #expect(pieces("end  ") == ["end", "  "])
  }

  @Test func malformedFilesGiveClearErrors() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-bpe-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try Data(
      #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}, "pre_tokenizer": {"type": "ByteLevel"}}"#
        .utf8
    )
    .write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
    #expect(throws: ModelError.self) { try BPETokenizer(modelDirectory: folder) }
    try Data(
      #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}}"#
        .utf8
    )
    .write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
    #expect(throws: ModelError.self) { try BPETokenizer(modelDirectory: folder) }
    // SentencePiece layouts this reader does not know are refused, not tokenized differently.
    let pieces = (0..<256).map { String(format: "\"<0x%02X>\": %d", $0, $0 + 3) }
    let vocabulary: String = pieces.joined(separator: ", ")
    let model: String =
      #""model": {"type": "BPE", "byte_fallback": true, "vocab": {"<unk>": 0, "▁": 1, "a": 2, "#
      + vocabulary + "}, \"merges\": []}, "
      + #""decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}"#
    let layouts: [(String, Bool)] = [
      (
        #""normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}"#,
        true
      ),
      (
        #""pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}"#,
        true
      ),
      (
        #""pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}"#,
        false
      ),
      (#""normalizer": {"type": "NFKC"}"#, false),
      (
        #""pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated"}, {"type": "ByteLevel", "use_regex": false}]}"#,
        false
      ),
    ]
    for (layout, accepted) in layouts {
      try Data("{\(model), \(layout)}".utf8).write(
        to: URL(fileURLWithPath: folder + "/tokenizer.json"))
      if accepted {
        let tokenizer = try BPETokenizer(modelDirectory: folder)
        // 🦙 is not in the vocabulary: its four UTF-8 bytes as <0xXX> pieces (id = byte + 3).
        let llama: [Int32] = [0xF0, 0x9F, 0xA6, 0x99].map { $0 + 3 }
        #expect(tokenizer.encode("a\u{1F999}") == [1, 2] + llama)
        #expect(tokenizer.decode([1, 2] + llama) == "a\u{1F999}")
        #expect(tokenizer.decode([2] + llama.prefix(2)) == "a\u{FFFD}\u{FFFD}")
      } else {
        #expect(throws: ModelError.self, "\(layout)") { try BPETokenizer(modelDirectory: folder) }
      }
    }
    try Data(
      "{\(model.replacingOccurrences(of: "\"<0x41>\": 68, ", with: "")), \(#""pre_tokenizer": {"type": "Metaspace"}"#)}"
        .utf8
    )
    .write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
    #expect(throws: ModelError.self) { try BPETokenizer(modelDirectory: folder) }
    try Data("{\"model\": 3".utf8).write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
    #expect(throws: ModelError.self) { try ModelTokenizer(modelDirectory: folder) }
  }
}

// The byte-level BPE tokenizer against Hugging Face `tokenizers` (Data/tokenizers, made by
// scripts/reference/make-tokenizer-references.py): GPT-2 from its tokenizer.json and from its
// original vocab.json + merges.txt, SmolLM2 (digits split one by one), 390 texts each — bytes,
// Unicode, spaces, newlines, digits, emoji, special-token text — and llama.cpp's GPT-2 vectors.
// The tokenizer files come from `scripts/fetch-model.sh gpt2-tiny` and `… smollm2`.
import Foundation
import Testing
import VeilTestSupport

@testable import VeilModels

@Suite struct ByteLevelBPETests {
  struct Reference: Decodable {
    struct Case: Decodable {
      let text: String
      let ids: [Int32]
      let tokens: [String]?
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
  static func present(_ folder: String) -> Bool {
    FileManager.default.fileExists(atPath: folder + "/config.json") || TestModel.isRequired
  }

  /// Every case's ids (and tokens) equal the reference's; mismatches are listed.
  func check(_ tokenizer: ByteLevelBPETokenizer, _ reference: Reference, tokens: Bool = true) {
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
    check(try ByteLevelBPETokenizer(tokenizerJSON: Self.gpt2 + "/tokenizer.json"), reference)
  }

  @Test(.enabled(if: present(gpt2))) func gpt2FromVocabAndMerges() throws {
    let tokenizer = try ByteLevelBPETokenizer(
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
    let tokenizer = try ByteLevelBPETokenizer(
      vocabJSON: Self.gpt2 + "/vocab.json", mergesText: folder + "/merges.txt")
    check(tokenizer, try Self.reference("gpt2"))
  }

  @Test(.enabled(if: present(smollm2))) func smolLM2() throws {
    let tokenizer = try ByteLevelBPETokenizer(modelDirectory: Self.smollm2)
    #expect(tokenizer.vocabularySize == 49152)
    let reference = try Self.reference("smollm2")
    #expect(reference.cases.count >= 200)
    check(tokenizer, reference)
  }

  /// Decoding GPT-2's ids gives the text back, scalar for scalar (it has a token per byte).
  @Test(.enabled(if: present(gpt2))) func decodingRoundTrips() throws {
    let tokenizer = try ByteLevelBPETokenizer(modelDirectory: Self.gpt2)
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
    #expect(throws: ModelError.self) { try ByteLevelBPETokenizer(modelDirectory: folder) }
    try Data(
      #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}}"#
        .utf8
    )
    .write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
    #expect(throws: ModelError.self) { try ByteLevelBPETokenizer(modelDirectory: folder) }
    try Data("{\"model\": 3".utf8).write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
    #expect(throws: ModelError.self) { try ModelTokenizer(modelDirectory: folder) }
  }
}

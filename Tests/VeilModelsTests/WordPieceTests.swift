// WordPieceTests own the tests of the BERT WordPiece tokenizer: the reference cases produced
// by Hugging Face `tokenizers` on all-MiniLM-L6-v2 (Data/tokenizer_cases.json), and unit tests
// on tiny hand-made vocabularies.
import Foundation
import Testing
import VeilTestSupport

@testable import VeilModels

/// A temporary model folder holding a small tokenizer, removed by `remove()`.
private struct TemporaryTokenizerFolder {
  let path: String

  init(files: [String: String]) throws {
    path = (NSTemporaryDirectory() as NSString).appendingPathComponent("veil-wordpiece-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    for (name, contents) in files {
      try contents.write(
        toFile: (path as NSString).appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
  }

  func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The vocabulary of the unit tests: ids are line numbers.
private let tinyVocabulary = [
  "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",  // 0...4
  "un", "##aff", "##able", "##a", "##ff",  // 5...9
  "hello", "world", ",", "!", "cafe",  // 10...14
  "中", "国", "a", "##b", "b",  // 15...19
  "σ", "##α", "##σ", "##ς", "—",  // 20...24
  "[", "]", "mask", "caf\u{E9}", "##world",  // 25...29
  "##\u{301}",  // 30
]

private func tinyTokenizer(config: String? = nil) throws -> WordPieceTokenizer {
  var files = ["vocab.txt": tinyVocabulary.joined(separator: "\n") + "\n"]
  if let config { files["tokenizer_config.json"] = config }
  let folder = try TemporaryTokenizerFolder(files: files)
  defer { folder.remove() }
  return try WordPieceTokenizer(modelDirectory: folder.path)
}

/// The text ids of an encoding, without [CLS] (2) and [SEP] (3) of the tiny vocabulary.
private func textIds(_ tokenizer: WordPieceTokenizer, _ text: String) -> [Int32] {
  let ids = tokenizer.encode(text).ids
  #expect(ids.first == 2 && ids.last == 3)
  return Array(ids.dropFirst().dropLast())
}

@Suite("WordPiece tokenizer")
struct WordPieceTests {
  // MARK: - Reference cases from Hugging Face tokenizers

  private struct ReferenceCase: Decodable {
    let text: String
    let ids: [Int32]
  }

  @Test("matches Hugging Face tokenizers on every reference case", .enabled(if: TestModel.shouldRun))
  func referenceCases() throws {
    let tokenizer = try WordPieceTokenizer(modelDirectory: TestModel.directory())
    let url = try #require(
      Bundle.module.url(forResource: "tokenizer_cases", withExtension: "json", subdirectory: "Data"),
      "Data/tokenizer_cases.json is missing from the test bundle")
    let cases = try JSONDecoder().decode([ReferenceCase].self, from: Data(contentsOf: url))
    #expect(cases.count > 0)

    var mismatches: [String] = []
    for testCase in cases {
      let encoding = tokenizer.encode(testCase.text, maxLength: 256)
      if encoding.ids != testCase.ids {
        let expected = testCase.ids.map { tokenizer.token(forId: $0) ?? "<\($0)>" }
        let got = encoding.ids.map { tokenizer.token(forId: $0) ?? "<\($0)>" }
        mismatches.append(
          "text \(String(reflecting: String(testCase.text.prefix(200))))\n  expected \(expected)\n  got      \(got)")
      }
      #expect(encoding.ids.count <= 256)
      #expect(encoding.wasTruncated == (encoding.untruncatedLength > 256))
    }
    for mismatch in mismatches.prefix(5) { Issue.record(Comment(rawValue: mismatch)) }
    #expect(mismatches.isEmpty, "\(mismatches.count) of \(cases.count) reference cases differ")
  }

  @Test("reads MiniLM's special ids and vocabulary size", .enabled(if: TestModel.shouldRun))
  func miniLMSpecialIds() throws {
    let tokenizer = try WordPieceTokenizer(modelDirectory: TestModel.directory())
    #expect(tokenizer.vocabularySize == 30522)
    #expect(tokenizer.clsId == 101)
    #expect(tokenizer.sepId == 102)
    #expect(tokenizer.padId == 0)
    #expect(tokenizer.unkId == 100)
    #expect(tokenizer.encode("hello").ids == [101, 7592, 102])
    #expect(tokenizer.tokens("Hello, world!") == ["[CLS]", "hello", ",", "world", "!", "[SEP]"])
  }

  @Test("vocab.txt fallback matches tokenizer.json", .enabled(if: TestModel.shouldRun))
  func vocabTextFallbackAgrees() throws {
    let model = TestModel.directory()
    let folder = try TemporaryTokenizerFolder(files: [:])
    defer { folder.remove() }
    for name in ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
      try FileManager.default.copyItem(
        atPath: (model as NSString).appendingPathComponent(name),
        toPath: (folder.path as NSString).appendingPathComponent(name))
    }
    let fromJSON = try WordPieceTokenizer(modelDirectory: model)
    let fromText = try WordPieceTokenizer(modelDirectory: folder.path)
    #expect(fromText.sourcePath.hasSuffix("vocab.txt"))
    let text = "Héllo, WORLD! [MASK] 中文 naïve ΣΑΣ tokenization\u{00A0}works \u{200B}x"
    #expect(fromText.encode(text) == fromJSON.encode(text))
    #expect(fromText.padId == fromJSON.padId && fromText.vocabularySize == fromJSON.vocabularySize)
  }

  // MARK: - Tiny vocabulary

  @Test("greedy longest-match-first with ## continuations")
  func greedyMatching() throws {
    let tokenizer = try tinyTokenizer()
    #expect(textIds(tokenizer, "unaffable") == [5, 6, 7])
    #expect(tokenizer.tokens("unaffable") == ["[CLS]", "un", "##aff", "##able", "[SEP]"])
    #expect(textIds(tokenizer, "unaffa") == [5, 6, 8])
    #expect(textIds(tokenizer, "ab") == [17, 18])
    #expect(textIds(tokenizer, "helloworld") == [10, 29])
  }

  @Test("a word with an unmatched part is one [UNK]")
  func unknownWords() throws {
    let tokenizer = try tinyTokenizer()
    #expect(tokenizer.unkId == 1)
    #expect(textIds(tokenizer, "xyz") == [1])
    #expect(textIds(tokenizer, "unx") == [1])  // not "un" + [UNK]
    #expect(textIds(tokenizer, "hello xyz world") == [10, 1, 11])
  }

  @Test("words longer than 100 scalars are [UNK]")
  func overlongWords() throws {
    let tokenizer = try tinyTokenizer()
    let hundred = textIds(tokenizer, "a" + String(repeating: "b", count: 99))
    #expect(hundred == [17] + [Int32](repeating: 18, count: 99))
    #expect(textIds(tokenizer, "a" + String(repeating: "b", count: 100)) == [1])
    // Accents are stripped before WordPiece sees the word: 1 + 100 scalars become 1 + 50.
    let accented = "a" + String(repeating: "b\u{301}", count: 50)
    #expect(textIds(tokenizer, accented) == [17] + [Int32](repeating: 18, count: 50))
    // Without stripping, the limit counts scalars, not Characters: 51 Characters, 101 scalars.
    let cased = try tinyTokenizer(config: #"{"do_lower_case": false}"#)
    #expect(textIds(cased, "a" + String(repeating: "b\u{301}", count: 33)).count == 67)
    #expect(textIds(cased, accented) == [1])
  }

  @Test("punctuation is split off, ASCII and Unicode 9.0 P*")
  func punctuationSplit() throws {
    let tokenizer = try tinyTokenizer()
    #expect(textIds(tokenizer, "hello,world!") == [10, 12, 11, 13])
    #expect(textIds(tokenizer, "hello\u{2014}world") == [10, 24, 11])
    // U+2E4F is Po only since Unicode 11: tokenizers' tables (Unicode 9.0) do not split it.
    #expect(textIds(tokenizer, "hello\u{2E4F}world") == [1])
    // '$' is ASCII punctuation for BERT although Unicode calls it a symbol (Sc).
    #expect(textIds(tokenizer, "hello$") == [10, 1])
  }

  @Test("accents are stripped after NFD; lowercasing is per scalar")
  func accentsAndCase() throws {
    let tokenizer = try tinyTokenizer()
    #expect(textIds(tokenizer, "Café") == [14])
    #expect(textIds(tokenizer, "CAFE\u{301}") == [14])
    #expect(textIds(tokenizer, "HeLLo") == [10])
    // Rust's char::to_lowercase has no final-sigma rule: the last Σ becomes σ, not ς.
    #expect(textIds(tokenizer, "ΣΑΣ") == [20, 21, 22])
  }

  @Test("with do_lower_case false nothing is lowercased or stripped")
  func casedConfig() throws {
    let tokenizer = try tinyTokenizer(config: #"{"do_lower_case": false}"#)
    #expect(textIds(tokenizer, "Hello") == [1])
    #expect(textIds(tokenizer, "hello") == [10])
    // Exact scalars, no canonical equivalence: "caf\u{E9}" is one token, "cafe" + U+0301 two.
    #expect(textIds(tokenizer, "caf\u{E9}") == [28])
    #expect(textIds(tokenizer, "cafe\u{301}") == [14, 30])
  }

  @Test("CJK ideographs are words of their own")
  func chineseCharacters() throws {
    let tokenizer = try tinyTokenizer()
    #expect(textIds(tokenizer, "中国") == [15, 16])
    #expect(textIds(tokenizer, "a中b") == [17, 15, 19])
  }

  @Test("clean_text drops controls and maps whitespace")
  func cleanText() throws {
    let tokenizer = try tinyTokenizer()
    #expect(textIds(tokenizer, "hel\u{200B}lo\u{00A0}world") == [10, 11])
    #expect(textIds(tokenizer, "\u{0}hello\u{FFFD}\t\n\r world\u{0B}") == [10, 11])
    #expect(textIds(tokenizer, "") == [])
    #expect(textIds(tokenizer, " \t\n ") == [])
  }

  @Test("special tokens in the text are matched before normalisation")
  func specialTokensInText() throws {
    let tokenizer = try tinyTokenizer()
    #expect(textIds(tokenizer, "hello [MASK] world") == [10, 4, 11])
    #expect(textIds(tokenizer, "hello[MASK]world") == [10, 4, 11])
    #expect(textIds(tokenizer, "[mask]") == [25, 27, 26])
  }

  @Test("truncation keeps [CLS], the first maxLength - 2 tokens and [SEP]")
  func truncation() throws {
    let tokenizer = try tinyTokenizer()
    let full = tokenizer.encode("hello world hello")
    #expect(full.ids == [2, 10, 11, 10, 3])
    #expect(!full.wasTruncated && full.untruncatedLength == 5)

    let exact = tokenizer.encode("hello world hello", maxLength: 5)
    #expect(exact == full)

    let cut = tokenizer.encode("hello world hello", maxLength: 4)
    #expect(cut.ids == [2, 10, 11, 3])
    #expect(cut.wasTruncated && cut.untruncatedLength == 5)

    #expect(tokenizer.encode("unaffable", maxLength: 3).ids == [2, 5, 3])  // cuts inside a word
    #expect(tokenizer.encode("hello", maxLength: 1).ids == [2, 3])
    #expect(tokenizer.encode("", maxLength: 2) == .init(ids: [2, 3], wasTruncated: false, untruncatedLength: 2))
  }

  // MARK: - tokenizer.json

  private static func tokenizerJSON(
    vocab: [String] = tinyVocabulary, normalizer: String = #"{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}"#,
    postProcessor: String = #"{"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}"#,
    model: String? = nil
  ) -> String {
    let vocabJSON = vocab.enumerated().map { index, token in
      "\"\(token.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\": \(index)"
    }.joined(separator: ", ")
    let modelJSON =
      model
      ?? ###"{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {"###
      + vocabJSON + "}}"
    return """
      {"version": "1.0", "truncation": {"max_length": 2}, "padding": {"pad_id": 0, "pad_token": "[PAD]"},
       "added_tokens": [{"id": 4, "content": "[MASK]", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true}],
       "normalizer": \(normalizer), "pre_tokenizer": {"type": "BertPreTokenizer"},
       "post_processor": \(postProcessor), "decoder": null, "model": \(modelJSON)}
      """
  }

  @Test("tokenizer.json: settings are read and its truncation is ignored")
  func tokenizerJSONSettings() throws {
    let uncasedKeepAccents = #"{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": false, "lowercase": true}"#
    let folder = try TemporaryTokenizerFolder(files: ["tokenizer.json": Self.tokenizerJSON(normalizer: uncasedKeepAccents)])
    defer { folder.remove() }
    let tokenizer = try WordPieceTokenizer(modelDirectory: folder.path)
    #expect(tokenizer.sourcePath.hasSuffix("tokenizer.json"))
    #expect(tokenizer.vocabularySize == tinyVocabulary.count)
    #expect(tokenizer.encode("hello world hello").ids == [2, 10, 11, 10, 3])  // not cut to 2
    #expect(textIds(tokenizer, "CAF\u{C9}") == [28])  // lowercased, accent kept
    // [MASK] has lstrip here: the space before it goes with it.
    #expect(textIds(tokenizer, "hello  [MASK]") == [10, 4])
  }

  @Test("tokenizer.json: TemplateProcessing gives [CLS] and [SEP]")
  func templateProcessing() throws {
    let template = #"""
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
       "pair": [],
       "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}
      """#
    let folder = try TemporaryTokenizerFolder(files: ["tokenizer.json": Self.tokenizerJSON(postProcessor: template)])
    defer { folder.remove() }
    let tokenizer = try WordPieceTokenizer(modelDirectory: folder.path)
    #expect(tokenizer.clsId == 2 && tokenizer.sepId == 3 && tokenizer.padId == 0)
    #expect(tokenizer.encode("Hello, world!").ids == [2, 10, 12, 11, 13, 3])
  }

  @Test(
    "malformed or unsupported tokenizer.json is a ModelError naming the file",
    arguments: [
      ("{\"model\": ", "malformed"),
      ("[1, 2]", "malformed"),
      (#"{"model": {"type": "WordPiece"}}"#, "malformed"),
      ("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": -1}}}", "malformed"),
      ("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": \"x\"}}}", "malformed"),
      ("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "unsupported"),
      ("\"\\ud800\"", "malformed"),
      ("<100000 nested arrays>", "malformed"),
    ])
  func malformedTokenizerJSON(contents: String, kind: String) throws {
    let contents = contents == "<100000 nested arrays>" ? String(repeating: "[", count: 100_000) : contents
    let folder = try TemporaryTokenizerFolder(files: ["tokenizer.json": contents])
    defer { folder.remove() }
    let expectedPath = (folder.path as NSString).appendingPathComponent("tokenizer.json")
    do {
      _ = try WordPieceTokenizer(modelDirectory: folder.path)
      Issue.record("expected a ModelError for \(contents.prefix(60))")
    } catch {
      switch (error, kind) {
      case (.malformed(let path, _), "malformed"), (.unsupported(let path, _), "unsupported"):
        #expect(path == expectedPath)
      default:
        Issue.record("unexpected error \(error) for \(contents.prefix(60))")
      }
    }
  }

  @Test("settings that are not BERT WordPiece are refused")
  func unsupportedPipelines() throws {
    let cases = [
      Self.tokenizerJSON(normalizer: #"{"type": "Sequence", "normalizers": []}"#),
      Self.tokenizerJSON(postProcessor: "null"),
      Self.tokenizerJSON(postProcessor: #"{"type": "ByteLevel"}"#),
      // A stray huge id is refused rather than sizing a table by it.
      Self.tokenizerJSON(model: #"{"type": "WordPiece", "vocab": {"[UNK]": 1, "[PAD]": 0, "x": 2000000000}}"#),
    ]
    for contents in cases {
      let folder = try TemporaryTokenizerFolder(files: ["tokenizer.json": contents])
      defer { folder.remove() }
      #expect(throws: ModelError.self) { try WordPieceTokenizer(modelDirectory: folder.path) }
    }
  }

  @Test("a folder without tokenizer files is missingFile")
  func missingFiles() throws {
    let folder = try TemporaryTokenizerFolder(files: ["config.json": "{}"])
    defer { folder.remove() }
    #expect(throws: ModelError.missingFile(path: (folder.path as NSString).appendingPathComponent("tokenizer.json"))) {
      try WordPieceTokenizer(modelDirectory: folder.path)
    }
    let absent = folder.path + "-absent"
    #expect(throws: ModelError.missingFile(path: absent)) { try WordPieceTokenizer(modelDirectory: absent) }
  }

  @Test("vocab.txt without [UNK] or with bad config is a ModelError")
  func malformedVocabText() throws {
    let noUnknown = try TemporaryTokenizerFolder(files: ["vocab.txt": "[PAD]\n[CLS]\n[SEP]\nhello\n"])
    defer { noUnknown.remove() }
    #expect(throws: ModelError.self) { try WordPieceTokenizer(modelDirectory: noUnknown.path) }

    let badConfig = try TemporaryTokenizerFolder(files: [
      "vocab.txt": tinyVocabulary.joined(separator: "\n"), "tokenizer_config.json": #"{"do_lower_case": "yes"}"#,
    ])
    defer { badConfig.remove() }
    let configPath = (badConfig.path as NSString).appendingPathComponent("tokenizer_config.json")
    #expect(throws: ModelError.malformed(path: configPath, reason: "do_lower_case is a string, not a boolean")) {
      try WordPieceTokenizer(modelDirectory: badConfig.path)
    }
  }

  @Test("vocab.txt lines end at \\n, \\r\\n or \\r")
  func vocabLineEndings() {
    let lines = TokenizerFiles.splitLinesLikePython("a\r\nb\rc\n\nd")
    #expect(lines.map { String(String.UnicodeScalarView($0)) } == ["a", "b", "c", "", "d"])
    #expect(TokenizerFiles.splitLinesLikePython("a\n").count == 1)
  }
}

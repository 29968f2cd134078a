// `veil tokenize`: the ids (and tokens) a model folder's tokenizer gives each text, without
// special tokens added — for checking a tokenizer against `tokenizers`, and for debugging.
import ArgumentParser
import Foundation
import VeilModels

struct Tokenize: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tokenize",
    abstract: "Print the token ids a model's tokenizer gives each text.",
    discussion: """
      Reads the model folder's tokenizer (tokenizer.json: WordPiece, byte-level BPE as GPT-2, \
      SmolLM2 and LLaMA-3 use it, or SentencePiece-style BPE with byte fallback as LLaMA-2; \
      else vocab.json + merges.txt for GPT-2's BPE, or vocab.txt for BERT's WordPiece) and \
      prints, per text, its ids and \
      tokens, without special tokens added (special tokens written in the text are found). \
      --json prints {"ids": [[...] per text], "tokens": [[...] per text]}.
      """)

  @Option(help: "Model folder with the tokenizer files.") var model: String
  @Flag(help: "Print JSON to stdout.") var json = false
  @Option(help: "Read texts from FILE, one a line ('-': standard input), after any TEXT arguments.")
  var input: String?
  @Argument(help: "Texts to tokenize.") var texts: [String] = []

  func run() throws {
    let tokenizer: ModelTokenizer
    do { tokenizer = try ModelTokenizer(modelDirectory: model) } catch {
      throw CommandError("\(error)")
    }
    let all = texts + (try input.map(readLines) ?? [])
    guard !all.isEmpty else { throw ValidationError("give at least one TEXT (or --input)") }
    let ids = all.map(tokenizer.encode)
    let tokens = ids.map(tokenizer.tokens)
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
      struct Output: Encodable {
        let ids: [[Int]]
        let tokens: [[String]]
      }
      var data = try encoder.encode(Output(ids: ids, tokens: tokens))
      data.append(0x0A)
      FileHandle.standardOutput.write(data)
      return
    }
    for (text, (ids, tokens)) in zip(all, zip(ids, tokens)) {
      print("\(text.prefix(60)) (\(tokenizer.kind), \(ids.count) tokens)")
      print("  ids:    \(ids.map(String.init).joined(separator: " "))")
      print("  tokens: \(tokens.joined(separator: " "))")
    }
  }
}

// `veil embed`: sentence embeddings of texts with a real model.
import ArgumentParser
import Foundation
import VeilModels

struct Embed: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sentence embeddings of texts.",
    discussion: """
      Texts longer than the model's limit are truncated with a warning (an error with \
      --no-truncate). --plaintext runs the Float64 reference engine in the clear; the secure \
      engines arrive with the secure BERT work.
      """)

  @Option(help: "Model folder (config.json, model.safetensors, tokenizer files).") var model: String
  @Flag(help: "Run the Float64 reference engine in the clear.") var plaintext = false
  @Flag(help: "Print JSON to stdout.") var json = false
  @Flag(help: "Refuse texts longer than the model's limit instead of truncating them.") var noTruncate = false
  @Argument(help: "Texts to embed.") var texts: [String]

  func validate() throws {
    guard !texts.isEmpty else { throw ValidationError("give at least one text") }
  }

  func run() async throws {
    guard plaintext else {
      throw ValidationError("secure inference is not available yet: pass --plaintext for the reference engine")
    }
    let embedder = try SentenceEmbedder(modelDirectory: model)
    let tokenized = try texts.enumerated().map { index, text in
      let t = try embedder.tokenize(text, allowTruncation: !noTruncate)
      if let original = t.truncatedFrom {
        printError("warning: text \(index + 1) has \(original) tokens; truncated to \(t.ids.count)")
      }
      return t
    }
    let weights = try embedder.float64Weights()
    var embeddings: [[Double]] = []
    let start = Date()
    for (index, tokens) in tokenized.enumerated() {
      if !json { printError("embedding text \(index + 1)/\(texts.count) (\(tokens.ids.count) tokens)") }
      embeddings.append(try await embedder.embed(tokens, weights: weights))
    }
    let seconds = Date().timeIntervalSince(start)
    if json {
      var report = RunInfo.envelope(
        schema: "veil.embed/1",
        params: ["engine": "float64", "tokens": tokenized.map { $0.ids.count }],
        kernels: [:])
      report["model"] = (model as NSString).lastPathComponent
      report["embeddings"] = embeddings
      report["seconds"] = seconds
      try writeJSON(report, to: "-")
    } else {
      for (text, vector) in zip(texts, embeddings) {
        let head = vector.prefix(4).map { String(format: "%+.4f", $0) }.joined(separator: " ")
        print("\(text.prefix(60))\n  dim \(vector.count)  [\(head) …]")
      }
      if embeddings.count > 1 {
        print(String(format: "cosine(text 1, text 2) = %.4f", cosineSimilarity(embeddings[0], embeddings[1])))
      }
      print(String(format: "plaintext Float64 engine, %.3f s", seconds))
    }
  }
}

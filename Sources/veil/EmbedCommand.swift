// `veil embed`: sentence embeddings of texts with a real model.
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels

struct Embed: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sentence embeddings of texts.",
    discussion: """
      Texts longer than the model's limit are truncated with a warning (an error with \
      --no-truncate). --plaintext runs the Float64 reference engine in the clear; --fixed-point \
      runs SIGMA's recipe on plain integers mod 2^n (exactly what the secure run computes) and \
      reports its cosine to the Float64 result. The secure engines arrive with the secure BERT work.
      """)

  @Option(help: "Model folder (config.json, model.safetensors, tokenizer files).") var model: String
  @Flag(help: "Run the Float64 reference engine in the clear.") var plaintext = false
  @Flag(help: "Run SIGMA's fixed-point recipe in the clear and compare it with Float64.") var fixedPoint = false
  @Option(help: "Ring width n for --fixed-point.") var ringBits = 50
  @Option(help: "Fractional bits f for --fixed-point.") var fractionalBits = 12
  @Flag(help: "Print JSON to stdout.") var json = false
  @Flag(help: "Refuse texts longer than the model's limit instead of truncating them.") var noTruncate = false
  @Argument(help: "Texts to embed.") var texts: [String]

  func validate() throws {
    guard !texts.isEmpty else { throw ValidationError("give at least one text") }
  }

  func run() async throws {
    guard plaintext || fixedPoint else {
      throw ValidationError(
        "secure inference is not available yet: pass --plaintext (Float64) or --fixed-point (SIGMA recipe in the clear)")
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
    var fixed: [[Double]] = []
    var fixedSeconds = 0.0
    var violations = 0
    if fixedPoint {
      let parameters = SigmaParameters(ringBits: ringBits, fractionalBits: fractionalBits)
      let engine = try FixedPointEngine(weights: weights, parameters: parameters)
      let fixedStart = Date()
      for tokens in tokenized { fixed.append(try await engine.sentenceEmbedding(embedder.bert, ids: tokens.ids)) }
      fixedSeconds = Date().timeIntervalSince(fixedStart)
      violations = engine.statistics.totalViolations
    }
    let cosines = zip(fixed, embeddings).map { cosineSimilarity($0, $1) }
    if json {
      var report = RunInfo.envelope(
        schema: "veil.embed/1",
        params: [
          "engine": fixedPoint ? "fixed-point-sigma" : "float64", "tokens": tokenized.map { $0.ids.count },
          "ring_bits": ringBits, "fractional_bits": fractionalBits,
        ],
        kernels: [:])
      report["model"] = (model as NSString).lastPathComponent
      report["embeddings"] = fixedPoint ? fixed : embeddings
      report["seconds"] = fixedPoint ? fixedSeconds : seconds
      if fixedPoint {
        report["plaintext"] = embeddings
        report["cosine"] = cosines
        report["range_violations"] = violations
      }
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
      if fixedPoint {
        let worst = cosines.min() ?? 1
        print(
          String(
            format: "SIGMA fixed point (n=%d, f=%d), %.3f s: cosine to Float64 ≥ %.6f, %d range violations",
            ringBits, fractionalBits, fixedSeconds, worst, violations))
      }
    }
  }
}

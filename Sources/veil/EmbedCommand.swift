// `veil embed`: sentence embeddings of texts with a real model — on secret shares by default
// (dealer, P0, P1 and client in one process), or in the clear for reference.
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels

struct Embed: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sentence embeddings of texts, on secret shares.",
    discussion: """
      By default each text runs securely with SIGMA's recipe (--recipe puma or secformer for \
      the others): the weights are masked once \
      (Ŵ = W + r_W, opened between P0 and P1), then for each text the dealer streams keys to P0, \
      P1 and the client, the client sends its masked one-hot rows, P0 and P1 walk the BERT graph \
      on masked values and only the client unmasks the embedding. All roles run in this process \
      over in-memory channels that count the bytes and rounds TCP would carry. The result is \
      compared with the Float64 engine in the clear. --fixed-point runs the same integer recipe \
      in the clear (it equals the secure run bit for bit); --plaintext only the Float64 engine. \
      Texts longer than the model's limit are truncated with a warning (an error with --no-truncate).
      """)

  @Option(help: "Model folder (config.json, model.safetensors, tokenizer files).") var model: String
  @Flag(help: "Only the Float64 reference engine, in the clear.") var plaintext = false
  @Flag(
    help: "The fixed-point recipe in the clear (what the secure run computes), against Float64."
  )
  var fixedPoint = false
  @OptionGroup var recipe: RecipeOptions
  @Option(help: "Key-stream buffer per party in MiB: the dealer pauses when it is full.")
  var keyBufferMib = 256
  @Flag(help: "Print JSON to stdout.") var json = false
  @Flag(help: "Refuse texts longer than the model's limit instead of truncating them.")
  var noTruncate = false
  @Argument(help: "Texts to embed.") var texts: [String]

  func validate() throws {
    guard !texts.isEmpty else { throw ValidationError("give at least one text") }
    guard !(plaintext && fixedPoint) else {
      throw ValidationError("choose one of --plaintext and --fixed-point")
    }
    guard keyBufferMib >= 1 else { throw ValidationError("--key-buffer-mib must be at least 1") }
  }

  func engineName(_ parameters: RecipeParameters) -> String {
    plaintext ? "float64" : (fixedPoint ? "fixed-point-" : "secure-") + parameters.recipeName
  }

  func run() async throws {
    let embedder = try SentenceEmbedder(modelDirectory: model)
    let tokenized = try texts.enumerated().map { index, text in
      let t = try embedder.tokenize(text, allowTruncation: !noTruncate)
      if let original = t.truncatedFrom {
        printError("warning: text \(index + 1) has \(original) tokens; truncated to \(t.ids.count)")
      }
      return t
    }
    let weights = try embedder.float64Weights()
    var plain: [[Double]] = []
    let start = Date()
    for tokens in tokenized { plain.append(try await embedder.embed(tokens, weights: weights)) }
    let plainSeconds = Date().timeIntervalSince(start)
    let parameters = try recipe.parameters()
    if parameters.softmax == .secformer && !plaintext {
      printError(
        "warning: SecFormer's 2Quad softmax stands in for softmax only in models distilled for it;"
          + " for a stock model add --softmax sigma or --softmax puma")
    }

    var results: [[Double]] = plain
    var report: [String: Any] = [:]
    if fixedPoint {
      let engine = try FixedPointEngine(weights: weights, parameters: parameters)
      let fixedStart = Date()
      results = []
      for tokens in tokenized {
        results.append(try await engine.sentenceEmbedding(embedder.bert, ids: tokens.ids))
      }
      report["seconds"] = Date().timeIntervalSince(fixedStart)
      report["range_violations"] = engine.statistics.totalViolations
    } else if !plaintext {
      if !json { printError("masking the weights once (setup)…") }
      let secure = try await SecureModel(
        model: embedder.bert, weights: weights, parameters: parameters)
      var options = RunOptions()
      options.pipeCapacity = keyBufferMib << 20
      results = []
      var runs: [RunCosts] = []
      for (index, tokens) in tokenized.enumerated() {
        if !json {
          printError("secure run \(index + 1)/\(texts.count) (\(tokens.ids.count) tokens)…")
        }
        let run = try await secure.infer(ids: tokens.ids, options: options)
        results.append(run.decoded)
        runs.append(run.costs)
      }
      report = secureFields(runs, setup: secure)
    }
    let cosines = zip(results, plain).map { cosineSimilarity($0, $1) }
    if json {
      var out = RunInfo.envelope(
        schema: "veil.embed/2",
        params: [
          "engine": engineName(parameters), "tokens": tokenized.map { $0.ids.count },
          "ring_bits": parameters.ringBits, "fractional_bits": parameters.fractionalBits,
          "recipe": parameters.recipeName,
        ],
        kernels: [:])
      out.merge(report) { $1 }
      out["model"] = (model as NSString).lastPathComponent
      out["embeddings"] = results
      if plaintext {
        out["seconds"] = plainSeconds
      } else {
        out["plaintext"] = plain
        out["cosine"] = cosines
      }
      out["peak_rss_bytes"] = RunInfo.peakRSSBytes
      try writeJSON(out, to: "-")
      return
    }
    for (text, vector) in zip(texts, results) {
      let head = vector.prefix(4).map { String(format: "%+.4f", $0) }.joined(separator: " ")
      print("\(text.prefix(60))\n  dim \(vector.count)  [\(head) …]")
    }
    if results.count > 1 {
      print(
        String(format: "cosine(text 1, text 2) = %.4f", cosineSimilarity(results[0], results[1])))
    }
    if plaintext {
      print(String(format: "plaintext Float64 engine, %.3f s", plainSeconds))
      return
    }
    let worst = cosines.min() ?? 1
    if fixedPoint {
      print(
        String(
          format:
            "%@ fixed point in the clear (n=%d, f=%d), %.3f s: cosine to Float64 ≥ %.6f, %d range violations",
          parameters.recipeName, parameters.ringBits, parameters.fractionalBits,
          report["seconds"] as? Double ?? 0, worst,
          report["range_violations"] as? Int ?? 0))
      return
    }
    print(
      String(
        format: """
          secure %@ (n=%d, f=%d): cosine to Float64 ≥ %.6f
            online %.2f s, offline %.2f s, %.1f MB between P0 and P1 in %d rounds, client %.1f MB
            keys %.1f MB per party; setup (once) %.2f s, %.1f MB; peak memory %.2f GB
          """, parameters.recipeName, parameters.ringBits, parameters.fractionalBits, worst,
        report["online_seconds"] as? Double ?? 0,
        report["offline_seconds"] as? Double ?? 0,
        Double(report["online_bytes"] as? Int ?? 0) / 1e6,
        report["rounds"] as? Int ?? 0, Double(report["client_bytes"] as? Int ?? 0) / 1e6,
        Double(report["key_bytes_per_party"] as? Int ?? 0) / 1e6,
        report["setup_seconds"] as? Double ?? 0,
        Double(report["setup_bytes"] as? Int ?? 0) / 1e6, Double(RunInfo.peakRSSBytes) / 1e9))
  }

  /// The fields (sums over the texts) and each text's own figures.
  func secureFields(_ runs: [RunCosts], setup: SecureModel) -> [String: Any] {
    func sum(_ value: (RunCosts) -> Double) -> Double { runs.map(value).reduce(0, +) }
    func sum(_ value: (RunCosts) -> Int) -> Int { runs.map(value).reduce(0, +) }
    return [
      "online_seconds": sum { $0.onlineSeconds }, "offline_seconds": sum { $0.offlineSeconds },
      "online_bytes": sum { $0.onlineBytes }, "rounds": sum { $0.rounds },
      "key_bytes_per_party": sum { $0.keyBytes.prefix(2).max() ?? 0 },
      "key_bytes": [sum { $0.keyBytes[0] }, sum { $0.keyBytes[1] }],
      "client_bytes": sum { $0.clientBytes },
      "setup_seconds": setup.setupSeconds, "setup_bytes": setup.setupBytes,
      "runs": runs.map { run in
        [
          "online_seconds": run.onlineSeconds, "offline_seconds": run.offlineSeconds,
          "online_bytes": run.onlineBytes,
          "rounds": run.rounds, "key_bytes": run.keyBytes, "client_bytes": run.clientBytes,
          "peak_key_buffer_bytes": run.peakPipeBytes,
        ] as [String: Any]
      },
    ]
  }
}

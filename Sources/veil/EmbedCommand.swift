// `veil embed`: sentence embeddings of texts with a real model — on secret shares by default
// (dealer, P0, P1 and client in one process), or in the clear for reference.
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels
import VeilService

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

      With --remote P0,P1 --dealer D the client runs alone against a deployment (`veil serve`, \
      `veil dealer`): it fetches the public config and tokenizer from P0, tokenizes locally, and \
      for each text asks P0 for a run, joins P1 and the dealer, and unmasks the embedding. The \
      text and its token ids never leave this process; the key streams it used are recorded in \
      --state (a durable ledger). --json then prints the embeddings and each run's latency and \
      client bytes (the servers' own costs are in their logs).

      --pad-to N (secure runs, local or --remote) hides each text's length: its tokens are \
      padded to the next multiple of N (at most the model's limit), and which of them are \
      real is a secret input of the client's (a key mask and 1/count, masked like the one-hot \
      rows), so the servers and the dealer learn only the bucket. Texts of one bucket cost \
      the same and look the same to them; the embedding is the unpadded one's (cosine ≥ \
      0.99999). Needs SIGMA's or PUMA's softmax.
      """)

  @Option(help: "Model folder (config.json, model.safetensors, tokenizer files).") var model:
    String?
  @Option(help: "Run as a client of a deployment: P0's and P1's addresses, HOST:PORT,HOST:PORT.")
  var remote: String?
  @Option(help: "The dealer's address (with --remote).") var dealer: String?
  @Option(help: "The client's state folder (its ledger of used key streams), with --remote.")
  var state: String?
  @OptionGroup var network: NetworkOptions
  @Option(help: "Read texts from FILE, one a line ('-': standard input), after any TEXT arguments.")
  var input: String?
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
  @Option(
    help: ArgumentHelp(
      "Hide each text's length: pad it to the next multiple of N tokens, the real length a secret input.",
      valueName: "N"))
  var padTo: Int?
  @Argument(help: "Texts to embed.") var arguments: [String] = []

  func validate() throws {
    guard !arguments.isEmpty || input != nil else {
      throw ValidationError("give at least one text")
    }
    if remote != nil {
      guard model == nil, !plaintext, !fixedPoint else {
        throw ValidationError(
          "--remote runs against a deployment: drop --model, --plaintext and --fixed-point")
      }
      guard dealer != nil else { throw ValidationError("--remote needs --dealer HOST:PORT") }
    } else {
      guard model != nil else {
        throw ValidationError("give --model DIR, or --remote for a deployment")
      }
    }
    guard !(plaintext && fixedPoint) else {
      throw ValidationError("choose one of --plaintext and --fixed-point")
    }
    guard keyBufferMib >= 1 else { throw ValidationError("--key-buffer-mib must be at least 1") }
    if let padTo {
      guard padTo >= 1 else { throw ValidationError("--pad-to must be at least 1") }
      guard !plaintext, !fixedPoint else {
        throw ValidationError("--pad-to hides the length from servers: it needs a secure run")
      }
    }
  }

  func engineName(_ parameters: RecipeParameters) -> String {
    plaintext ? "float64" : (fixedPoint ? "fixed-point-" : "secure-") + parameters.recipeName
  }

  /// The TEXT arguments, then the lines of --input (a final newline ends the last line).
  func readTexts() throws -> [String] {
    var texts = arguments
    if let input { texts += try readLines(input) }
    guard !texts.isEmpty else { throw CommandError("no text to embed") }
    return texts
  }

  func run() async throws {
    SecureModel.tuneAllocator()
    let texts = try readTexts()
    if let remote { return try await runRemote(texts, servers: remote) }
    guard let model else { throw CommandError("give --model DIR") }
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
    var report = EmbedResults(
      model: (model as NSString).lastPathComponent, embeddings: [],
      peakRssBytes: 0)
    if fixedPoint {
      let engine = try FixedPointEngine(weights: weights, parameters: parameters)
      let fixedStart = Date()
      results = []
      for tokens in tokenized {
        results.append(try await engine.sentenceEmbedding(embedder.bert, ids: tokens.ids))
      }
      report.seconds = Date().timeIntervalSince(fixedStart)
      report.rangeViolations = engine.statistics.totalViolations
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
        let run: SecureRunReport
        if let padTo {
          let padded = try HiddenLengthInputs.pad(
            tokens.ids, to: padTo, limit: embedder.config.tokenLimit,
            padID: Int(embedder.tokenizer.padId))
          run = try await secure.infer(
            ids: padded, hidingLength: tokens.ids.count, options: options)
        } else {
          run = try await secure.infer(ids: tokens.ids, options: options)
        }
        results.append(run.decoded)
        runs.append(run.costs)
      }
      report.addSecure(runs, setup: secure)
    } else {
      report.seconds = plainSeconds
    }
    let cosines = zip(results, plain).map { cosineSimilarity($0, $1) }
    if json {
      report.embeddings = results
      if !plaintext {
        report.plaintext = plain
        report.cosine = cosines
      }
      report.peakRssBytes = RunInfo.peakRSSBytes
      try Report(
        schema: "veil.embed/2", ringBits: parameters.ringBits,
        params: RecipeParams(
          parameters, engine: engineName(parameters), tokens: tokenized.map { $0.ids.count }),
        results: report
      ).write(to: "-")
      return
    }
    printVectors(texts, results)
    if results.count > 1 {
      print(
        String(format: "cosine(text 1, text 2) = %.4f", cosineSimilarity(results[0], results[1])))
    }
    if plaintext {
      print(String(format: "plaintext Float64 engine, %.3f s", plainSeconds))
      return
    }
    let worst = cosines.min() ?? 1
    if fixedPoint, let seconds = report.seconds, let violations = report.rangeViolations {
      print(
        String(
          format:
            "%@ fixed point in the clear (n=%d, f=%d), %.3f s: cosine to Float64 ≥ %.6f, %d range violations",
          parameters.recipeName, parameters.ringBits, parameters.fractionalBits, seconds, worst,
          violations))
      return
    }
    guard let secure = report.secure else { return }
    print(
      String(
        format: """
          secure %@ (n=%d, f=%d): cosine to Float64 ≥ %.6f
            online %.2f s, offline %.2f s, %.1f MB between P0 and P1 in %d rounds, client %.1f MB
            keys %.1f MB per party; setup (once) %.2f s, %.1f MB; peak memory %.2f GB
          """, parameters.recipeName, parameters.ringBits, parameters.fractionalBits, worst,
        secure.onlineSeconds, secure.offlineSeconds, Double(secure.onlineBytes) / 1e6,
        secure.rounds, Double(secure.clientBytes) / 1e6, Double(secure.keyBytesPerParty) / 1e6,
        secure.setupSeconds, Double(secure.setupBytes) / 1e6, Double(RunInfo.peakRSSBytes) / 1e9))
  }

  /// The client role against a deployment.
  func runRemote(_ texts: [String], servers: String) async throws {
    let client = try network.client(remote: servers, dealer: dealer, state: state)
    let model = try await client.model()
    let tokenized = try texts.enumerated().map { index, text in
      let t = try SentenceEmbedder.tokenize(
        text, config: model.config, tokenizer: model.tokenizer, allowTruncation: !noTruncate)
      if let original = t.truncatedFrom {
        printError("warning: text \(index + 1) has \(original) tokens; truncated to \(t.ids.count)")
      }
      return t
    }
    var results: [[Double]] = []
    var runs: [RemoteRunCosts] = []
    for (index, tokens) in tokenized.enumerated() {
      if !json {
        printError("remote secure run \(index + 1)/\(texts.count) (\(tokens.ids.count) tokens)…")
      }
      let (vector, costs) = try await client.embed(ids: tokens.ids, model: model, padTo: padTo)
      results.append(vector)
      runs.append(costs)
    }
    let parameters = model.manifest.parameters
    if json {
      var report = EmbedResults(embeddings: results, peakRssBytes: RunInfo.peakRSSBytes)
      report.latencySeconds = runs.map(\.seconds).reduce(0, +)
      report.clientBytes = runs.map(\.clientBytes).reduce(0, +)
      report.clientKeyBytes = runs.map(\.keyBytes).reduce(0, +)
      report.runs = runs.map {
        EmbedResults.Run(
          clientBytes: $0.clientBytes, latencySeconds: $0.seconds, tokens: $0.tokens,
          clientKeyBytes: $0.keyBytes)
      }
      try Report(
        schema: "veil.embed/2", ringBits: parameters.ringBits,
        params: RecipeParams(
          parameters, engine: "remote-secure-" + parameters.recipeName,
          tokens: tokenized.map { $0.ids.count }, setupID: model.manifest.setupID),
        results: report
      ).write(to: "-")
      return
    }
    printVectors(texts, results)
    print(
      String(
        format: "remote secure %@ (n=%d, f=%d): %d texts, %.2f s end to end, client %.1f MB",
        parameters.recipeName, parameters.ringBits, parameters.fractionalBits, runs.count,
        runs.map(\.seconds).reduce(0, +), Double(runs.map(\.clientBytes).reduce(0, +)) / 1e6))
  }

  /// Each text with the head of its vector.
  func printVectors(_ texts: [String], _ results: [[Double]]) {
    for (text, vector) in zip(texts, results) {
      let head = vector.prefix(4).map { String(format: "%+.4f", $0) }.joined(separator: " ")
      print("\(text.prefix(60))\n  dim \(vector.count)  [\(head) …]")
    }
  }
}

/// `veil embed --json`'s results: the vectors, and what the engine's run cost (the fields of
/// the engine that ran; absent ones are omitted).
struct EmbedResults: Codable {
  var model: String?
  var embeddings: [[Double]]
  /// The Float64 engine's vectors and each result's cosine to them (all but `--plaintext`).
  var plaintext: [[Double]]?
  var cosine: [Double]?
  /// The Float64 or fixed-point engine's seconds.
  var seconds: Double?
  var rangeViolations: Int?
  /// Secure runs, summed over the texts.
  var onlineSeconds: Double?
  var offlineSeconds: Double?
  var onlineBytes: Int?
  var rounds: Int?
  var keyBytesPerParty: Int?
  var keyBytes: [Int]?
  var clientBytes: Int?
  var setupSeconds: Double?
  var setupBytes: Int?
  /// A remote client's end-to-end seconds and key bytes, summed.
  var latencySeconds: Double?
  var clientKeyBytes: Int?
  var runs: [Run]?
  var peakRssBytes: Int

  /// One text's run.
  struct Run: Codable {
    var onlineSeconds: Double?
    var offlineSeconds: Double?
    var onlineBytes: Int?
    var rounds: Int?
    var keyBytes: [Int]?
    var clientBytes: Int
    var peakKeyBufferBytes: Int?
    var latencySeconds: Double?
    var tokens: Int?
    var clientKeyBytes: Int?
  }

  /// The secure totals, where a one-process secure run filled them.
  struct SecureTotals {
    var onlineSeconds, offlineSeconds, setupSeconds: Double
    var onlineBytes, rounds, keyBytesPerParty, clientBytes, setupBytes: Int
  }

  var secure: SecureTotals? {
    guard let onlineSeconds, let offlineSeconds, let setupSeconds, let onlineBytes, let rounds,
      let keyBytesPerParty, let clientBytes, let setupBytes
    else { return nil }
    return SecureTotals(
      onlineSeconds: onlineSeconds, offlineSeconds: offlineSeconds, setupSeconds: setupSeconds,
      onlineBytes: onlineBytes, rounds: rounds, keyBytesPerParty: keyBytesPerParty,
      clientBytes: clientBytes, setupBytes: setupBytes)
  }

  /// Sums over the texts' one-process secure runs, and each run's own figures.
  mutating func addSecure(_ runs: [RunCosts], setup: SecureModel) {
    func sum<T: AdditiveArithmetic>(_ value: (RunCosts) -> T) -> T {
      runs.map(value).reduce(.zero, +)
    }
    onlineSeconds = sum { $0.onlineSeconds }
    offlineSeconds = sum { $0.offlineSeconds }
    onlineBytes = sum { $0.onlineBytes }
    rounds = sum { $0.rounds }
    keyBytesPerParty = sum { $0.keyBytesPerParty }
    keyBytes = [sum { $0.keyBytes[0] }, sum { $0.keyBytes[1] }]
    clientBytes = sum { $0.clientBytes }
    setupSeconds = setup.setupSeconds
    setupBytes = setup.setupBytes
    self.runs = runs.map {
      Run(
        onlineSeconds: $0.onlineSeconds, offlineSeconds: $0.offlineSeconds,
        onlineBytes: $0.onlineBytes, rounds: $0.rounds, keyBytes: $0.keyBytes,
        clientBytes: $0.clientBytes, peakKeyBufferBytes: $0.peakPipeBytes)
    }
  }
}

// `veil generate`: greedy text generation with a decoder (GPT-2, LLaMA family) — on secret
// shares by default (dealer, P0, P1 and client in one process), streaming each token to stdout
// as the client unmasks it, beside the Float64 engine's greedy tokens in the clear.
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels
import VeilService

struct Generate: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate text with a decoder model, on secret shares.",
    discussion: """
      The prompt runs through the model in one pass, then each new token costs one position \
      over the KV cache (--no-cache recomputes the whole prefix each step). The next token is \
      chosen on secret shares by an argmax tree, enters the next step as a secret one-hot row and \
      is opened to the client only: the servers never see a logit, a token or the text. They \
      learn the prompt's length and --tokens; the run always produces that many tokens (an \
      end-of-text token included — stopping early would tell the servers the reply's length), \
      and the text shown ends at the first end-of-text token. --chat wraps the prompt in the \
      model's chat template (ChatML). The Float64 engine's greedy tokens are computed too, with \
      each step's top-two logit margin, so a disagreement can be told from a near tie. \
      --fixed-point runs the recipe's integers in the clear (equal to the secure run), \
      --plaintext only Float64.

      With --remote P0,P1 --dealer D the client runs alone against a deployment that serves a \
      decoder (`veil share-model` of a GPT-2 or LLaMA folder): it reads the public config, \
      tokenizer and chat template from P0, tokenizes locally and prints the tokens as it \
      unmasks them; the prompt and the reply never leave this process.
      """)

  @Option(help: "Model folder (config.json, model.safetensors, tokenizer files).") var model:
    String?
  @Option(help: "Run as a client of a deployment: P0's and P1's addresses, HOST:PORT,HOST:PORT.")
  var remote: String?
  @Option(help: "The dealer's address (with --remote).") var dealer: String?
  @Option(help: "The client's state folder (its ledger of used key streams), with --remote.")
  var state: String?
  @OptionGroup var network: NetworkOptions
  @Option(help: "The prompt text.") var prompt: String
  @Option(help: "How many tokens to generate.") var tokens = 16
  @Flag(help: "Wrap the prompt in the model's chat template.") var chat = false
  @Flag(help: "Recompute the whole prefix for every token instead of using the KV cache.")
  var noCache = false
  @Flag(help: "Only the Float64 reference engine, in the clear.") var plaintext = false
  @Flag(help: "The fixed-point recipe in the clear (what the secure run computes).")
  var fixedPoint = false
  @OptionGroup var recipe: RecipeOptions
  @Option(help: "Key-stream buffer per party in MiB: the dealer pauses when it is full.")
  var keyBufferMib = 256
  @Flag(help: "With --fixed-point: print the recorded value ranges per gate to stderr.")
  var ranges = false
  @Flag(help: "Print JSON to stdout (no streaming).") var json = false

  func validate() throws {
    guard tokens >= 1 else { throw ValidationError("--tokens must be at least 1") }
    guard !(plaintext && fixedPoint) else {
      throw ValidationError("choose one of --plaintext and --fixed-point")
    }
    guard keyBufferMib >= 1 else { throw ValidationError("--key-buffer-mib must be at least 1") }
    if remote != nil {
      guard model == nil, !plaintext, !fixedPoint, !ranges else {
        throw ValidationError(
          "--remote runs against a deployment: drop --model, --plaintext, --fixed-point, --ranges")
      }
      guard dealer != nil else { throw ValidationError("--remote needs --dealer HOST:PORT") }
    } else if model == nil {
      throw ValidationError("give --model DIR, or --remote for a deployment")
    }
  }

  func run() async throws {
    SecureModel.tuneAllocator()
    if let remote { return try await runRemote(servers: remote) }
    guard let model else { throw CommandError("give --model DIR") }
    let folder = try DecoderFolder(modelDirectory: model)
    let promptIds = try folder.text.promptIds(prompt, chat: chat)
    guard !promptIds.isEmpty else { throw CommandError("the prompt has no tokens") }
    let limit = folder.config.maxPositions
    guard promptIds.count + tokens - 1 <= limit else {
      throw CommandError(
        "\(promptIds.count) prompt tokens + \(tokens) new exceed the model's \(limit) positions")
    }
    let parameters = try recipe.parameters(for: folder.config)
    let weights = try folder.float64Weights()
    let input = TokenInput(ids: promptIds)
    let stream = TokenStream(text: folder.text, enabled: !json)

    let plainStart = Date()
    var plain: [(token: Int, margin: Double)] = []
    try await Generation.greedy(
      folder.model, prompt: input, newTokens: tokens, cache: !noCache,
      engine: Float64Engine(weights: weights)
    ) { step in
      plain.append((Int(step.index.scalars[0]), topTwoMargin(step.logits.scalars)))
      if plaintext { stream.add(plain.last!.token) }
    }
    let plainSeconds = Date().timeIntervalSince(plainStart)

    var results = GenerateResults(
      model: (model as NSString).lastPathComponent, promptTokens: promptIds,
      tokens: plain.map(\.token), text: "", plaintextTokens: plain.map(\.token),
      plaintextMargins: plain.map(\.margin), peakRssBytes: 0)
    if fixedPoint {
      let engine = try FixedPointEngine(weights: weights, parameters: parameters)
      let start = Date()
      var ids: [Int] = []
      try await Generation.greedy(
        folder.model, prompt: input, newTokens: tokens, cache: !noCache, engine: engine
      ) { step in
        ids.append(Int(step.index.values[0]))
        stream.add(ids.last!)
      }
      results.tokens = ids
      results.seconds = Date().timeIntervalSince(start)
      results.rangeViolations = engine.statistics.totalViolations
      if ranges { printError(engine.statistics.report()) }
    } else if !plaintext {
      if !json { printError("masking the weights once (setup)…") }
      let secure = try await SecureModel(
        model: folder.model, weights: weights, parameters: parameters)
      var options = RunOptions()
      options.pipeCapacity = keyBufferMib << 20
      let steps = StepLog()
      let report = try await secure.generate(
        ids: promptIds, newTokens: tokens, cache: !noCache, options: options
      ) { step in
        steps.append(step)
        stream.add(step.token)
      }
      let costs = report.costs
      results.tokens = report.tokens
      results.onlineSeconds = costs.onlineSeconds
      results.offlineSeconds = costs.offlineSeconds
      results.onlineBytes = costs.onlineBytes
      results.rounds = costs.rounds
      results.keyBytesPerParty = costs.keyBytesPerParty
      results.clientBytes = costs.clientBytes
      results.setupSeconds = secure.setupSeconds
      results.perToken = steps.all.map {
        GenerateResults.Step(
          token: $0.token, seconds: $0.seconds, onlineBytes: $0.onlineBytes, rounds: $0.rounds)
      }
    } else {
      results.seconds = plainSeconds
    }
    stream.finish()
    results.text = folder.text.text(folder.text.reply(results.tokens))
    results.matchesPlaintext = results.tokens == results.plaintextTokens
    results.peakRssBytes = RunInfo.peakRSSBytes
    let engineName =
      plaintext ? "float64" : (fixedPoint ? "fixed-point-" : "secure-") + parameters.recipeName
    if json {
      try Report(
        schema: "veil.generate/1", ringBits: parameters.ringBits,
        params: RecipeParams(parameters, engine: engineName, tokens: [promptIds.count, tokens]),
        results: results
      ).write(to: "-")
      return
    }
    let agreement = zip(results.tokens, results.plaintextTokens).prefix { $0 == $1 }.count
    var summary = "\(engineName): \(tokens) tokens after a prompt of \(promptIds.count)"
    if !plaintext {
      summary += "; equals Float64 for the first \(agreement) of \(tokens)"
      if agreement < tokens {
        summary += String(format: " (Float64's margin there: %.4f)", plain[agreement].margin)
      }
    }
    printError(summary)
    if let online = results.onlineSeconds, let bytes = results.onlineBytes,
      let rounds = results.rounds, let keys = results.keyBytesPerParty,
      let offline = results.offlineSeconds
    {
      printError(
        String(
          format:
            "  online %.2f s, offline %.2f s, %.1f MB between P0 and P1 in %d rounds, keys %.1f MB per party",
          online, offline, Double(bytes) / 1e6, rounds, Double(keys) / 1e6))
    }
  }

  /// The client role against a deployment: tokens stream in as the client unmasks them.
  func runRemote(servers: String) async throws {
    let client = try network.client(remote: servers, dealer: dealer, state: state)
    let decoder = try await client.decoder()
    let promptIds = try decoder.text.promptIds(prompt, chat: chat)
    guard !promptIds.isEmpty else { throw CommandError("the prompt has no tokens") }
    let stream = TokenStream(text: decoder.text, enabled: !json)
    let (ids, costs) = try await client.generate(
      ids: promptIds, newTokens: tokens, cache: !noCache, decoder: decoder
    ) { _, token in stream.add(token) }
    stream.finish()
    let parameters = decoder.manifest.parameters
    if json {
      let results = RemoteGenerateResults(
        promptTokens: promptIds, tokens: ids, text: decoder.text.text(decoder.text.reply(ids)),
        latencySeconds: costs.seconds, clientBytes: costs.clientBytes,
        clientKeyBytes: costs.keyBytes, peakRssBytes: RunInfo.peakRSSBytes)
      try Report(
        schema: "veil.generate/1", ringBits: parameters.ringBits,
        params: RecipeParams(
          parameters, engine: "remote-secure-" + parameters.recipeName,
          tokens: [promptIds.count, tokens], setupID: decoder.manifest.setupID),
        results: results
      ).write(to: "-")
      return
    }
    printError(
      String(
        format:
          "remote secure %@ (n=%d, f=%d): %d tokens after %d, %.2f s end to end, client %.1f MB",
        parameters.recipeName, parameters.ringBits, parameters.fractionalBits, tokens,
        promptIds.count, costs.seconds, Double(costs.clientBytes) / 1e6))
  }
}

/// The largest logit less the second largest.
func topTwoMargin(_ logits: [Double]) -> Double {
  var (first, second) = (-Double.infinity, -Double.infinity)
  for v in logits {
    if v > first {
      (first, second) = (v, first)
    } else if v > second {
      second = v
    }
  }
  return first - second
}

/// Prints the reply's text to stdout as tokens arrive: whole characters only (a token may end
/// inside a UTF-8 sequence), nothing after the first end-of-text token.
final class TokenStream: @unchecked Sendable {
  private let text: DecoderText
  private let enabled: Bool
  private let lock = NSLock()
  private var ids: [Int] = []
  private var printed = ""
  private var ended = false

  init(text: DecoderText, enabled: Bool) {
    self.text = text
    self.enabled = enabled
  }

  func add(_ id: Int) {
    guard enabled else { return }
    lock.withLock {
      guard !ended else { return }
      if id == text.endOfText {
        ended = true
        return
      }
      ids.append(id)
      let shown = text.text(ids)
      guard !shown.hasSuffix("\u{FFFD}"), shown.hasPrefix(printed) else { return }
      FileHandle.standardOutput.write(Data(shown.dropFirst(printed.count).utf8))
      printed = shown
    }
  }

  func finish() {
    guard enabled else { return }
    FileHandle.standardOutput.write(Data("\n".utf8))
  }
}

/// The steps a secure generation reported, in order.
final class StepLog: @unchecked Sendable {
  private let lock = NSLock()
  private var steps: [GenerationStep] = []
  func append(_ step: GenerationStep) { lock.withLock { steps.append(step) } }
  var all: [GenerationStep] { lock.withLock { steps } }
}

/// `veil generate --json`'s results.
struct GenerateResults: Codable {
  var model: String
  var promptTokens: [Int]
  /// The engine's generated ids (always --tokens of them).
  var tokens: [Int]
  /// The reply's text: the generated tokens up to the first end-of-text token.
  var text: String
  /// The Float64 engine's greedy ids and each step's top-two logit margin.
  var plaintextTokens: [Int]
  var plaintextMargins: [Double]
  var matchesPlaintext: Bool?
  var seconds: Double?
  var rangeViolations: Int?
  var onlineSeconds: Double?
  var offlineSeconds: Double?
  var onlineBytes: Int?
  var rounds: Int?
  var keyBytesPerParty: Int?
  var clientBytes: Int?
  var setupSeconds: Double?
  var perToken: [Step]?
  var peakRssBytes: Int

  /// One token as the client received it: wall seconds since the previous one (the first
  /// includes the prompt), P0↔P1 bytes and rounds in between.
  struct Step: Codable {
    var token: Int
    var seconds: Double
    var onlineBytes: Int
    var rounds: Int
  }
}

/// `veil generate --remote --json`'s results: what the client alone can see.
struct RemoteGenerateResults: Codable {
  var promptTokens: [Int]
  var tokens: [Int]
  var text: String
  var latencySeconds: Double
  var clientBytes: Int
  var clientKeyBytes: Int
  var peakRssBytes: Int
}

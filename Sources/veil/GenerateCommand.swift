// `veil generate`: greedy text generation with a decoder (GPT-2, LLaMA family) — on secret
// shares by default (dealer, P0, P1 and client in one process), streaming each token to stdout
// as the client unmasks it, beside the Float64 engine's greedy tokens in the clear.
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels

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
      """)

  @Option(help: "Model folder (config.json, model.safetensors, tokenizer files).") var model: String
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
  }

  func run() async throws {
    SecureModel.tuneAllocator()
    let folder = try DecoderFolder(modelDirectory: model)
    let promptIds = try folder.promptIds(prompt, chat: chat)
    guard !promptIds.isEmpty else { throw CommandError("the prompt has no tokens") }
    let limit = folder.config.maxPositions
    guard promptIds.count + tokens - 1 <= limit else {
      throw CommandError(
        "\(promptIds.count) prompt tokens + \(tokens) new exceed the model's \(limit) positions")
    }
    let parameters = try recipe.parameters(
      defaultRingBits: Self.defaultRingBits(folder.config, recipe.recipe))
    let weights = try folder.float64Weights()
    let input = TokenInput(ids: promptIds)
    let stream = TokenStream(folder: folder, enabled: !json)

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
    results.text = folder.text(reply(results.tokens, end: folder.endOfText))
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

  /// LLaMA-family residual streams carry a few huge activations (SmolLM2-135M: up to ≈ 24 950),
  /// so RMSNorm's sum of squares at scale 2f reaches 2^55.3 at f = 12 and SIGMA's rsqrt needs it
  /// below 2^(n−2): n = 50 wraps it (37 overflows in the chat prompt's 7 steps, the text
  /// diverges at its sixth token), n ≥ 58 holds it; 60 keeps two bits of headroom (BENCHMARKS.md).
  /// PUMA's and SecFormer's presets are 64 bits already.
  static func defaultRingBits(_ config: ModelConfig, _ recipe: Approximation) -> Int? {
    config.architecture == .llama && recipe == .sigma ? 60 : nil
  }

  /// The reply: the tokens up to (not including) the first end-of-text token.
  func reply(_ ids: [Int], end: Int?) -> [Int] {
    guard let end, let stop = ids.firstIndex(of: end) else { return ids }
    return Array(ids[..<stop])
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
  private let folder: DecoderFolder
  private let enabled: Bool
  private let lock = NSLock()
  private var ids: [Int] = []
  private var printed = ""
  private var ended = false

  init(folder: DecoderFolder, enabled: Bool) {
    self.folder = folder
    self.enabled = enabled
  }

  func add(_ id: Int) {
    guard enabled else { return }
    lock.withLock {
      guard !ended else { return }
      if id == folder.endOfText {
        ended = true
        return
      }
      ids.append(id)
      let text = folder.text(ids)
      guard !text.hasSuffix("\u{FFFD}"), text.hasPrefix(printed) else { return }
      FileHandle.standardOutput.write(Data(text.dropFirst(printed.count).utf8))
      printed = text
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

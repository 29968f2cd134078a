// `veil bench model`: one secure inference of a whole model at a real shape, all roles in one
// process, with the figures the papers' tables use — offline and online seconds, bytes between
// P0 and P1, rounds, key bytes per party, peak memory — in total and per layer type.
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels

struct ModelBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "model",
    abstract:
      "A secure inference of a whole model: time, bytes, rounds, keys, memory, per layer type.",
    discussion: """
      --model names a public shape (random weights, no download); --model-dir runs a real \
      model folder instead (BERT, GPT-2 or LLaMA). The costs of FSS gates do not depend on the \
      values, so random weights measure the same work. --layers K runs only the first K blocks \
      and prints the whole-model figures extrapolated from them, labelled as such (the \
      embedding, final norm, LM head and argmax counted once). --generate N runs a decoder's \
      greedy generation instead: the prompt, then N − 1 one-position steps over the KV cache \
      (--no-cache: the whole prefix each step), with each token's wall seconds, bytes and \
      rounds.
      """)

  @Option(help: "Model shape: \(ModelPreset.allCases.map(\.rawValue).joined(separator: ", ")).")
  var model = "minilm"
  @Option(help: "A model folder to run instead of a named shape.") var modelDir: String?
  @Option(help: "Sequence length in tokens.") var seq = 128
  @Option(help: "Run only the first K blocks (default: all).") var layers: Int?
  @Option(
    help:
      "Decoders: generate N tokens after the --seq prompt (greedy, secure argmax) and report each.")
  var generate: Int?
  @Flag(help: "With --generate: recompute the whole prefix each step instead of the KV cache.")
  var noCache = false
  @OptionGroup var recipe: RecipeOptions
  @Option(help: "Key-stream buffer per party in MiB.") var keyBufferMib = 256
  @Option(help: "P0-P1 channel: in-memory, tcp or tls (over loopback, both ends in this process).")
  var transport = "in-memory"
  @Option(name: .long, help: "Write JSON to FILE ('-' for stdout).") var json: String?

  func run() async throws {
    SecureModel.tuneAllocator()
    guard ["in-memory", "tcp", "tls"].contains(transport) else {
      throw CommandError("--transport must be in-memory, tcp or tls, not '\(transport)'")
    }
    var config: ModelConfig
    var weights: Float64Weights?
    var name = model
    if let modelDir {
      config = try ModelConfig(modelDirectory: modelDir)
      if config.architecture == .bert {
        weights = try SentenceEmbedder(modelDirectory: modelDir).float64Weights()
      } else {
        weights = try DecoderFolder(modelDirectory: modelDir).float64Weights()
      }
      name = (modelDir as NSString).lastPathComponent
    } else {
      guard let preset = ModelPreset(rawValue: model) else {
        throw CommandError(
          "unknown model '\(model)': use one of \(ModelPreset.allCases.map(\.rawValue))")
      }
      config = preset.config
    }
    let fullLayers = config.layers
    if let layers {
      guard (1...fullLayers).contains(layers) else {
        throw CommandError("--layers must be 1…\(fullLayers)")
      }
      config.layers = layers
    }
    guard (1...config.maxPositions).contains(seq) else {
      throw CommandError("--seq must be 1…\(config.maxPositions)")
    }
    let parameters = try recipe.parameters(for: config)
    if let generate {
      guard config.architecture != .bert, generate >= 1,
        seq + generate - 1 <= config.maxPositions
      else {
        throw CommandError(
          "--generate needs a decoder and 1…\(config.maxPositions - seq + 1) tokens")
      }
    }
    if weights != nil, config.layers < fullLayers {
      // A real folder's weights for the first K blocks only.
      let kept = Set(ModelPreset.graph(config).expectedWeights.map(\.0))
      weights = Float64Weights(tensors: weights!.tensors.filter { kept.contains($0.key) })
    }
    printError("\(name): masking the weights once…")
    // Random weights only for the blocks that run; the doubles are dropped after the setup
    // (peak RSS counts what a run needs).
    let graph = ModelPreset.graph(config)
    let secure = try await SecureModel(
      model: graph, weights: weights ?? graph.randomWeights(seed: 1), parameters: parameters)
    weights = nil
    var options = RunOptions()
    options.pipeCapacity = keyBufferMib << 20
    // Token ids: [CLS] … [SEP] with ordinary word pieces between (the costs do not depend on them).
    let ids = (0..<seq).map { i in i == 0 ? 101 : i == seq - 1 ? 102 : 1000 + (i * 7919) % 20000 }
    printError("\(name): secure run, \(seq) tokens, \(config.layers) of \(fullLayers) blocks…")
    var loopback: LoopbackPair?
    if transport != "in-memory" {
      let pair = try await LoopbackPair.connect(tls: transport == "tls")
      options.peerChannels = { (pair.p0, pair.p1) }
      loopback = pair
    }
    // The setup's peak and the run's own peak, apart (the weights kept count in both).
    let setupPeak = RunInfo.peakRSSBytes
    let runPeakMeasured = RunInfo.resetPeakRSS()
    let costs: RunCosts
    var steps: [GenerationStep]? = nil
    if let generate {
      let log = StepLog()
      costs = try await secure.generate(
        ids: ids, newTokens: generate, cache: !noCache, options: options
      ) { log.append($0) }.costs
      steps = log.all
    } else {
      costs = try await secure.infer(ids: ids, options: options).costs
    }
    await loopback?.shutdown()
    let runPeak = RunInfo.peakRSSBytes
    let peak = max(setupPeak, runPeak)
    let perKind = Self.perOpKind(costs)
    printTable(name: name, costs: costs, perKind: perKind, peak: peak, setup: secure)
    if runPeakMeasured {
      print(
        String(
          format: "peak RSS: setup %.2f GB, run %.2f GB", Double(setupPeak) / 1e9,
          Double(runPeak) / 1e9))
    }

    var result = ModelBenchResults(
      model: name, seq: seq, layers: config.layers, modelLayers: fullLayers,
      onlineSeconds: costs.onlineSeconds, offlineSeconds: costs.offlineSeconds,
      onlineBytes: costs.onlineBytes, rounds: costs.rounds,
      keyBytesPerParty: costs.keyBytesPerParty, keyBytes: costs.keyBytes,
      clientBytes: costs.clientBytes, peakRssBytes: peak, setupPeakRssBytes: setupPeak,
      runPeakRssBytes: runPeakMeasured ? runPeak : nil, peakKeyBufferBytes: costs.peakPipeBytes,
      setupSeconds: secure.setupSeconds, setupBytes: secure.setupBytes, perLayerType: perKind,
      generated: generate, cache: generate.map { _ in !noCache },
      perToken: steps?.map {
        GenerateResults.Step(
          token: $0.token, seconds: $0.seconds, onlineBytes: $0.onlineBytes, rounds: $0.rounds)
      })
    if let steps {
      for step in steps {
        print(
          String(
            format: "token %d: %.2f s wall, %.1f MB, %d rounds", step.index, step.seconds,
            Double(step.onlineBytes) / 1e6, step.rounds))
      }
    }
    if config.layers < fullLayers {
      let factor = Double(fullLayers) / Double(config.layers)
      result.extrapolatedFullModel = Extrapolation(
        note:
          "the measured blocks scaled by \(fullLayers)/\(config.layers); embedding, pooling, final norm, LM head and argmax counted once",
        onlineSeconds: extrapolate(perKind, factor) { $0.onlineSeconds },
        onlineBytes: extrapolate(perKind, factor) { Double($0.onlineBytes) },
        rounds: extrapolate(perKind, factor) { Double($0.rounds) },
        keyBytesPerParty: extrapolate(perKind, factor) { Double($0.keyBytesPerParty) })
    }
    if let json {
      try Report(
        schema: "veil.bench.model/1", ringBits: parameters.ringBits,
        params: RecipeParams(parameters, transport: transport), results: result
      ).write(to: json)
    }
  }

  /// A whole-model run: totals, memory, and costs per layer type.
  struct ModelBenchResults: Codable {
    var model: String
    var seq: Int
    var layers: Int
    var modelLayers: Int
    var onlineSeconds: Double
    var offlineSeconds: Double
    var onlineBytes: Int
    var rounds: Int
    var keyBytesPerParty: Int
    var keyBytes: [Int]
    var clientBytes: Int
    var peakRssBytes: Int
    var setupPeakRssBytes: Int
    /// Nil where the peak could not be reset between setup and run.
    var runPeakRssBytes: Int?
    var peakKeyBufferBytes: Int
    var setupSeconds: Double
    var setupBytes: Int
    var perLayerType: [String: KindCost]
    /// --generate: the new tokens, whether the KV cache was used, and each token as the client
    /// received it (the first includes the prompt).
    var generated: Int?
    var cache: Bool?
    var perToken: [GenerateResults.Step]?
    var extrapolatedFullModel: Extrapolation?
  }

  /// The measured blocks scaled to the whole model's depth.
  struct Extrapolation: Codable {
    var note: String
    var onlineSeconds: Double
    var onlineBytes: Double
    var rounds: Double
    var keyBytesPerParty: Double
  }

  /// Costs per layer type as the issue counts them: the slower party's online figures, the
  /// dealer's key generation, and P0's key bytes.
  struct KindCost: Codable {
    var onlineSeconds = 0.0
    var offlineSeconds = 0.0
    var onlineBytes = 0
    var rounds = 0
    var keyBytesPerParty = 0
    /// Inside the transformer blocks (scaled when extrapolating), not embedding or pooling.
    var inBlocks = true

    enum CodingKeys: String, CodingKey {
      case onlineSeconds, offlineSeconds, onlineBytes, rounds, keyBytesPerParty
    }
  }

  /// Truncations after products form their own category (DESIGN §9 "Counting").
  static func category(_ op: OpKind, _ gate: GateKind) -> String {
    switch op {
    case .linear, .attentionScores, .attentionContext:
      return gate == .truncate ? "truncation" : op == .linear ? "linear" : "attention products"
    case .embedding: return "embedding"
    case .gelu: return "gelu"
    case .softmax: return "softmax"
    case .layerNorm: return "layer norm"
    case .pool, .normalize: return "pooling + L2 norm"
    case .head: return "final norm + LM head"
    case .argmax: return "argmax + one-hot"
    case .rmsNorm: return "rms norm"
    default: return op.rawValue
    }
  }

  static func perOpKind(_ costs: RunCosts) -> [String: KindCost] {
    var out: [String: KindCost] = [:]
    for (op, gates) in costs.parties[0] {
      for (gate, cost) in gates {
        let other = costs.parties[1][op]?[gate] ?? GateCost()
        let key = category(op, gate)
        var c = out[key] ?? KindCost()
        c.onlineSeconds += max(cost.seconds, other.seconds)
        c.onlineBytes += cost.bytesSent + cost.bytesReceived
        c.rounds += cost.rounds
        c.keyBytesPerParty += cost.keyBytes
        c.offlineSeconds +=
          (costs.dealer[op]?[gate]?.seconds ?? 0) + max(cost.offlineSeconds, other.offlineSeconds)
        c.inBlocks = ![.embedding, .pool, .normalize, .head, .argmax].contains(op)
        out[key] = c
      }
    }
    return out
  }

  func extrapolate(_ perKind: [String: KindCost], _ factor: Double, _ value: (KindCost) -> Double)
    -> Double
  {
    perKind.values.reduce(0) { $0 + value($1) * ($1.inBlocks ? factor : 1) }
  }

  func printTable(
    name: String, costs: RunCosts, perKind: [String: KindCost], peak: Int, setup: SecureModel
  ) {
    print(
      String(
        format:
          "%@, %d tokens: online %.2f s, offline %.2f s, %.1f MB in %d rounds, keys %.1f MB per party, peak RSS %.2f GB",
        name, seq, costs.onlineSeconds, costs.offlineSeconds, Double(costs.onlineBytes) / 1e6,
        costs.rounds,
        Double(costs.keyBytesPerParty) / 1e6, Double(peak) / 1e9))
    print("layer type           online s  offline s   online MB  rounds     keys MB")
    for (kind, c) in perKind.sorted(by: { $0.value.onlineSeconds > $1.value.onlineSeconds }) {
      print(
        String(
          format: "%-19@ %9.3f %10.3f %11.1f %7d %11.1f",
          kind.padding(toLength: 19, withPad: " ", startingAt: 0),
          c.onlineSeconds, c.offlineSeconds, Double(c.onlineBytes) / 1e6, c.rounds,
          Double(c.keyBytesPerParty) / 1e6))
    }
    print(
      String(
        format: "setup (once): %.2f s, %.1f MB opened between P0 and P1", setup.setupSeconds,
        Double(setup.setupBytes) / 1e6))
  }
}

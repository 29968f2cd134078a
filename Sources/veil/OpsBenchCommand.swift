// `veil bench ops`: the papers' per-operation microbenchmarks for one recipe — GeLU on
// 128×3072, softmax on 12×128×128, LayerNorm on 128×768 — each as a secure run of its own
// (dealer, P0, P1 and client in this process, the input a secret table row-gathered by the
// client's one-hot rows), with the operation's own online and offline time, bytes, rounds and
// key bytes; and the recipe's accuracy table from the fixed-point engine.
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels
import VeilRing

/// A graph of one operation on a secret [rows, width] input: the client's token rows of the
/// table "probe.input" (ids 0…rows − 1), then the operation.
struct OperationProbe: TransformerGraph {
  enum Operation: String, CaseIterable, ExpressibleByArgument {
    case gelu, softmax
    case layerNorm = "layernorm"
  }

  let operation: Operation
  /// Softmax runs on [heads, rows, width/heads].
  let heads: Int
  let config: ModelConfig
  static let input = WeightID("probe.input")
  static let gamma = WeightID("probe.gamma")
  static let beta = WeightID("probe.beta")

  /// The papers' shapes: GeLU 128×3072, softmax 12×128×128, LayerNorm 128×768.
  init(_ operation: Operation, rows: Int = 128) {
    self.operation = operation
    heads = operation == .softmax ? 12 : 1
    let width = operation == .gelu ? 3072 : operation == .softmax ? 12 * rows : 768
    config = ModelConfig(
      architecture: .bert, vocabularySize: rows, hiddenSize: width, layers: 1, heads: heads,
      intermediateSize: width, maxPositions: rows, typeVocabularySize: 0)
  }

  var rows: Int { config.vocabularySize }
  var width: Int { config.hiddenSize }
  var shape: [Int] { operation == .softmax ? [heads, rows, width / heads] : [rows, width] }
  var kind: OpKind {
    switch operation {
    case .gelu: .gelu
    case .softmax: .softmax
    case .layerNorm: .layerNorm
    }
  }

  var expectedWeights: [(WeightID, [Int])] {
    [(Self.input, [rows, width])]
      + (operation == .layerNorm ? [(Self.gamma, [width]), (Self.beta, [width])] : [])
  }
  var embeddingTables: [WeightID] { [Self.input] }

  /// Inputs in the operation's usual range: GeLU's pre-activations in [−8, 8], attention
  /// logits in [−20, 20], hidden states of spread 0.1…30, with γ ≈ 1 and β ≈ 0.
  func weights(seed: UInt64) throws -> Float64Weights {
    var rng = SplitMix64(seed: seed)
    let count = rows * width
    let values: [Double]
    switch operation {
    case .gelu: values = (0..<count).map { _ in Double.random(in: -8...8, using: &rng) }
    case .softmax: values = (0..<count).map { _ in Double.random(in: -20...20, using: &rng) }
    case .layerNorm:
      values = (0..<rows).flatMap { r in
        let spread = 0.1 * pow(300, Double(r) / Double(rows))
        return (0..<width).map { _ in spread * Double.random(in: -1.7...1.7, using: &rng) }
      }
    }
    var tensors = [Self.input: try Tensor(shape: [rows, width], scalars: values)]
    if operation == .layerNorm {
      tensors[Self.gamma] = try Tensor(
        shape: [width], scalars: (0..<width).map { _ in Double.random(in: 0.8...1.2, using: &rng) })
      tensors[Self.beta] = try Tensor(
        shape: [width], scalars: (0..<width).map { _ in Double.random(in: -0.1...0.1, using: &rng) }
      )
    }
    return Float64Weights(tensors: tensors)
  }

  func output<E: InferenceEngine>(_ tokens: TokenInput, validTokens: Int?, engine: E) async throws
    -> E.Value
  {
    let site = OpSite(layer: 0, kind: kind, index: 0)
    let x = try await engine.tokenEmbedding(
      tokens, table: Self.input, site: OpSite(layer: -1, kind: .embedding, index: 0))
    switch operation {
    case .gelu: return try await engine.gelu(x, site: site)
    case .softmax:
      let scores = try await engine.splitHeads(
        x, heads: heads, site: OpSite(layer: 0, kind: .reshape, index: 0))
      return try await engine.softmax(scores, mask: AttentionMask(validKeys: rows), site: site)
    case .layerNorm:
      return try await engine.layerNorm(
        x, gamma: Self.gamma, beta: Self.beta, epsilon: 1e-12, site: site)
    }
  }
}

struct OpsBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ops",
    abstract: "Per-operation cost (GeLU, softmax, LayerNorm) and accuracy of a recipe.",
    discussion: """
      Each operation runs securely on its own at the papers' microbenchmark shape (GeLU \
      128×3072, softmax 12×128×128, LayerNorm 128×768); the figures are the operation's own \
      (the client's input rows and output are not counted). The accuracy table compares the \
      fixed-point engine, which the secure run equals, with Float64.
      """)

  @OptionGroup var recipe: RecipeOptions
  @Option(
    name: .customLong("op"),
    help: "Only these operations (gelu, softmax, layernorm; default: all).")
  var operations: [OperationProbe.Operation] = []
  @Option(name: .long, help: "Write JSON to FILE ('-' for stdout).") var json: String?

  func run() async throws {
    SecureModel.tuneAllocator()
    let parameters = try recipe.parameters()
    var rows: [OpRow] = []
    print(
      "recipe \(parameters.recipeName) (n=\(parameters.ringBits), f=\(parameters.fractionalBits))")
    print("operation  shape          online s  offline s  online MB  rounds   keys MB")
    for operation in operations.isEmpty ? OperationProbe.Operation.allCases : operations {
      let probe = OperationProbe(operation)
      let secure = try await SecureModel(
        model: probe, weights: try probe.weights(seed: 1), parameters: parameters)
      let report = try await secure.infer(ids: Array(0..<probe.rows))
      let costs = report.costs
      let mine = (0..<2).map {
        costs.parties[$0][probe.kind]?.values.reduce(GateCost(), +) ?? GateCost()
      }
      let dealer = costs.dealer[probe.kind]?.values.reduce(GateCost(), +) ?? GateCost()
      let online = max(mine[0].seconds, mine[1].seconds)
      let offline = dealer.seconds + max(mine[0].offlineSeconds, mine[1].offlineSeconds)
      let bytes = mine[0].bytesSent + mine[0].bytesReceived
      let keys = max(mine[0].keyBytes, mine[1].keyBytes)
      let shape = probe.shape.map(String.init).joined(separator: "×")
      print(
        String(
          format: "%@ %@ %9.3f %10.3f %10.1f %7d %9.1f",
          operation.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0),
          shape.padding(toLength: 13, withPad: " ", startingAt: 0), online, offline,
          Double(bytes) / 1e6, mine[0].rounds, Double(keys) / 1e6))
      rows.append(
        OpRow(
          op: operation.rawValue, shape: probe.shape, onlineSeconds: online,
          offlineSeconds: offline, onlineBytes: bytes, rounds: mine[0].rounds,
          keyBytesPerParty: keys))
    }
    var accuracy: [AccuracyRow] = []
    print("accuracy against Float64 (fixed-point engine = secure run)")
    for row in try await RecipeAccuracy.measure(parameters) {
      print(
        String(
          format: "%@ max %.3g  mean %.3g%@  (%@)",
          row.op.padding(toLength: 11, withPad: " ", startingAt: 0), row.maxError, row.meanError,
          row.relative ? " relative" : "", row.inputs))
      accuracy.append(
        AccuracyRow(
          op: row.op, inputs: row.inputs, maxError: row.maxError, meanError: row.meanError,
          relative: row.relative, violations: row.violations))
    }
    if let json {
      try Report(
        schema: "veil.bench.ops/1", ringBits: parameters.ringBits,
        params: RecipeParams(parameters),
        results: OpsResults(recipe: parameters.recipeName, ops: rows, accuracy: accuracy)
      ).write(to: json)
    }
  }
}

struct OpsResults: Codable {
  var recipe: String
  var ops: [OpRow]
  var accuracy: [AccuracyRow]
}

/// One operation's own secure costs at its microbenchmark shape.
struct OpRow: Codable {
  var op: String
  var shape: [Int]
  var onlineSeconds: Double
  var offlineSeconds: Double
  var onlineBytes: Int
  var rounds: Int
  var keyBytesPerParty: Int
}

/// One operation's fixed-point error against Float64.
struct AccuracyRow: Codable {
  var op: String
  var inputs: String
  var maxError: Double
  var meanError: Double
  var relative: Bool
  var violations: Int
}

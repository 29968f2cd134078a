import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// The secure run (dealer, P0, P1, client in one process) against the fixed-point engine: the
/// client's output must equal the clear integers exactly.
@Suite(.serialized) struct SecureBertTests {
  func clearOutput(
    _ config: ModelConfig, _ weights: Float64Weights, _ parameters: RecipeParameters, ids: [Int],
    valid: Int?
  )
    async throws -> [Int64]
  {
    let engine = try FixedPointEngine(weights: weights, parameters: parameters)
    return try await BertModel(config: config).sentenceEmbedding(
      TokenInput(ids: ids), validTokens: valid, engine: engine
    )
    .values
  }

  @Test(arguments: [(50, 12), (37, 12), (64, 16)])
  func tinyBertIsBitExactWithTheFixedPointEngine(bits n: Int, fractionalBits f: Int) async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config)
    let parameters = RecipeParameters(ringBits: n, fractionalBits: f)
    let model = try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
    var costs: [RunCosts] = []
    for (ids, valid) in [
      ([2, 5, 3], nil), ([2, 9, 3], nil), ([2, 5, 6, 7, 8, 5, 9, 10, 3], nil), ([2, 5, 6, 3, 0, 0], 4),
    ] as [([Int], Int?)] {
      let report = try await model.infer(ids: ids, validTokens: valid)
      let clear = try await clearOutput(config, weights, parameters, ids: ids, valid: valid)
      #expect(report.output == clear, "n=\(n) f=\(f) \(ids.count) tokens")
      print(
        "tiny BERT n=\(n) f=\(f) \(ids.count) tokens: \(report.costs.rounds) rounds, "
          + "\(report.costs.onlineBytes) P0↔P1 bytes, keys \(report.costs.keyBytes)")
      costs.append(report.costs)
    }
    // The protocol's traffic depends on the input's length, never on its values: two runs of
    // three tokens cost the same rounds, bytes and keys (each party's). Nine tokens cost more
    // bytes and keys and no fewer rounds; six (four of them real) cost bytes and keys between.
    let (short, other, long, padded) = (costs[0], costs[1], costs[2], costs[3])
    #expect(short.rounds == other.rounds && short.onlineBytes == other.onlineBytes)
    #expect(short.keyBytes == other.keyBytes && short.clientBytes == other.clientBytes)
    #expect(short.rounds <= long.rounds)
    for (fewer, more) in [(short, padded), (padded, long)] {
      #expect(fewer.onlineBytes < more.onlineBytes)
      #expect(fewer.keyBytes[0] < more.keyBytes[0] && fewer.keyBytes[1] < more.keyBytes[1])
    }
  }

  /// A tiny GPT-2 (pre-LayerNorm blocks, causal softmax, last-token output): the secure run
  /// equals the fixed-point engine, which stays close to float64; padding after the real tokens
  /// changes nothing (the causal mask hides it).
  @Test(arguments: Approximation.allCases)
  func tinyGPT2IsBitExactWithTheFixedPointEngine(_ recipe: Approximation) async throws {
    let config = ModelConfig(
      architecture: .gpt2, vocabularySize: 40, hiddenSize: 32, layers: 2, heads: 4,
      intermediateSize: 128,
      maxPositions: 16, typeVocabularySize: 0, normEpsilon: 1e-5)
    let graph = GPT2Model(config: config)
    let weights = graph.randomWeights(seed: 7)
    // SecFormer's 2Quad softmax is not softmax without distillation; its GeLU and rsqrt run
    // here with PUMA's softmax.
    var parameters = RecipeParameters.preset(recipe)
    if recipe == .secformer { parameters.softmax = .puma }
    let model = try await SecureModel(model: graph, weights: weights, parameters: parameters)
    let fixed = try FixedPointEngine(weights: weights, parameters: parameters)
    var outputs: [[Int64]] = []
    for (ids, valid) in [([4, 9, 13, 2, 30, 7], nil), ([4, 9, 13, 2, 30, 7, 0, 0], 6)]
      as [([Int], Int?)]
    {
      let report = try await model.infer(ids: ids, validTokens: valid)
      let clear = try await graph.output(TokenInput(ids: ids), validTokens: valid, engine: fixed)
      if parameters.gelu == .secformer {
        // The secure sine is within a unit of erf at scale f, not bit-exact (GateBackend).
        let gap = zip(report.output, clear.values).map { abs($0 - $1) }.max() ?? 0
        #expect(Double(gap) < Double(1 << parameters.fractionalBits) / 100, "gap \(gap) units")
      } else {
        #expect(report.output == clear.values, "\(recipe) \(ids.count) tokens")
      }
      let reference = try await graph.output(
        TokenInput(ids: ids), validTokens: valid, engine: Float64Engine(weights: weights))
      let decoded = fixed.decode(clear).scalars
      let error = zip(decoded, reference.scalars).map { abs($0 - $1) }.max() ?? 1
      #expect(error < 0.05, "fixed point within 0.05 of float64 (max error \(error))")
      outputs.append(report.output)
    }
    let paddingGap = zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max() ?? 0
    #expect(
      parameters.gelu == .secformer ? paddingGap <= 64 : paddingGap == 0,
      "padding after the real tokens changes nothing")
  }

  @Test(arguments: [Approximation.puma, .secformer])
  func tinyBertRunsEveryRecipeSecurely(_ recipe: Approximation) async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config)
    let parameters = RecipeParameters.preset(recipe)
    let model = try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
    let ids = [2, 5, 6, 7, 8, 5, 9, 10, 3]
    let report = try await model.infer(ids: ids)
    let clear = try await clearOutput(config, weights, parameters, ids: ids, valid: nil)
    if recipe == .puma {
      #expect(report.output == clear)
    } else {
      let gap = zip(report.output, clear).map { abs($0 - $1) }.max() ?? 0
      #expect(Double(gap) < Double(1 << parameters.fractionalBits) / 100, "gap \(gap) units")
    }
  }

  @Test func smallPipesStillFinishAndBoundTheBuffer() async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config, seed: 3)
    let parameters = RecipeParameters()
    let model = try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
    var options = RunOptions()
    options.pipeCapacity = 64 << 10
    options.segmentBytes = 16 << 10
    let ids = [2, 5, 6, 7, 8, 3]
    let report = try await model.infer(ids: ids, options: options)
    #expect(
      report.output == (try await clearOutput(config, weights, parameters, ids: ids, valid: nil)))
    // The pipe never holds much more than its capacity plus one segment (plus one record).
    #expect(report.costs.peakPipeBytes < report.costs.keyBytes[0])
  }
}

/// The real all-MiniLM-L6-v2 on secret shares: three sentences (1 word, a medium one, the
/// longest case up to 128 tokens) equal the fixed-point engine bit for bit and reach the
/// float64 reference (DESIGN §9: the fixed-point suite covers every sentence).
@Suite(.serialized) struct MiniLMSecureTests {
  @Test(.enabled(if: MiniLM.shouldRun && !isDebugBuild))
  func threeSentencesMatchTheFixedPointEngineBitForBit() async throws {
    let (embedder, weights) = try MiniLM.loaded.get()
    let parameters = RecipeParameters()
    let model = try await SecureModel(
      model: embedder.bert, weights: weights, parameters: parameters)
    let fixed = try FixedPointEngine(weights: weights, parameters: parameters)
    let cases = try MiniLM.cases().filter { $0.ids.count <= 128 }.sorted {
      $0.ids.count < $1.ids.count
    }
    let chosen = [cases.first!, cases[cases.count / 2], cases.last!]
    for c in chosen {
      let report = try await model.infer(ids: c.ids)
      let clear = try await embedder.bert.sentenceEmbedding(TokenInput(ids: c.ids), engine: fixed)
        .values
      #expect(report.output == clear, "\(c.ids.count) tokens")
      let cosine = cosineSimilarity(report.decoded, c.embedding)
      #expect(cosine >= 0.999)
      let costs = report.costs
      print(
        String(
          format:
            "secure MiniLM %3d tokens: cosine %.6f, online %.2f s, offline %.2f s, %.1f MB, %d rounds, keys %.1f MB/party",
          c.ids.count, cosine, costs.onlineSeconds, costs.offlineSeconds,
          Double(costs.onlineBytes) / 1e6, costs.rounds,
          Double(costs.keyBytes[0]) / 1e6))
    }
  }
}

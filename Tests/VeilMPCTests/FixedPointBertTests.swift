import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// The fixed-point engine on a tiny random BERT, end to end against Float64.
@Suite struct FixedPointBertTests {
  func reference(_ config: ModelConfig, _ weights: Float64Weights, ids: [Int]) async throws
    -> [Double]
  {
    try await BertModel(config: config).sentenceEmbedding(
      TokenInput(ids: ids), engine: Float64Engine(weights: weights)
    )
    .scalars
  }

  /// (n, f, heads): SIGMA's formats, PUMA's n = 64 at f = 16, a coarser f = 10, and a
  /// power-of-two 1/√d_head (heads = 2: d_head = 16).
  @Test(arguments: [(50, 12, 4), (37, 12, 4), (64, 12, 4), (50, 12, 2), (64, 16, 4), (40, 10, 4)])
  func tinyBertMatchesFloat64(bits n: Int, fractionalBits f: Int, heads: Int) async throws {
    let config = TinyBert.config(heads: heads)
    let weights = TinyBert.weights(config)
    let engine = try FixedPointEngine(
      weights: weights, parameters: RecipeParameters(ringBits: n, fractionalBits: f))
    let bert = BertModel(config: config)
    for ids in [[2, 5, 3], [2, 5, 6, 7, 8, 5, 9, 10, 3], Array(repeating: 6, count: 33)] {
      let fixed = try await engine.sentenceEmbedding(bert, ids: ids)
      let plain = try await reference(config, weights, ids: ids)
      let cosine = cosineSimilarity(fixed, plain)
      print("tiny BERT n=\(n) f=\(f) heads=\(heads) \(ids.count) tokens: cosine \(cosine)")
      #expect(cosine >= 0.999)
    }
    #expect(engine.statistics.totalViolations == 0, "\(engine.statistics.violationMessages)")
  }

  @Test func paddingAndRepetitionGiveIdenticalIntegers() async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config, seed: 2)
    let engine = try FixedPointEngine(weights: weights)
    let bert = BertModel(config: config)
    let ids = [2, 5, 6, 7, 3]
    let plain = try await bert.sentenceEmbedding(TokenInput(ids: ids), engine: engine)
    let again = try await bert.sentenceEmbedding(TokenInput(ids: ids), engine: engine)
    #expect(plain == again)
    // Padding rows never reach the real ones: masked keys are exact zeros, every other op is
    // row-wise, and pooling stops at the valid rows.
    let padded = try await bert.sentenceEmbedding(
      TokenInput(ids: ids + [0, 0, 0, 0]), validTokens: 5, engine: engine)
    #expect(padded == plain)
    let unmasked = try await bert.sentenceEmbedding(
      TokenInput(ids: ids + [0, 0, 0, 0]), engine: engine)
    #expect(unmasked != plain)
  }

  @Test func floorTruncationsAgreeWithSlackOnes() async throws {
    // TrFloor (reduce + sign extension) and TrWithSlack give the same integers inside the
    // headroom, so the choice is one of cost only.
    let config = TinyBert.config(layers: 1)
    let weights = TinyBert.weights(config, seed: 3)
    let bert = BertModel(config: config)
    let slack = try FixedPointEngine(
      weights: weights, parameters: RecipeParameters(productTruncation: .slack))
    let floor = try FixedPointEngine(
      weights: weights, parameters: RecipeParameters(productTruncation: .reduce))
    let ids = [2, 7, 8, 9, 3]
    let a = try await bert.sentenceEmbedding(TokenInput(ids: ids), engine: slack)
    let b = try await bert.sentenceEmbedding(TokenInput(ids: ids), engine: floor)
    #expect(a == b)
  }

  @Test func rangesAreRecordedPerGate() async throws {
    let config = TinyBert.config(layers: 1)
    let engine = try FixedPointEngine(weights: TinyBert.weights(config))
    _ = try await engine.sentenceEmbedding(BertModel(config: config), ids: [2, 5, 6, 3])
    let kinds = Set(engine.statistics.byKind().map(\.kind))
    for kind in [OpKind.linear, .gelu, .softmax, .layerNorm, .attentionScores, .pool, .normalize] {
      #expect(kinds.contains(kind), "no range recorded for \(kind)")
    }
    let report = engine.statistics.report()
    #expect(report.contains("gelu/gelu.inputBound"))
    print(report)
  }

  @Test func weightsThatDoNotFitAreRefused() throws {
    let config = TinyBert.config(layers: 1)
    var tensors = TinyBert.weights(config).tensors
    tensors["embeddings.LayerNorm.bias"] = try Tensor(
      shape: [32], scalars: [1e12] + Array(repeating: 0, count: 31))
    #expect(throws: MPCError.self) {
      try FixedPointEngine(
        weights: Float64Weights(tensors: tensors), parameters: RecipeParameters(ringBits: 37))
    }
  }

  @Test func invalidParametersAreRefused() throws {
    let weights = TinyBert.weights(TinyBert.config(layers: 1))
    #expect(throws: MPCError.self) {
      try FixedPointEngine(weights: weights, parameters: RecipeParameters(ringBits: 30))
    }
    #expect(throws: MPCError.self) {
      try FixedPointEngine(
        weights: weights, parameters: RecipeParameters(productTruncation: .signExtend))
    }
  }
}

/// The recipe over a second back end (a census wrapped around the clear one): the same
/// integers, and a count of the gates the secure engines will have to run.
@Suite struct GateCensusTests {
  @Test func censusForwardsExactlyAndCountsGates() async throws {
    let config = TinyBert.config(layers: 2)
    let weights = TinyBert.weights(config, seed: 4)
    let bert = BertModel(config: config)
    let parameters = RecipeParameters()
    let clear = try FixedPointEngine(weights: weights, parameters: parameters)
    let census = CensusBackend(clear.backend)
    let counted = try RecipeEngine(backend: census, parameters: parameters)
    let ids = [2, 5, 6, 7, 8, 9, 3]
    let a = try await bert.sentenceEmbedding(TokenInput(ids: ids), engine: clear)
    let b = try await bert.sentenceEmbedding(TokenInput(ids: ids), engine: counted)
    #expect(a == b)
    let counts = census.tally.snapshot
    // Per block: 6 GEMMs with the fixed weight masks, 2 attention products.
    #expect(counts[.linear]?[.linear]?.calls == 6 * config.layers)
    #expect(counts[.attentionScores]?[.matmul]?.calls == config.layers)
    #expect(counts[.attentionContext]?[.matmul]?.calls == config.layers)
    // GeLU: one truncation, one DReLU key with three offsets, three selects left unopened and
    // two openings (the clipped index; ReLU minus the table's output), one 8-bit LUT.
    let gelu = try #require(counts[.gelu])
    #expect(gelu[.compare]?.evaluations == 3 * 7 * config.intermediateSize * config.layers)
    #expect(gelu[.lookup]?.elementsByBits == [8: 7 * config.intermediateSize * config.layers])
    #expect(gelu[.selectUnopened]?.calls == 3 * config.layers)
    #expect(gelu[.open]?.calls == 2 * config.layers)
    #expect(gelu[.select] == nil)
    // Softmax compares run in the reduced ring (the max tree) and, for the exponential's clip,
    // in that ring less the low byte split off first.
    #expect(
      counts[.softmax]?[.compare]?.elementsByBits.keys.sorted() == [
        parameters.softmaxRingBits - parameters.expClipBits / 2, parameters.softmaxRingBits,
      ])
    // GeLU's DReLU runs in its reduced ring.
    #expect(gelu[.compare]?.elementsByBits.keys.sorted() == [parameters.geluReducedBits])
    print(census.tally.report())
  }
}

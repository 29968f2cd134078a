// The exact communication and key sizes of a few tiny graphs (issue 20): rounds, P0↔P1 bytes,
// each party's key bytes and the client's bytes. A change that merges fewer openings, grows a
// key or adds a round fails here; update a pinned figure only with the reason in the commit.
import Foundation
import Testing
import VeilModels
import VeilTestSupport

@testable import VeilMPC

@Suite(.serialized) struct PinnedCostTests {
  struct Pinned: Equatable, CustomStringConvertible {
    var rounds: Int
    var onlineBytes: Int
    var keyBytes: [Int]
    var clientBytes: Int
    var description: String {
      "Pinned(rounds: \(rounds), onlineBytes: \(onlineBytes), keyBytes: \(keyBytes), clientBytes: \(clientBytes))"
    }
  }

  static func costs(
    _ model: any TransformerGraph, _ weights: Float64Weights, _ recipe: Approximation, ids: [Int]
  )
    async throws -> Pinned
  {
    var parameters = RecipeParameters.preset(recipe)
    if recipe == .secformer { parameters.softmax = .puma }
    let secure = try await SecureModel(model: model, weights: weights, parameters: parameters)
    let c = try await secure.infer(ids: ids).costs
    return Pinned(
      rounds: c.rounds, onlineBytes: c.onlineBytes, keyBytes: c.keyBytes, clientBytes: c.clientBytes
    )
  }

  static let gpt2Config = ModelConfig(
    architecture: .gpt2, vocabularySize: 40, hiddenSize: 32, layers: 2, heads: 4,
    intermediateSize: 128, maxPositions: 16, typeVocabularySize: 0, normEpsilon: 1e-5)

  /// Measured 2026-12-03 (commit after 93445d7).
  static let expected: [String: Pinned] = [
    "sigma/bert": Pinned(
      rounds: 205, onlineBytes: 248040, keyBytes: [1_998_674, 1_897_514, 589], clientBytes: 2388),
    "sigma/gpt2": Pinned(
      rounds: 190, onlineBytes: 284540, keyBytes: [2_289_376, 2_171_488, 589], clientBytes: 3512),
    "puma/bert": Pinned(
      rounds: 323, onlineBytes: 540896, keyBytes: [4_879_632, 4_615_280, 653], clientBytes: 3024),
    "puma/gpt2": Pinned(
      rounds: 302, onlineBytes: 618454, keyBytes: [5_589_753, 5_283_945, 653], clientBytes: 4464),
    "secformer/bert": Pinned(
      rounds: 827, onlineBytes: 458142, keyBytes: [4_387_042, 4_040_058, 673], clientBytes: 3024),
    "secformer/gpt2": Pinned(
      rounds: 721, onlineBytes: 509290, keyBytes: [5_000_504, 4_595_368, 673], clientBytes: 4464),
  ]

  @Test(arguments: Approximation.allCases)
  func tinyGraphsCostExactlyThePinnedFigures(_ recipe: Approximation) async throws {
    let bertConfig = TinyBert.config()
    let bert = try await Self.costs(
      BertModel(config: bertConfig), TinyBert.weights(bertConfig), recipe, ids: [2, 5, 6, 7, 3])
    let gpt2 = GPT2Model(config: Self.gpt2Config)
    let gpt = try await Self.costs(
      gpt2, gpt2.randomWeights(seed: 7), recipe, ids: [4, 9, 13, 2, 30, 7])
    #expect(Self.expected["\(recipe.rawValue)/bert"] == bert, "tiny BERT, \(recipe): \(bert)")
    #expect(Self.expected["\(recipe.rawValue)/gpt2"] == gpt, "tiny GPT-2, \(recipe): \(gpt)")
  }
}

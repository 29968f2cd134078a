// The graph census behind the streams' graph digest and op count: deterministic, sensitive to
// everything that shapes the graph (length, valid tokens, recipe, ring), equal to what the
// dealer really ships, and a run whose roles walk different graphs is refused before its
// first key.
import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilTestSupport

@testable import VeilMPC

@Suite struct GraphCensusTests {
  static let config = TinyBert.config()

  static func census(_ manifest: SetupManifest, tokens: Int, valid: Int) async throws -> GraphCensus
  {
    // `walking` directly: the per-process cache would hide a nondeterministic walk.
    try await GraphCensus.walking(manifest) {
      try await ModelRun.walk(
        BertModel(config: config), manifest.parameters, tokens: tokens, valid: valid, $0)
    }
  }

  static func manifest(_ parameters: RecipeParameters) -> SetupManifest {
    let model = BertModel(config: config)
    return SetupManifest(
      model: model, shapes: Dictionary(uniqueKeysWithValues: model.expectedWeights),
      parameters: parameters)
  }

  @Test func theCensusNamesEveryThingThatShapesTheGraph() async throws {
    let sigma = Self.manifest(.preset(.sigma))
    let base = try await Self.census(sigma, tokens: 8, valid: 8)
    #expect(try await Self.census(sigma, tokens: 8, valid: 8) == base, "the walk is deterministic")
    #expect(base.clientRecords == 2, "the embedding seeds and the output mask")
    #expect(base.partyRecords > 20)
    var digests: Set<[UInt8]> = [base.digest]
    for other in [
      try await Self.census(sigma, tokens: 8, valid: 6),
      try await Self.census(sigma, tokens: 9, valid: 9),
      try await Self.census(Self.manifest(.preset(.puma)), tokens: 8, valid: 8),
      try await Self.census(
        Self.manifest(RecipeParameters(ringBits: 37, fractionalBits: 12)), tokens: 8, valid: 8),
    ] {
      #expect(digests.insert(other.digest).inserted, "two graphs share a census digest")
    }
  }

  /// The census's op counts are the streams' record counts: a secure run's readers refuse a
  /// stream of another count, so a run that completes proves them equal; a run whose parties
  /// expect another graph than the dealer walks is refused.
  @Test func aRunOfAnotherGraphIsRefusedBeforeItsFirstKey() async throws {
    let weights = TinyBert.weights(Self.config)
    let model = try await SecureModel(
      model: BertModel(config: Self.config), weights: weights, parameters: .preset(.sigma))
    _ = try await model.infer(ids: [2, 5, 6, 3])
    // The dealer walks the whole model, the parties expect its census; the census given says
    // the graph is one squaring.
    let x = WireTensor(WireFormat(bits: 50, scale: 12), [4], [UInt64](repeating: 0, count: 4))
    let site = GateSite(op: OpSite(layer: 0, kind: .gelu, index: 0), gate: "census test")
    let graph = BertModel(config: Self.config)
    let parameters = model.parameters
    do {
      _ = try await model.run(
        tokens: 4, valid: 4, census: { _ = try await $0.square(x, site: site) },
        options: RunOptions(),
        dealer: { try await ModelRun.dealer(graph, parameters, tokens: 4, valid: 4, $0) },
        party: { try await ModelRun.party(graph, parameters, tokens: 4, valid: 4, $0) },
        client: { keys, _, _ in
          try await keys.finish(afterOp: 0)
          return []
        })
      Issue.record("a run whose roles walk different graphs completed")
    } catch {
      #expect("\(error)".contains("key stream refused"), "\(error)")
    }
  }
}

import Foundation
import Testing
import VeilTestSupport
import VeilFSS
import VeilModels
import VeilRing

@testable import VeilMPC

/// The real all-MiniLM-L6-v2 through the fixed-point engine against the float64 references of
/// VeilModelsTests/Data/embedding_cases.json: the issue's bar (cosine ≥ 0.999 for every
/// sentence) that the secure run must meet, since it equals this engine bit for bit.
@Suite(.serialized) struct MiniLMFixedPointTests {
  /// Every case in release builds; the short ones in debug builds (10–50× slower).
  func selectedCases(debugLimit: Int = 16) throws -> [ReferenceEmbeddings.Case] {
    let cases = try MiniLM.cases()
    return isDebugBuild ? cases.filter { $0.ids.count <= debugLimit } : cases
  }

  func run(_ parameters: SigmaParameters, debugLimit: Int = 16) async throws
    -> (cosines: [Double], engine: FixedPointEngine)
  {
    let (embedder, weights) = try MiniLM.loaded.get()
    let engine = try FixedPointEngine(weights: weights, parameters: parameters)
    var cosines: [Double] = []
    for c in try selectedCases(debugLimit: debugLimit) {
      let start = Date()
      let vector = try await engine.sentenceEmbedding(embedder.bert, ids: c.ids)
      let cosine = cosineSimilarity(vector, c.embedding)
      cosines.append(cosine)
      print(
        String(
          format: "MiniLM %@ %3d tokens cosine %.6f (%.2f s) %@", parameters.description, c.ids.count, cosine,
          Date().timeIntervalSince(start), String(c.text.prefix(30)).replacingOccurrences(of: "\n", with: " ")))
    }
    let mean = cosines.reduce(0, +) / Double(max(cosines.count, 1))
    print("MiniLM \(parameters): \(cosines.count) sentences, min cosine \(cosines.min() ?? 0), mean \(mean)")
    print(engine.statistics.report())
    return (cosines, engine)
  }

  @Test(.enabled(if: MiniLM.shouldRun))
  func everySentenceReachesCosine0999AtN50() async throws {
    let (cosines, engine) = try await run(SigmaParameters(ringBits: 50, fractionalBits: 12))
    #expect(!cosines.isEmpty)
    for (c, cosine) in zip(try selectedCases(), cosines) {
      #expect(cosine >= 0.999, "cosine \(cosine) for \(c.ids.count) tokens: \(c.text.prefix(40))")
    }
    #expect(engine.statistics.totalViolations == 0, "\(engine.statistics.violationMessages)")
  }

  @Test(.enabled(if: MiniLM.shouldRun))
  func narrowRingN37() async throws {
    // SIGMA uses n = 37 for BERT-tiny only; MiniLM's ranges decide whether it fits.
    // Its LayerNorm squares x − μ at scale 6 (`layerNormSquareShift`), else Σ(x − μ)² wraps.
    let (cosines, engine) = try await run(SigmaParameters(ringBits: 37, fractionalBits: 12), debugLimit: 8)
    #expect(!cosines.isEmpty)
    for cosine in cosines { #expect(cosine >= 0.999) }
    #expect(engine.statistics.totalViolations == 0, "\(engine.statistics.violationMessages.prefix(5))")
  }

  /// Why products round (add 2^(s−1) before the exact floor) instead of SIGMA's plain floor:
  /// with floors the 256-token sentence falls below the 0.999 bar, with rounding it does not.
  @Test(.enabled(if: MiniLM.shouldRun && !isDebugBuild))
  func flooredProductsMissTheBarOnLongInputs() async throws {
    let (embedder, weights) = try MiniLM.loaded.get()
    let longest = try #require(try MiniLM.cases().max { $0.ids.count < $1.ids.count })
    let floored = try FixedPointEngine(weights: weights, parameters: SigmaParameters(roundProducts: false))
    let rounded = try FixedPointEngine(weights: weights)
    let flooredCosine = cosineSimilarity(
      try await floored.sentenceEmbedding(embedder.bert, ids: longest.ids), longest.embedding)
    let roundedCosine = cosineSimilarity(
      try await rounded.sentenceEmbedding(embedder.bert, ids: longest.ids), longest.embedding)
    print("MiniLM \(longest.ids.count) tokens: floored products \(flooredCosine), rounded \(roundedCosine)")
    #expect(flooredCosine < 0.999)
    #expect(roundedCosine >= 0.999)
  }
}

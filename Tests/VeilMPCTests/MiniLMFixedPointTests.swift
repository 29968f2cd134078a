import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

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

  func run(_ parameters: RecipeParameters, debugLimit: Int = 16) async throws
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
          format: "MiniLM %@ %3d tokens cosine %.6f (%.2f s) %@", parameters.description,
          c.ids.count, cosine,
          Date().timeIntervalSince(start),
          String(c.text.prefix(30)).replacingOccurrences(of: "\n", with: " ")))
    }
    let mean = cosines.reduce(0, +) / Double(max(cosines.count, 1))
    print(
      "MiniLM \(parameters): \(cosines.count) sentences, min cosine \(cosines.min() ?? 0), mean \(mean)"
    )
    print(engine.statistics.report())
    return (cosines, engine)
  }

  @Test(.enabled(if: MiniLM.shouldRun))
  func everySentenceReachesCosine0999AtN50() async throws {
    let (cosines, engine) = try await run(RecipeParameters(ringBits: 50, fractionalBits: 12))
    #expect(!cosines.isEmpty)
    for (c, cosine) in zip(try selectedCases(), cosines) {
      #expect(cosine >= 0.999, "cosine \(cosine) for \(c.ids.count) tokens: \(c.text.prefix(40))")
    }
    #expect(engine.statistics.totalViolations == 0, "\(engine.statistics.violationMessages)")
  }

  /// PUMA's recipe at its published ring (n = 64, f = 18) meets the issue's bar of 0.999 on
  /// every sentence. SecFormer's GeLU (its Fourier erf is 0.058 off GeLU at x ≈ −3.3) with its
  /// rsqrt and an exact softmax (SIGMA's) stays above 0.99; SecFormer's own 2Quad softmax is
  /// not softmax without distillation (RECIPES §2.4): measured and reported, not held to a bar.
  @Test(
    .enabled(if: MiniLM.shouldRun && !isDebugBuild),
    arguments: ["puma", "secformer+sigma", "secformer"])
  func everyRecipeOnEverySentence(_ name: String) async throws {
    var parameters = RecipeParameters.preset(name == "puma" ? .puma : .secformer)
    if name == "secformer+sigma" { parameters.softmax = .sigma }
    let (cosines, engine) = try await run(parameters)
    #expect(cosines.count >= 20)
    if name == "secformer" {
      // MiniLM's scores leave |x + 5| < 16 (the division's public bound) often: reported too.
      print(
        "2Quad bound violations: \(engine.statistics.violationTotals[.recipeBound, default: 0])")
      // No bar to hold it to, but the engine is deterministic: it must reproduce the min and
      // mean cosine that README and BENCHMARKS report for it (−0.013 / 0.667 over the 28
      // sentences), within their last printed digit.
      let mean = cosines.reduce(0, +) / Double(cosines.count)
      #expect(cosines.count == 28 && cosines.allSatisfy(\.isFinite))
      #expect(abs((cosines.min() ?? .nan) - -0.013) <= 0.001, "min cosine \(cosines.min() ?? .nan)")
      #expect(abs(mean - 0.667) <= 0.001, "mean cosine \(mean)")
      return
    } else {
      let bar = name == "puma" ? 0.999 : 0.99
      for (c, cosine) in zip(try selectedCases(), cosines) {
        #expect(cosine >= bar, "\(name): cosine \(cosine) for \(c.ids.count) tokens")
      }
    }
    #expect(
      engine.statistics.violationTotals[.recipeBound, default: 0] == 0,
      "\(engine.statistics.violationMessages.prefix(5))")
  }

  @Test(.enabled(if: MiniLM.shouldRun))
  func narrowRingN37() async throws {
    // SIGMA uses n = 37 for BERT-tiny only; MiniLM's ranges decide whether it fits.
    // Its LayerNorm squares x − μ at scale 6 (`layerNormSquareShift`), else Σ(x − μ)² wraps.
    let (cosines, engine) = try await run(
      RecipeParameters(ringBits: 37, fractionalBits: 12), debugLimit: 8)
    #expect(!cosines.isEmpty)
    for cosine in cosines { #expect(cosine >= 0.999) }
    #expect(
      engine.statistics.totalViolations == 0, "\(engine.statistics.violationMessages.prefix(5))")
  }

  /// Why products round (add 2^(s−1) before the exact floor) instead of SIGMA's plain floor:
  /// with floors the 256-token sentence falls below the 0.999 bar, with rounding it does not.
  @Test(.enabled(if: MiniLM.shouldRun && !isDebugBuild))
  func flooredProductsMissTheBarOnLongInputs() async throws {
    let (embedder, weights) = try MiniLM.loaded.get()
    let longest = try #require(try MiniLM.cases().max { $0.ids.count < $1.ids.count })
    let floored = try FixedPointEngine(
      weights: weights, parameters: RecipeParameters(roundProducts: false))
    let rounded = try FixedPointEngine(weights: weights)
    let flooredCosine = cosineSimilarity(
      try await floored.sentenceEmbedding(embedder.bert, ids: longest.ids), longest.embedding)
    let roundedCosine = cosineSimilarity(
      try await rounded.sentenceEmbedding(embedder.bert, ids: longest.ids), longest.embedding)
    print(
      "MiniLM \(longest.ids.count) tokens: floored products \(flooredCosine), rounded \(roundedCosine)"
    )
    #expect(flooredCosine < 0.999)
    #expect(roundedCosine >= 0.999)
  }
}

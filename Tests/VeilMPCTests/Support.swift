import Foundation
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// A site for gates called directly from tests.
func testSite(_ kind: OpKind = .add, _ gate: String = "test") -> GateSite {
  GateSite(op: OpSite(layer: 0, kind: kind, index: 0), gate: gate)
}

let testOp = OpSite(layer: 0, kind: .add, index: 0)

/// A clear back end and recipe at (n, f) holding `weights`.
func makeRecipe(
  _ parameters: RecipeParameters = RecipeParameters(), weights: [String: Tensor<Double>] = [:]
) throws -> Recipe<ClearBackend> {
  try RecipeAccuracy.recipe(
    parameters,
    weights: Dictionary(uniqueKeysWithValues: weights.map { (WeightID($0.key), $0.value) }))
}

/// Reals encoded at the format (round to nearest), as a clear value.
func encode(_ reals: [Double], shape: [Int], bits: Int = 50, scale: Int = 12) throws -> FixedTensor
{
  try FixedTensor(encoding: reals, shape: shape, format: WireFormat(bits: bits, scale: scale))
}

func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

/// The real all-MiniLM-L6-v2 (found by TestModel) and its float64 reference cases.
enum MiniLM {
  static var shouldRun: Bool { TestModel.shouldRun }

  static func cases() throws -> [ReferenceEmbeddings.Case] { try ReferenceEmbeddings.cases() }

  /// Loads the model once per process (weights read as Float64).
  static let loaded: Result<(SentenceEmbedder, Float64Weights), Error> = Result {
    let embedder = try SentenceEmbedder(modelDirectory: TestModel.directory())
    return (embedder, try embedder.float64Weights())
  }
}

#if DEBUG
  let isDebugBuild = true
#else
  let isDebugBuild = false
#endif

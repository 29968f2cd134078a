import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// Every recipe's operations in the fixed-point engine against Float64 (the accuracy table of
/// `veil bench ops`): each within its approximation's own error — the published polynomial or
/// series error plus a few units — and no recipe bound broken on these inputs.
@Suite struct RecipeTests {
  /// Worst absolute (relative for reciprocal and rsqrt) error allowed per operation. PUMA's
  /// GeLU and SiLU polynomials are 0.0209 and 0.0717 off at their segment edges, SecFormer's
  /// Fourier erf gives GeLU 0.0582 at x ≈ −3.3, and its Goldschmidt division converges to
  /// 0.133 at the bottom of the 2Quad range (B/64); 2Quad itself is not softmax.
  static let bounds: [Approximation: [String: Double]] = [
    .sigma: [
      "gelu": 0.005, "silu": 0.005, "softmax": 0.002, "reciprocal": 0.005, "rsqrt": 0.003,
      "layerNorm": 0.004, "rmsNorm": 0.004,
    ],
    .puma: [
      "gelu": 0.0215, "silu": 0.0725, "softmax": 0.003, "reciprocal": 1e-4, "rsqrt": 5e-4,
      "layerNorm": 5e-4, "rmsNorm": 5e-4,
    ],
    .secformer: [
      "gelu": 0.059, "softmax": 1, "reciprocal": 0.14, "rsqrt": 1e-4, "layerNorm": 2e-4,
      "rmsNorm": 2e-4,
    ],
  ]

  @Test(arguments: Approximation.allCases)
  func everyOperationIsWithinItsApproximationError(_ recipe: Approximation) async throws {
    let parameters = RecipeParameters.preset(recipe)
    let rows = try await RecipeAccuracy.measure(parameters)
    #expect(Set(rows.map(\.op)) == Set(Self.bounds[recipe]?.keys ?? [:].keys))
    for row in rows {
      print(
        "\(recipe) \(row.op): max \(row.maxError) mean \(row.meanError)\(row.relative ? " (relative)" : "")"
      )
      let bound = try #require(Self.bounds[recipe]?[row.op])
      #expect(row.maxError <= bound, "\(recipe) \(row.op)")
      #expect(row.meanError <= row.maxError && row.count > 100)
      #expect(row.violations == 0, "\(recipe) \(row.op): \(row.violations) bound violations")
    }
  }

  /// The same settings at SIGMA's ring (n = 50, f = 12), for comparisons at equal width.
  @Test(arguments: [Approximation.puma, .secformer])
  func theRecipesAlsoRunAtSigmasRing(_ recipe: Approximation) async throws {
    let parameters = RecipeParameters.preset(recipe, ringBits: 50, fractionalBits: 12)
    for row in try await RecipeAccuracy.measure(parameters) where row.op != "softmax" {
      let bound = try #require(Self.bounds[recipe]?[row.op])
      // Four fewer fractional bits (SecFormer) or six (PUMA): a few more units of error.
      #expect(row.maxError <= bound + 0.01, "\(recipe) at 50/12 \(row.op): \(row.maxError)")
    }
  }

  @Test func aRecipeThatDoesNotFitItsRingIsRefused() throws {
    #expect(throws: MPCError.self) {
      try RecipeParameters.preset(.puma, ringBits: 37, fractionalBits: 12).validate()
    }
    var parameters = RecipeParameters.preset(.secformer)
    parameters.rsqrtIterations = 0
    #expect(throws: MPCError.self) { try parameters.validate() }
    #expect(RecipeParameters.preset(.puma).recipeName == "puma")
    parameters = RecipeParameters.preset(.secformer)
    parameters.softmax = .sigma
    #expect(parameters.recipeName == "secformer+sigma+secformer")
  }

  @Test func secFormerHasNoSiLU() async throws {
    let recipe = try makeRecipe(RecipeParameters.preset(.secformer))
    let x = try encode([1], shape: [1], bits: 64, scale: 16)
    await #expect(throws: MPCError.self) { try await recipe.silu(x, op: testOp) }
  }

  /// The secure sine's table (IEEE basic operations only, no libm, so both parties compute the
  /// same public sines) is exact at the quadrants and within 10⁻¹⁴ of libm elsewhere.
  @Test func theTurnTableIsExactAtTheQuadrants() {
    let table = TurnTable(bits: 16)
    for (j, expected) in [(0, (0.0, 1.0)), (1 << 14, (1.0, 0.0)), (1 << 15, (0.0, -1.0))] {
      let (s, c) = table.sinCos(UInt64(j))
      #expect(abs(s - expected.0) < 1e-15 && abs(c - expected.1) < 1e-15)
    }
    var worst = 0.0
    for j in stride(from: 0, to: 1 << 16, by: 37) {
      let (s, c) = table.sinCos(UInt64(j))
      let angle = 2 * Double.pi * Double(j) / 65536
      worst = max(worst, abs(s - sin(angle)), abs(c - cos(angle)))
    }
    #expect(worst < 1e-14)
  }
}

import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// PUMA's and SecFormer's approximations in the fixed-point engine against Float64.
@Suite struct RecipeTests {
  @Test(arguments: Approximation.allCases)
  func accuracyTable(_ recipe: Approximation) async throws {
    let parameters = RecipeParameters.preset(recipe)
    for row in try await RecipeAccuracy.measure(parameters) {
      print(
        "\(recipe) \(row.op): max \(row.maxError) mean \(row.meanError)\(row.relative ? " (relative)" : "") violations \(row.violations)"
      )
    }
  }
}

import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// Each approximation of the SIGMA recipe against Float64, on the inputs the issue names.
/// The measured worst errors are printed; the bounds are the recipe's analytic ones.
@Suite struct ApproximationTests {
  @Test(arguments: [37, 50, 64])
  func geluMatchesFloat64OnMinusEightToEight(bits n: Int) async throws {
    let recipe = try makeRecipe(RecipeParameters(ringBits: n))
    let xs =
      (0...4096).map { -8 + Double($0) / 256 } + [-1e-4, 1e-4, 3.98, 3.99, -3.98, -3.99, 100, -100]
    let x = try encode(xs, shape: [xs.count], bits: n)
    let y = try await recipe.gelu(x, op: testOp).decoded().scalars
    var worst = 0.0
    var worstAt = 0.0
    for (input, output) in zip(x.decoded().scalars, y) where abs(gelu(input) - output) > worst {
      worst = abs(gelu(input) - output)
      worstAt = input
    }
    print("GeLU n=\(n): max |error| \(worst) at x = \(worstAt)")
    // Bucket half-width 2^-7 × max|h′| = ½, plus ½ ulp of the table and the clip region's h < 1.4e-4.
    #expect(worst < 0.5 / 128 + 2.5 / 4096)
    #expect(recipe.backend.recorder.totalViolations == 0)
  }

  @Test func geluCountsInputsBeyondItsBound() async throws {
    // The default reduced ring of 18 bits at scale 6 holds |x| < 2^(18−6−2) = 1024.
    let recipe = try makeRecipe(RecipeParameters(ringBits: 37))
    let x = try encode([1, 1023.5, 1024.5, -5000], shape: [4], bits: 37)
    _ = try await recipe.gelu(x, op: testOp)
    #expect(recipe.backend.recorder.violationTotals[.recipeBound] == 2)
    // A wider ring is capped at SIGMA's n − 2f + s + 1 = 20 bits (n = 37, f = 12): the bound
    // is then SIGMA's |x| < 2^(n−f−1) at scale f, i.e. |x| < 2^12 = 4096.
    let wide = try makeRecipe(RecipeParameters(ringBits: 37, geluRingBits: 40))
    #expect(wide.parameters.geluReducedBits == 20)
    _ = try await wide.gelu(
      try encode([1, 4095, 4096.5, -5000], shape: [4], bits: 37), op: testOp)
    #expect(wide.backend.recorder.violationTotals[.recipeBound] == 2)
  }

  func softmaxReference(_ row: [Double], valid: Int) -> [Double] {
    let visible = row.prefix(valid)
    let top = visible.max()!
    let e = visible.map { exp($0 - top) }
    let s = e.reduce(0, +)
    return e.map { $0 / s } + Array(repeating: 0, count: row.count - valid)
  }

  @Test func softmaxRowsOfEveryLengthWithMaskedKeys() async throws {
    let recipe = try makeRecipe()
    var rng = SplitMix64(seed: 11)
    var worst = 0.0
    var worstSum = 0.0
    var worstRawSum = 0.0
    let lengths = isDebugBuild ? Array(1...24) + [31, 64, 100, 128] : Array(1...128)
    for width in lengths {
      // Four rows: all keys valid, and (for width > 1) a padded row set with fewer valid keys.
      for valid in Set([width, max(1, width / 2), max(1, width - 1)]).sorted() {
        let rows = 4
        var logits = (0..<(rows * width)).map { _ in Double.random(in: -20...20, using: &rng) }
        if width > 2 { for j in 0..<width { logits[j] = 3 } }  // one row of equal scores
        let x = try encode(logits, shape: [1, rows, width])
        let p = try await recipe.softmax(x, mask: AttentionMask(validKeys: valid), op: testOp)
          .decoded().scalars
        let decoded = x.decoded().scalars
        for r in 0..<rows {
          let row = Array(decoded[(r * width)..<((r + 1) * width)])
          let reference = softmaxReference(row, valid: valid)
          let got = Array(p[(r * width)..<((r + 1) * width)])
          for j in valid..<width {
            #expect(got[j] == 0, "masked key \(j) of \(width) got \(got[j])")
          }
          for (a, b) in zip(got, reference) { worst = max(worst, abs(a - b)) }
          // The row's common factor 1/s is within 1/128 (its index is s to 2^-7); each of
          // the `valid` probabilities adds at most ½ ulp of rounding.
          let sumBound = 1.0 / 128 + Double(valid) / 8192 + 1e-3
          worstSum = max(worstSum, abs(got.reduce(0, +) - 1) / sumBound)
          worstRawSum = max(worstRawSum, abs(got.reduce(0, +) - 1))
        }
      }
    }
    print(
      "softmax: max |error| \(worst), max |row sum − 1| \(worstRawSum) (\(worstSum) of its bound)")
    // The reciprocal's index is the sum to 2^-7 (≤ 0.8 % of 1/s near s = 1) plus ≈2 ulp.
    #expect(worst < 0.0085)
    #expect(worstSum <= 1)
    #expect(recipe.backend.recorder.totalViolations == 0)
  }

  @Test func causalSoftmaxMatchesTheLowerTriangle() async throws {
    let recipe = try makeRecipe()
    var rng = SplitMix64(seed: 12)
    let (heads, t) = (2, 9)
    let logits = (0..<(heads * t * t)).map { _ in Double.random(in: -8...8, using: &rng) }
    let x = try encode(logits, shape: [heads, t, t])
    let p = try await recipe.softmax(x, mask: AttentionMask(validKeys: t, causal: true), op: testOp)
      .decoded().scalars
    let decoded = x.decoded().scalars
    var worst = 0.0
    for r in 0..<(heads * t) {
      let query = r % t
      let row = Array(decoded[(r * t)..<((r + 1) * t)])
      let reference = softmaxReference(row, valid: query + 1)
      for j in 0..<t {
        if j > query { #expect(p[r * t + j] == 0) }
        worst = max(worst, abs(p[r * t + j] - reference[j]))
      }
    }
    #expect(worst < 0.0085)
  }

  @Test func layerNormOnRandomRowsAndAConstantRow() async throws {
    let d = 384
    var rng = SplitMix64(seed: 21)
    let gamma = (0..<d).map { _ in Double.random(in: 0.5...1.5, using: &rng) }
    let beta = (0..<d).map { _ in Double.random(in: -0.5...0.5, using: &rng) }
    let recipe = try makeRecipe(
      weights: [
        "g": try Tensor(shape: [d], scalars: gamma), "b": try Tensor(shape: [d], scalars: beta),
      ])
    // Rows of different spreads and offsets, one constant row (variance 0), one tiny spread.
    let spreads: [Double] = [1, 0.3, 3, 10, 0.05, 0, 1, 30]
    let offsets: [Double] = [0, 2, -5, 1, 0.5, 7.25, -0.3, 4]
    var rows: [Double] = []
    for (spread, offset) in zip(spreads, offsets) {
      rows += (0..<d).map { _ in offset + spread * rng.normal() }
    }
    let x = try encode(rows, shape: [spreads.count, d])
    let y = try await recipe.layerNorm(x, gamma: "g", beta: "b", epsilon: 1e-12, op: testOp)
      .decoded().scalars
    let decoded = x.decoded().scalars
    var worst = 0.0
    for r in 0..<spreads.count {
      let row = Array(decoded[(r * d)..<((r + 1) * d)])
      let mean = row.reduce(0, +) / Double(d)
      let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
      let inverse = 1 / (variance + 1e-12).squareRoot()
      for j in 0..<d {
        let reference = variance == 0 ? beta[j] : (row[j] - mean) * inverse * gamma[j] + beta[j]
        let error = abs(y[r * d + j] - reference)
        worst = max(worst, error)
        if spreads[r] == 0 {
          #expect(error < 1e-3, "constant row: \(y[r * d + j]) vs β \(beta[j])")
        }
      }
    }
    print("LayerNorm d=384: max |error| \(worst)")
    // rsqrt within 2^-8 relative of outputs |y| ≲ 4·1.5, plus a few ulp.
    #expect(worst < 0.03)
    #expect(recipe.backend.recorder.totalViolations == 0)
  }

  @Test(arguments: [37, 50, 64])
  func rsqrtIsWithinItsMantissaPrecision(bits n: Int) async throws {
    let recipe = try makeRecipe(RecipeParameters(ringBits: n))
    var values: [Int64] = [
      1, 2, 3, 127, 128, 129, 255, 256, 4095, 4096, 1 << 20, (1 << 24) + 12345,
    ]
    var rng = SplitMix64(seed: 5)
    let top = Int64(1) << Int64(n - 2)
    for _ in 0..<500 {
      let exponent = Int64.random(in: 0..<Int64(n - 2), using: &rng)
      values.append(
        max(1, Int64.random(in: 0..<(Int64(1) << exponent), using: &rng) | (Int64(1) << exponent)))
    }
    values.append(top - 1)
    let v = try FixedTensor(
      format: WireFormat(bits: n, scale: 24), shape: [values.count, 1], values: values)
    let r = try await recipe.rsqrt(v, numerator: 384, op: testOp).decoded().scalars
    var worst = 0.0
    for (value, got) in zip(values, r) {
      let exact = (384 / (Double(value) / Double(1 << 24))).squareRoot()
      let relative = abs(got - exact) / exact
      // Outputs below ≈ 2^-4 lose relative precision to the output's own ulp.
      if exact > 1 / 16 {
        worst = max(worst, relative)
      } else {
        #expect(abs(got - exact) <= 1.0 / 4096)
      }
    }
    print("rsqrt n=\(n): max relative error \(worst)")
    #expect(worst < 1.0 / 256 + 2e-3)
    #expect(recipe.backend.recorder.totalViolations == 0)
  }

  @Test func reciprocalOfRowSums() async throws {
    let recipe = try makeRecipe()
    for terms in [1, 2, 3, 7, 64, 100, 128, 256] {
      var sums: [Double] = [1, Double(terms)]
      for i in 0..<200 { sums.append(1 + Double(terms - 1) * Double(i) / 199) }
      let x = try encode(sums, shape: [sums.count, 1])
      let r = try await recipe.tableReciprocal(x, terms: terms, op: testOp).decoded().scalars
      var worst = 0.0
      for (s, got) in zip(x.decoded().scalars, r) { worst = max(worst, abs(got * s - 1)) }
      print("reciprocal T=\(terms): max relative error \(worst)")
      // Index to 2^-7 (rounded) of s ≥ 1: ≤ 1/128 relative, plus the output's ulp.
      #expect(worst <= 1.0 / 128 + Double(terms) / 4096)
    }
    #expect(recipe.backend.recorder.totalViolations == 0)
  }

  @Test func rowMaxOfAnyWidth() async throws {
    let recipe = try makeRecipe()
    var rng = SplitMix64(seed: 9)
    for width in [1, 2, 3, 5, 8, 13, 33, 100] {
      let values = (0..<(3 * width)).map { _ in Double.random(in: -50...50, using: &rng) }
      let x = try encode(values, shape: [3, width])
      let m = try await recipe.rowMax(x, op: testOp)
      for r in 0..<3 { #expect(m.values[r] == x.values[(r * width)..<((r + 1) * width)].max()) }
    }
  }

  @Test func l2NormalizeGivesUnitVectors() async throws {
    let recipe = try makeRecipe()
    var rng = SplitMix64(seed: 31)
    let rows = [
      (0..<384).map { _ in 0.1 * rng.normal() }, (0..<384).map { _ in 5 * rng.normal() },
      [Double](repeating: 0, count: 384),
    ]
    let x = try encode(rows.flatMap { $0 }, shape: [3, 384])
    let y = try await recipe.l2Normalize(x, op: testOp).decoded().scalars
    for r in 0..<2 {
      let got = Array(y[(r * 384)..<((r + 1) * 384)])
      let norm = got.reduce(0) { $0 + $1 * $1 }.squareRoot()
      #expect(abs(norm - 1) < 0.01)
      #expect(cosineSimilarity(got, rows[r]) > 0.99999)
    }
    #expect(y[(2 * 384)...].allSatisfy { $0 == 0 })
  }
}

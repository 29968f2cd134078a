import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// The clear back end's truncations are exact floors (the gates' definition), compared with
/// Int64 arithmetic at the ring's edges and on random values.
@Suite struct TruncationTests {
  /// Random signed n-bit values plus the edges: 0, ±1, ±2^(n−2) ± 1, −2^(n−1), 2^(n−1) − 1.
  func samples(bits n: Int, count: Int, seed: UInt64) -> [Int64] {
    var rng = SplitMix64(seed: seed)
    let half = n == 64 ? Int64.max : (Int64(1) << Int64(n - 1)) - 1
    let quarter = Int64(1) << Int64(n - 2)
    var values: [Int64] = [0, 1, -1, quarter - 1, -quarter, -quarter + 1, quarter, half, -half - 1]
    for _ in 0..<count { values.append(wrap(Int64(bitPattern: rng.next()), bits: n)) }
    return values
  }

  @Test(arguments: [37, 50, 64])
  func reduceIsTheFloorInTheNarrowerRing(bits n: Int) async throws {
    let recipe = try makeRecipe()
    let values = samples(bits: n, count: 2000, seed: UInt64(n))
    let x = try FixedTensor(
      format: WireFormat(bits: n, scale: 20), shape: [values.count], values: values)
    for s in [1, 6, 12, 20] {
      let y = try await recipe.backend.truncate(
        x, kind: .reduce, shift: s, outputBits: n - s, site: testSite())
      #expect(y.format == WireFormat(bits: n - s, scale: 20 - s))
      for (v, t) in zip(values, y.values) { #expect(t == v >> Int64(s), "⌊\(v)/2^\(s)⌋") }
      // TrFloor = reduce + sign extension: back in n bits, the same floor.
      let back = try await recipe.backend.truncate(
        y, kind: .signExtend, shift: 0, outputBits: n, site: testSite())
      #expect(back.values == values.map { $0 >> Int64(s) })
    }
  }

  @Test(arguments: [37, 50, 64])
  func slackIsExactWithinItsHeadroomAndCountsViolations(bits n: Int) async throws {
    let recipe = try makeRecipe()
    let quarter = Int64(1) << Int64(n - 2)
    let values = samples(bits: n, count: 2000, seed: UInt64(n) + 7)
    let inside = values.filter { $0 < quarter && $0 >= -quarter }
    let x = try FixedTensor(
      format: WireFormat(bits: n, scale: 16), shape: [inside.count], values: inside)
    for (s, m) in [(1, n), (12, n), (12, n - 12), (6, 20), (16, 13)] {
      let y = try await recipe.backend.truncate(
        x, kind: .slack, shift: s, outputBits: m, site: testSite())
      for (v, t) in zip(inside, y.values) { #expect(t == wrap(v >> Int64(s), bits: m)) }
    }
    #expect(recipe.backend.recorder.totalViolations == 0)
    let outside = try FixedTensor(
      format: WireFormat(bits: n, scale: 16), shape: [3], values: [quarter, -quarter - 1, 5])
    _ = try await recipe.backend.truncate(
      outside, kind: .slack, shift: 4, outputBits: n, site: testSite())
    #expect(recipe.backend.recorder.violationTotals[.slackHeadroom] == 2)
  }

  @Test func gateConstraintsAreEnforced() async throws {
    let backend = try makeRecipe().backend
    let x = try FixedTensor(format: WireFormat(bits: 20, scale: 8), shape: [1], values: [5])
    await #expect(throws: MPCError.self) {
      try await backend.truncate(x, kind: .reduce, shift: 4, outputBits: 20, site: testSite())
    }
    await #expect(throws: MPCError.self) {
      try await backend.truncate(x, kind: .slack, shift: 19, outputBits: 20, site: testSite())
    }
    await #expect(throws: MPCError.self) {
      try await backend.truncate(x, kind: .signExtend, shift: 0, outputBits: 20, site: testSite())
    }
  }

  /// The recipe's product truncation: round half up by default, the floor without it, the
  /// same integers with TrWithSlack and with TrFloor.
  @Test func productTruncationRoundsOrFloors() async throws {
    var rng = SplitMix64(seed: 3)
    let values =
      (0..<3000).map { _ in Int64.random(in: -(1 << 40)...(1 << 40), using: &rng) } + [
        -2048, -2049, 2047, 2048,
      ]
    let x = try FixedTensor(
      format: WireFormat(bits: 50, scale: 24), shape: [values.count], values: values)
    for kind in [TruncationKind.slack, .reduce] {
      for round in [true, false] {
        let recipe = try makeRecipe(RecipeParameters(productTruncation: kind, roundProducts: round))
        let y = try await recipe.truncateProduct(x, by: 12, gate: "t", op: testOp)
        #expect(y.format == WireFormat(bits: 50, scale: 12))
        let expected = values.map { round ? ($0 + 2048) >> 12 : $0 >> 12 }
        #expect(y.values == expected)
      }
    }
  }

  /// Exact division by a public integer: within one unit of x/d under its asserted bound.
  @Test(arguments: [37, 50, 64])
  func divisionByAPublicIntegerIsWithinOneUnit(bits n: Int) async throws {
    let recipe = try makeRecipe(RecipeParameters(ringBits: n))
    var rng = SplitMix64(seed: UInt64(n))
    let limit = (Int64(1) << Int64(min(n - 13, 30))) - 1
    let edges: [Int64] = [0, 1, -1, 383, 384, -384, limit, -limit, 384 * 29_000, -384 * 12_345]
    let values = (0..<2000).map { _ in Int64.random(in: -limit...limit, using: &rng) } + edges
    let x = try FixedTensor(
      format: WireFormat(bits: n, scale: 12), shape: [values.count], values: values)
    for d in [1, 2, 3, 7, 128, 384, 768, 1000] {
      let y = try await recipe.divide(x, by: d, gate: "d", op: testOp)
      #expect(y.format == x.format)
      for (v, q) in zip(values, y.values) {
        let exact = Double(v) / Double(d)
        #expect(abs(Double(q) - exact) <= 1, "\(v) / \(d) gave \(q)")
        if v % Int64(d) == 0 { #expect(q == v / Int64(d)) }
      }
    }
    #expect(recipe.backend.recorder.totalViolations == 0)
    // Beyond the bound the division is counted as a violation.
    let big = try FixedTensor(
      format: WireFormat(bits: n, scale: 12), shape: [1],
      values: [Int64(1) << Int64(min(n - 13, 31))])
    _ = try await recipe.divide(big, by: 3, gate: "d", op: testOp)
    #expect(recipe.backend.recorder.violationTotals[.recipeBound] == 1)
  }
}

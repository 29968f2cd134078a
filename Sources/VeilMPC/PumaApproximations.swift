// PUMA's approximations (RECIPES.md §2.1–2.3) in the two-party masked-wire engine: the
// 4-segment GeLU polynomial, exp(x) ≈ (1 + x/2^k)^(2^k) with a cut-off, one Goldschmidt
// reciprocal per softmax row after normalising into [0.5, 1), and rsqrt by the degree-4
// polynomial after normalising into [0.25, 0.5). Comparisons are DReLU keys, selections FSS
// selects, products Beaver-style products with exact truncation (DESIGN §3); PUMA itself runs
// them on replicated 3PC shares with probabilistic truncation.
import Foundation
import VeilFSS
import VeilModels

/// PUMA's published coefficients (spu `hack_gelu`, `fxp_approx.cc`).
enum PumaCoefficients {
  /// −4 ≤ x < −1.95.
  static let geluLow: [Double] = [
    -0.5054031199708174, -0.42226581151983866, -0.11807612951181953, -0.011034134030615728,
  ]
  /// −1.95 ≤ x ≤ 3.
  static let geluMiddle: [Double] = [
    0.008526321541038084, 0.5, 0.3603292692789629, 0, -0.037688200365904236, 0,
    0.0018067462606141187,
  ]
  /// SiLU: −8 ≤ x < −4 and −4 ≤ x ≤ 4 (spu `hack_silu`).
  static let siluLow: [Double] = [-0.3067541139982155, -0.0819767021525476, -0.0055465625580307]
  static let siluMiddle: [Double] = [
    0.0085064025895951, 0.5, 0.2281430841728270, 0, -0.011113046708173, 0, 0.0002743776353465,
  ]
  /// rsqrt(u) on u ∈ [0.25, 0.5).
  static let rsqrt: [Double] = [
    4.14285016, -15.47994394, 38.4714796, -49.86605845, 26.02942339,
  ]
  /// The reciprocal's initial guess w = 2.9142 − 2c on c ∈ [0.5, 1).
  static let reciprocalGuess = 2.9142
}

extension Recipe {
  /// Fractional bits of polynomial coefficients for values of `format`: f + 6, so a degree-6
  /// coefficient is off by at most 2^−(f+7)·x⁶ (at f bits that is 0.09 at x = 3 for f = 12),
  /// and at most n − 13 − f, so terms, sums and x itself up to 2^11 keep TrWithSlack's headroom.
  /// More bits would only deepen the final truncation's DPF (its key grows with the shift).
  func polynomialCoefficientBits(_ format: WireFormat) -> Int {
    min(format.scale + 6, format.bits - 13 - format.scale)
  }

  /// PUMA's GeLU: 0 below −4, F0 on [−4, −1.95), F1 on [−1.95, 3], x above 3 (13 rounds).
  func polynomialGelu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    try await piecewise(
      x, edges: (-4, -1.95, 3), low: PumaCoefficients.geluLow,
      middle: PumaCoefficients.geluMiddle, name: "gelu", op: op)
  }

  /// PUMA's SiLU: 0 below −8, a quadratic on [−8, −4), a degree-6 polynomial on [−4, 4], x
  /// above 4.
  func polynomialSilu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    try await piecewise(
      x, edges: (-8, -4, 4), low: PumaCoefficients.siluLow, middle: PumaCoefficients.siluMiddle,
      name: "silu", op: op)
  }

  /// 0 below a, low(x) on [a, b), middle(x) on [b, c], x above c: one DReLU key at the three
  /// edges; the powers both polynomials need in ⌈log2 degree⌉ product levels; the three pieces
  /// selected unopened, opened together and truncated once.
  func piecewise(
    _ x: Backend.Value, edges: (Double, Double, Double), low: [Double], middle: [Double],
    name: String, op: OpSite
  ) async throws -> Backend.Value {
    let f = b.format(of: x).scale
    let coefficientBits = polynomialCoefficientBits(b.format(of: x))
    let bits = try await thresholds(
      x,
      [fixed(edges.0, scale: f), fixed(edges.1, scale: f), fixed(edges.2, scale: f) + 1],
      gate: name, op: op)
    let lowBits = try await b.xor(bits[0], bits[1], site: site(op, name + ".bits"))
    let middleBits = try await b.xor(bits[1], bits[2], site: site(op, name + ".bits"))
    let degrees = Set(
      (low.indices.filter { low[$0] != 0 } + middle.indices.filter { middle[$0] != 0 }))
    let p = try await powers(x, degrees, gate: name, op: op)
    let lowPiece = try await polynomial(
      low, powers: p, coefficientBits: coefficientBits, gate: name + ".low", op: op)
    let middlePiece = try await polynomial(
      middle, powers: p, coefficientBits: coefficientBits, gate: name + ".middle", op: op)
    let identity = try await b.multiplyConstant(
      x, Int64(1) << Int64(coefficientBits), fractionalBits: coefficientBits,
      site: site(op, name + ".identity"))
    var pieces = try await b.selectUnopened(lowBits, lowPiece, site: site(op, name + ".select"))
    for (selector, piece) in [(middleBits, middlePiece), (bits[2], identity)] {
      pieces = try await b.add(
        pieces, try await b.selectUnopened(selector, piece, site: site(op, name + ".select")),
        site: site(op, name + ".select"))
    }
    let opened = try await b.open(pieces, site: site(op, name + ".select"))
    return try await truncateProduct(
      opened, by: coefficientBits, gate: name + ".truncate", op: op)
  }

  /// exp(−z) for z ≥ 0 (PUMA's softmax exponential): z is clipped at the cut-off c (one DReLU
  /// + select; PUMA zeroes exp below −c with the same gates, and (1 − c/2^k)^(2^k) < 2^−f for
  /// c = 14, k = 5), brought back to the full ring, and 1 − z/2^k is squared k times, each
  /// square truncated exactly (the first by f + 2k, so z/2^k needs no truncation of its own).
  func iteratedNegativeExp(_ z: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let format = b.format(of: z)
    let f = format.scale
    let n = parameters.ringBits
    let k = parameters.expIterations
    var clipped = try await clipAbove(
      z, Int64(parameters.expCutoff) << Int64(f), gate: "exp", op: op)
    if format.bits < n {
      clipped = try await b.truncate(
        clipped, kind: .signExtend, shift: 0, outputBits: n, site: site(op, "exp.extend"))
    }
    // 1 − z/2^k at scale f + k: 2^(f+k) − z, exact.
    var base = try await constantMinus(
      Int64(1) << Int64(f + k), clipped, fractionalBits: k, site: site(op, "exp.base"))
    for _ in 0..<k {
      let square = try await b.square(base, site: site(op, "exp.square"))
      base = try await truncateProduct(
        square, by: b.format(of: square).scale - f, gate: "exp.squareTruncate", op: op)
    }
    return base
  }

  /// 1/s for row sums s ∈ [1, terms] at scale f (PUMA's reciprocal): c = s·2^−(e+1) ∈ [0.5, 1)
  /// by `leadingOne`, w = 2.9142 − 2c, then `reciprocalIterations` Goldschmidt steps
  /// r ← r(1 + e), e ← e² from e = 1 − c·w (batched per step), and r·2^(f − e − 1) by the
  /// one-hot code; at scale `reciprocalOutputScale`.
  func normalisedReciprocal(_ sum: Backend.Value, terms: Int, op: OpSite) async throws
    -> Backend.Value
  {
    let f = b.format(of: sum).scale
    let (low, high) = (f, f + ceilLog2(max(terms, 2)))
    let (code, normalised) = try await leadingOne(
      sum, low: low, high: high, gate: "reciprocal", op: op)
    let c = try await b.truncate(
      try await b.withScale(normalised, high + 1, site: site(op, "reciprocal.normalise")),
      kind: .slack, shift: high + 1 - f, outputBits: b.format(of: sum).bits,
      site: site(op, "reciprocal.normalise"))
    let one = Int64(1) << Int64(f)
    let w = try await constantMinus(
      fixed(PumaCoefficients.reciprocalGuess, scale: f), c, times: 2,
      site: site(op, "reciprocal.guess"))
    let cw = try await truncateProduct(
      try await b.multiply(c, w, site: site(op, "reciprocal.error")), by: f,
      gate: "reciprocal.errorTruncate", op: op)
    var e = try await constantMinus(one, cw, site: site(op, "reciprocal.error"))
    var r = w
    let iterations = parameters.reciprocalIterations
    for i in 0..<iterations {
      let onePlusE = try await b.addConstant(e, one, site: site(op, "reciprocal.step"))
      if i == iterations - 1 {
        r = try await truncateProduct(
          try await b.multiply(r, onePlusE, site: site(op, "reciprocal.step")), by: f,
          gate: "reciprocal.stepTruncate", op: op)
      } else {
        (r, e) = try await pairProduct((r, onePlusE), (e, e), gate: "reciprocal.step", op: op)
      }
    }
    // 1/s = r·2^(f − k − 1) for the leading one k; at high + 1 − f bits every factor is an
    // integer power of two.
    let constants = (low...high).map { k in Double(sign: .plus, exponent: f - k - 1, significand: 1)
    }
    let scaled = try await scaleByCode(
      r, code: code, constants: constants, constantBits: high + 1 - f, gate: "reciprocal", op: op)
    return try await rescale(
      scaled, to: parameters.reciprocalOutputScale, gate: "reciprocal.rescale", op: op)
  }

  /// √numerator/√(v/2^F) for v ≥ 1 ([rows, 1] at scale F; PUMA's rsqrt): u = v·2^−(e+2) ∈
  /// [0.25, 0.5) by `leadingOne`, r(u) by the degree-4 polynomial (no Newton step), and
  /// r·√numerator·2^(−(e + 2 − F)/2) by the one-hot code; at scale `rsqrtOutputScale`.
  /// Needs v < 2^(n−2) (asserted).
  func polynomialRsqrt(_ v: Backend.Value, numerator: Double, op: OpSite) async throws
    -> Backend.Value
  {
    let format = b.format(of: v)
    let (n, inputScale) = (format.bits, format.scale)
    let f = parameters.fractionalBits
    let top = n - 3
    let (code, normalised) = try await leadingOne(v, low: 0, high: top, gate: "rsqrt", op: op)
    // u at six more bits than f (products at twice that stay far inside the ring), r(u) back
    // at f by one truncation of the polynomial's sum.
    let w = min(f + 6, (n - 6) / 2)
    let u = try await b.truncate(
      try await b.withScale(normalised, top + 2, site: site(op, "rsqrt.normalise")), kind: .slack,
      shift: top + 2 - w, outputBits: n, site: site(op, "rsqrt.normalise"))
    let p = try await powers(u, [2, 3, 4], gate: "rsqrt", op: op)
    let coefficientBits = polynomialCoefficientBits(b.format(of: u))
    let r = try await truncateProduct(
      try await polynomial(
        PumaCoefficients.rsqrt, powers: p, coefficientBits: coefficientBits,
        gate: "rsqrt.polynomial", op: op),
      by: w + coefficientBits - f, gate: "rsqrt.polynomialTruncate", op: op)
    let constants = (0...top).map { k in
      numerator.squareRoot() * Foundation.exp2(-Double(k + 2 - inputScale) / 2)
    }
    // r ≤ 2 at scale f: the largest product must stay below 2^(n−2).
    let largest = constants.max() ?? 1
    let constantBits = min(40, n - 4 - (f + 1) - Int(largest.exponent) - 1)
    guard constantBits >= 1 else {
      throw MPCError.invalidParameters("rsqrt: numerator \(numerator) leaves no room at n = \(n)")
    }
    let scaled = try await scaleByCode(
      r, code: code, constants: constants, constantBits: constantBits, gate: "rsqrt", op: op)
    return try await rescale(
      scaled, to: parameters.rsqrtOutputScale, gate: "rsqrt.rescale", op: op)
  }
}

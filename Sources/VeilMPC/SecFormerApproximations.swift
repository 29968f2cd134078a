// SecFormer's approximations (RECIPES.md §2.1–2.3): GeLU through erf as a 7-term Fourier sine
// series with the dealer-masked secure sine (masked modulo the period, `SineSeries`), the
// 2Quad softmax (x + 5)²/Σ(x + 5)² with a Goldschmidt division, and the Goldschmidt rsqrt with
// input deflation by a public bound (DESIGN §9). SecFormer runs on CrypTen's Beaver triples
// with local (probabilistic) truncation; here every product is truncated exactly.
import Foundation
import VeilFSS
import VeilModels

/// SecFormer's published coefficients (`secformer_gelu`).
enum SecFormerCoefficients {
  /// erf(u) ≈ Σ_k β_k·sin(kπu/10) on |u| < 2.5 (period 20).
  static let erfSine: [Double] = [
    1.25772, -0.0299154, 0.382155, -0.0519123, 0.196033, -0.0624557, 0.118029,
  ]
  static let erfPeriod = 20.0
  static let erfClip = 2.5
  /// 2Quad's shift c in (x + c)².
  static let quadShift = 5.0
}

extension Recipe {
  /// The angle ring of the secure sine: f + 6 bits of a turn keep all of x's resolution
  /// (x/(20√2) has 1/28 of x's range).
  var sineAngleBits: Int { parameters.fractionalBits + 6 }

  /// φ = x/(20√2) turns in Z_2^(f+6): erf's sine series has period 20 in u = x/√2. A local
  /// product by the constant at 24 fractional bits and one TrWithSlack straight into the angle
  /// ring, whose wire mask is uniform there: the opened angle is uniform modulo the period.
  func erfAngle(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let f = b.format(of: x).scale
    let constantBits = 24
    let perTurn = fixed(
      1 / (SecFormerCoefficients.erfPeriod * 2.squareRoot()), scale: constantBits)
    return try await b.truncate(
      try await b.multiplyConstant(
        x, perTurn, fractionalBits: constantBits, site: site(op, "gelu.angle")),
      kind: .slack, shift: f + constantBits - sineAngleBits, outputBits: sineAngleBits,
      site: site(op, "gelu.angle"))
  }

  /// SecFormer's GeLU = ½·x·(1 + erf(x/√2)): erf = −1 below u = −2.5, +1 from 2.5, the sine
  /// series between. One DReLU key at ±2.5√2; the angle φ = x/(20√2) turns by a local
  /// constant product and one TrWithSlack straight into Z_2^(f+6) (the period is a power of
  /// two there, so the mask is uniform modulo the period); the series at scale 2(f + 5)
  /// truncated to f; the pieces selected unopened and opened together; x·(1 + erf) and one
  /// truncation by f + 1 (10 rounds).
  func fourierGelu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let format = b.format(of: x)
    let (n, f) = (format.bits, format.scale)
    let shape = b.shape(of: x)
    let edge = fixed(SecFormerCoefficients.erfClip * 2.squareRoot(), scale: f)
    let bits = try await thresholds(x, [-edge, edge], gate: "gelu", op: op)
    let middle = try await b.xor(bits[0], bits[1], site: site(op, "gelu.bits"))
    let turns = try await erfAngle(x, op: op)
    let seriesScale = 2 * (f + 5)
    let series = try await b.sineSeries(
      turns, coefficients: SecFormerCoefficients.erfSine, outputScale: seriesScale,
      site: site(op, "gelu.sine"))
    let erf = try await truncateProduct(
      series, by: seriesScale - f, gate: "gelu.sineTruncate", op: op)
    let onePlusErf = try await b.addConstant(erf, Int64(1) << Int64(f), site: site(op, "gelu.erf"))
    let two = try await b.constant(
      [Int64](repeating: Int64(2) << Int64(f), count: shape.reduce(1, *)), shape: shape,
      format: WireFormat(bits: n, scale: f), site: site(op, "gelu.erf"))
    let factor = try await b.open(
      try await b.add(
        try await b.selectUnopened(middle, onePlusErf, site: site(op, "gelu.select")),
        try await b.selectUnopened(bits[1], two, site: site(op, "gelu.select")),
        site: site(op, "gelu.select")),
      site: site(op, "gelu.select"))
    let product = try await b.multiply(x, factor, site: site(op, "gelu.product"))
    return try await truncateProduct(
      try await b.withScale(product, 2 * f + 1, site: site(op, "gelu.half")), by: f + 1,
      gate: "gelu.truncate", op: op)
  }

  /// 2Quad's numerators (x + 5)² at x's scale: one Beaver square and one exact truncation.
  func quadNumerators(_ scores: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let f = b.format(of: scores).scale
    let shifted = try await b.addConstant(
      scores, fixed(SecFormerCoefficients.quadShift, scale: f), site: site(op, "softmax.quad"))
    return try await truncateProduct(
      try await b.square(shifted, site: site(op, "softmax.quad")), by: f,
      gate: "softmax.quadTruncate", op: op)
  }

  /// 1/s for 2Quad row sums s ∈ (0, B] with the public bound B = 2^⌈log2 terms⌉·4^q
  /// (`quadBoundBits` = q): SecFormer's Goldschmidt division on y = s/B (a relabelling and one
  /// truncation to the working scale w), then x ← x·m, y ← y·m with m = 2 − y (batched), from
  /// x₁ = m₀; x ≈ B/s, at scale `reciprocalOutputScale`. Rows whose sum is far below B
  /// converge slowly: the accuracy tables show it.
  func quadReciprocal(_ sum: Backend.Value, terms: Int, op: OpSite) async throws -> Backend.Value {
    let format = b.format(of: sum)
    let (n, f) = (format.bits, format.scale)
    let iterations = parameters.divisionIterations
    // x ≤ 2^t and m ≤ 2 at scale w: products below 2^(t + 1 + 2w) < 2^(n−2).
    let w = min(f + 8, (n - 4 - iterations) / 2)
    let deflation = ceilLog2(max(terms, 2)) + 2 * parameters.quadBoundBits
    try await b.assertRange(
      sum, 1...(Int64(1) << Int64(f + deflation)), site: site(op, "reciprocal.inputBound"))
    var y = try await rescale(
      try await b.withScale(sum, f + deflation, site: site(op, "reciprocal.deflate")), to: w,
      gate: "reciprocal.deflate", op: op)
    let two = Int64(2) << Int64(w)
    var x = try await constantMinus(two, y, site: site(op, "reciprocal.step"))
    y = try await truncateProduct(
      try await b.multiply(y, x, site: site(op, "reciprocal.step")), by: w,
      gate: "reciprocal.stepTruncate", op: op)
    for _ in 1..<iterations {
      let m = try await constantMinus(two, y, site: site(op, "reciprocal.step"))
      (x, y) = try await pairProduct((x, m), (y, m), gate: "reciprocal.step", op: op)
    }
    return try await rescale(
      try await b.withScale(x, w + deflation, site: site(op, "reciprocal.inflate")),
      to: parameters.reciprocalOutputScale, gate: "reciprocal.rescale", op: op)
  }

  /// √numerator/√(v/2^F) for v ≥ 1 ([rows, 1] at scale F; SecFormer's Goldschmidt rsqrt):
  /// x₀ = v/2^D′ deflated by the public bound (D′ = `rsqrtDeflationBits` + ⌈log2 numerator⌉: a
  /// relabelling and one truncation to the working scale w = ⌊(n − 8)/2⌋), then
  /// y ← y·m, x ← x·m² with m = (3 − x)/2 from y₀ = 1, which converges to 1/√x₀ for
  /// x₀ ∈ (0, 3); m² and m are kept at scale w + 1 so both products of a step share one
  /// truncation (3 + 3 rounds per step). √numerator·2^(−D′/2) is one public constant at the end; at scale
  /// `rsqrtOutputScale`.
  func goldschmidtRsqrt(_ v: Backend.Value, numerator: Double, op: OpSite) async throws
    -> Backend.Value
  {
    let format = b.format(of: v)
    let (n, inputScale) = (format.bits, format.scale)
    let w = (n - 8) / 2
    let deflation = parameters.rsqrtDeflationBits + ceilLog2(max(Int(numerator.rounded(.up)), 1))
    try await b.assertRange(
      v, 1...(Int64(3) << Int64(inputScale + deflation) - 1), site: site(op, "rsqrt.inputBound"))
    var x = try await rescale(
      try await b.withScale(v, inputScale + deflation, site: site(op, "rsqrt.deflate")), to: w,
      gate: "rsqrt.deflate", op: op)
    let three = Int64(3) << Int64(w)
    // y ≤ 1/√x₀ ≤ 2^(w/2) (x₀ is at least one unit) is kept at scale s so y·m stays below
    // 2^(n−2); it rides with x in one batched product under x's label (the same integers).
    let s = n - 4 - w - w / 2
    let count = b.shape(of: v).reduce(1, *)
    var y = try await b.constant(
      [Int64](repeating: Int64(1) << Int64(s), count: count), shape: b.shape(of: v),
      format: WireFormat(bits: n, scale: s), site: site(op, "rsqrt.start"))
    for _ in 0..<parameters.rsqrtIterations {
      // 2m = 3 − x at scale w is m at scale w + 1; m² = (2m)²/4.
      let twiceM = try await constantMinus(three, x, site: site(op, "rsqrt.step"))
      let m = try await b.withScale(twiceM, w + 1, site: site(op, "rsqrt.step"))
      let mSquared = try await truncateProduct(
        try await b.withScale(
          try await b.square(twiceM, site: site(op, "rsqrt.step")), 2 * w + 2,
          site: site(op, "rsqrt.step")),
        by: w + 1, gate: "rsqrt.stepTruncate", op: op)
      let (nextX, nextY) = try await pairProduct(
        (x, mSquared), (try await b.withScale(y, w, site: site(op, "rsqrt.step")), m),
        gate: "rsqrt.step", op: op)
      x = nextX
      y = try await b.withScale(nextY, s, site: site(op, "rsqrt.step"))
    }
    // y ≈ 1/√x₀ = 2^(D′/2)/√(v/2^F): times √numerator·2^(−D′/2).
    let constant = (numerator / Foundation.exp2(Double(deflation))).squareRoot()
    let constantBits = max(1, min(40, n - 4 - s - w / 2 - Int(constant.exponent)))
    let scaled = try await b.multiplyConstant(
      y, fixed(constant, scale: constantBits), fractionalBits: constantBits,
      site: site(op, "rsqrt.scale"))
    return try await rescale(
      scaled, to: parameters.rsqrtOutputScale, gate: "rsqrt.rescale", op: op)
  }
}

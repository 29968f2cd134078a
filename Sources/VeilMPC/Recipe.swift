// The recipe a model runs with, written once over `GateBackend` (DESIGN §4, §9): what every
// recipe shares — linear layers and attention products with exact truncation, exact division,
// the softmax and LayerNorm skeletons (valid-key cut, causal packing, ε, γ, β), mean pooling and
// L2 normalisation — and the dispatch of GeLU, softmax's exponential and reciprocal, and rsqrt
// to the approximation `RecipeParameters` names: SIGMA's tables (SigmaApproximations.swift),
// PUMA's polynomials (PumaApproximations.swift) or SecFormer's Fourier series and Goldschmidt
// iterations (SecFormerApproximations.swift). Deviations from a paper are marked "Deviation:"
// where they are made.
import VeilFSS
import VeilModels

/// A model's approximations over a gate back end.
public struct Recipe<Backend: GateBackend>: Sendable {
  public let backend: Backend
  public let parameters: RecipeParameters
  let geluTable: LookupTable
  let expHighTable: LookupTable
  let expLowTable: LookupTable

  public init(backend: Backend, parameters: RecipeParameters) throws(MPCError) {
    try parameters.validate()
    let format = backend.inputFormat
    guard format.bits == parameters.ringBits, format.scale == parameters.fractionalBits else {
      throw .invalidParameters(
        "the back end encodes at \(format), the recipe expects \(parameters)")
    }
    self.backend = backend
    self.parameters = parameters
    geluTable = try SigmaTables.gelu(parameters)
    (expHighTable, expLowTable) = try SigmaTables.exponential(parameters)
  }

  var b: Backend { backend }
  func site(_ op: OpSite, _ gate: String) -> GateSite { GateSite(op: op, gate: gate) }

  // MARK: Layout helpers (local)

  /// [rows, width] view of any value whose last axis is `width`.
  func rowsAndWidth(_ x: Backend.Value, _ op: OpSite) throws -> (rows: Int, width: Int) {
    let shape = b.shape(of: x)
    guard let width = shape.last, width > 0 else {
      throw MPCError.badShape(site(op, "rows"), shape, "no last axis")
    }
    return (shape.reduce(1, *) / width, width)
  }

  func reshape(_ x: Backend.Value, _ shape: [Int], _ op: OpSite) async throws
    -> Backend.Value
  {
    try await b.gather(
      x, indices: Array(0..<shape.reduce(1, *)), shape: shape, site: site(op, "reshape"))
  }

  /// Columns `range` of a [rows, width] value.
  func columns(_ x: Backend.Value, _ range: Range<Int>, _ op: OpSite) async throws
    -> Backend.Value
  {
    let (rows, width) = try rowsAndWidth(x, op)
    var indices: [Int] = []
    indices.reserveCapacity(rows * range.count)
    for r in 0..<rows { for j in range { indices.append(r * width + j) } }
    return try await b.gather(
      x, indices: indices, shape: [rows, range.count], site: site(op, "columns"))
  }

  /// A [rows, 1] value repeated along a new last axis of `width`.
  func broadcast(_ x: Backend.Value, width: Int, _ op: OpSite) async throws -> Backend.Value {
    let rows = b.shape(of: x).reduce(1, *)
    var indices: [Int] = []
    indices.reserveCapacity(rows * width)
    for r in 0..<rows { indices.append(contentsOf: repeatElement(r, count: width)) }
    return try await b.gather(
      x, indices: indices, shape: [rows, width], site: site(op, "broadcast"))
  }

  /// A flat value's elements placed at `positions` of a tensor of `shape`, zeros elsewhere
  /// (local: a gather from the value with one zero appended).
  func scatter(_ flat: Backend.Value, to positions: [Int], shape: [Int], _ op: OpSite)
    async throws
    -> Backend.Value
  {
    let zero = try await b.constant(
      [0], shape: [1], format: b.format(of: flat), site: site(op, "scatter"))
    let padded = try await b.concatenate([flat, zero], axis: 0, site: site(op, "scatter"))
    var indices = [Int](repeating: positions.count, count: shape.reduce(1, *))
    for (i, p) in positions.enumerated() { indices[p] = i }
    return try await b.gather(padded, indices: indices, shape: shape, site: site(op, "scatter"))
  }

  /// Drops the trailing axis of length 1 that `compare` adds for a single offset.
  func singleBits(_ bits: Backend.Bits, _ shape: [Int], _ op: OpSite) async throws
    -> Backend.Bits
  {
    try await b.gather(
      bits: bits, indices: Array(0..<shape.reduce(1, *)), shape: shape, site: site(op, "bits"))
  }

  /// Bits of offset `i` out of `count` from a `compare` result, in the value's shape.
  func offsetBits(
    _ bits: Backend.Bits, _ i: Int, of count: Int, _ shape: [Int], _ op: OpSite
  ) async throws
    -> Backend.Bits
  {
    let elements = shape.reduce(1, *)
    return try await b.gather(
      bits: bits, indices: (0..<elements).map { $0 * count + i }, shape: shape,
      site: site(op, "bits"))
  }

  // MARK: Truncation and exact division

  /// ⌊x / 2^s⌋ of a product (rounded half up when `roundProducts`), back in x's ring, with the
  /// recipe's product truncation: TrWithSlack, or TrFloor = truncate-reduce + sign extension.
  public func truncateProduct(_ x: Backend.Value, by s: Int, gate: String, op: OpSite) async throws
    -> Backend.Value
  {
    guard s > 0 else { return x }
    let n = b.format(of: x).bits
    var y = x
    if parameters.roundProducts {
      y = try await b.addConstant(y, Int64(1) << Int64(s - 1), site: site(op, gate + ".round"))
    }
    switch parameters.productTruncation {
    case .reduce:
      let reduced = try await b.truncate(
        y, kind: .reduce, shift: s, outputBits: n - s, site: site(op, gate))
      return try await b.truncate(
        reduced, kind: .signExtend, shift: 0, outputBits: n, site: site(op, gate + ".extend"))
    default:
      return try await b.truncate(y, kind: .slack, shift: s, outputBits: n, site: site(op, gate))
    }
  }

  /// x / d for a public integer d ≥ 1, at x's scale: the mean's exact division (DESIGN §9).
  /// x is sign-extended to Z_2^64 (exact), multiplied by the wide constant c = round(2^k/d)
  /// standing for 1/d at scale k, and truncated back by k into Z_2^n with TrWithSlack (rounded
  /// half up when `roundProducts`). With |x| < 2^B (asserted), B = min(n − f − 1,
  /// ⌊(61 + ⌊log2 d⌋)/2⌋) and k = 61 − B + ⌊log2 d⌋ ≥ B, the product stays below 2^62 (the
  /// slack headroom) and the quotient is within one unit of x/d (at n = 50, f = 12, d = 384:
  /// B = 34, row sums below 2^22), where SIGMA's ⌊2^12/d⌋ is 6 % off for d = 384. A row of
  /// equal values gets its own value as mean, so LayerNorm of a constant row is exactly β.
  public func divide(_ x: Backend.Value, by d: Int, gate: String, op: OpSite) async throws
    -> Backend.Value
  {
    guard d >= 1 else { throw MPCError.invalidParameters("division by \(d)") }
    if d == 1 { return x }
    let format = b.format(of: x)
    let (n, f) = (format.bits, format.scale)
    if d & (d - 1) == 0 {
      let s = floorLog2(d)
      let relabelled = try await b.withScale(x, f + s, site: site(op, gate + ".relabel"))
      return try await truncateProduct(relabelled, by: s, gate: gate + ".shift", op: op)
    }
    let boundBits = min(n - f - 1, (61 + floorLog2(d)) / 2)
    let bound = Int64(1) << Int64(boundBits)
    try await b.assertRange(x, (-bound + 1)...(bound - 1), site: site(op, gate + ".bound"))
    let wide =
      n < 64
      ? try await b.truncate(
        x, kind: .signExtend, shift: 0, outputBits: 64, site: site(op, gate + ".extend")) : x
    let k = 61 - boundBits + floorLog2(d)
    let c = ((Int64(1) << Int64(k)) + Int64(d / 2)) / Int64(d)
    let scaled = try await b.multiplyConstant(
      wide, c, fractionalBits: k, site: site(op, gate + ".multiply"))
    var y = scaled
    if parameters.roundProducts {
      y = try await b.addConstant(y, Int64(1) << Int64(k - 1), site: site(op, gate + ".round"))
    }
    return try await b.truncate(y, kind: .slack, shift: k, outputBits: n, site: site(op, gate))
  }

  // MARK: Linear layers and attention products

  /// x·Wᵀ + b: one GEMM with the fixed weight mask, then an exact truncation by the weight
  /// scale, then the bias (local).
  public func linear(_ x: Backend.Value, weight: WeightID, bias: WeightID?, op: OpSite) async throws
    -> Backend.Value
  {
    let product = try await b.linear(x, weight: weight, site: site(op, "linear.product"))
    let weightScale = b.format(of: product).scale - b.format(of: x).scale
    let y = try await truncateProduct(product, by: weightScale, gate: "linear.truncate", op: op)
    guard let bias else { return y }
    return try await b.addWeight(y, bias: bias, site: site(op, "linear.bias"))
  }

  /// scale · Q·Kᵀ. A power-of-two scale folds into the truncation (SIGMA's free shift);
  /// otherwise Q is multiplied by round(scale·2^f) and truncated before the product (SIGMA
  /// multiplies the T×T scores instead: T/d_head times more truncations once T > d_head, and
  /// scaling Q row by row keeps padded and unpadded runs bit-identical).
  public func attentionScores(_ q: Backend.Value, _ k: Backend.Value, scale: Double, op: OpSite)
    async throws
    -> Backend.Value
  {
    let (fq, fk) = (b.format(of: q).scale, b.format(of: k).scale)
    let exponent = -scale.exponent
    if scale > 0, scale.significand == 1, exponent >= 0 {
      let product = try await b.matmul(q, k, transposeB: true, site: site(op, "scores.product"))
      let t = try await truncateProduct(
        product, by: fk + Int(exponent), gate: "scores.truncate", op: op)
      return try await b.withScale(t, fq, site: site(op, "scores.relabel"))
    }
    let f = parameters.fractionalBits
    let scaledQuery = try await truncateProduct(
      try await b.multiplyConstant(
        q, fixed(scale, scale: f), fractionalBits: f, site: site(op, "scores.scaleQuery")),
      by: f, gate: "scores.scaleQueryTruncate", op: op)
    let product = try await b.matmul(
      scaledQuery, k, transposeB: true, site: site(op, "scores.product"))
    return try await truncateProduct(product, by: fk, gate: "scores.truncate", op: op)
  }

  /// P·V with an exact truncation by P's scale.
  public func attentionContext(_ p: Backend.Value, _ v: Backend.Value, op: OpSite) async throws
    -> Backend.Value
  {
    let product = try await b.matmul(p, v, transposeB: false, site: site(op, "context.product"))
    return try await truncateProduct(
      product, by: b.format(of: p).scale, gate: "context.truncate", op: op)
  }

  // MARK: Dispatch to the approximations

  /// GeLU by the chosen approximation, at x's format.
  public func gelu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    switch parameters.gelu {
    case .sigma: return try await tableGelu(x, op: op)
    case .puma: return try await polynomialGelu(x, op: op)
    case .secformer: return try await fourierGelu(x, op: op)
    }
  }

  /// SiLU by the activation family's approximation (LLaMA's MLP): SIGMA's 10-bit table or
  /// PUMA's polynomial; SecFormer publishes none.
  public func silu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    switch parameters.gelu {
    case .sigma: return try await tableSilu(x, op: op)
    case .puma: return try await polynomialSilu(x, op: op)
    case .secformer:
      throw MPCError.invalidParameters(
        "SecFormer publishes no SiLU approximation: choose --gelu sigma or puma")
    }
  }

  /// 1/s for softmax row sums s ∈ [1, terms] ([rows, 1]) at scale `reciprocalOutputScale`, by
  /// softmax's approximation (SecFormer's assumes 2Quad sums: s ∈ (0, terms·4^q]).
  public func reciprocal(_ sum: Backend.Value, terms: Int, op: OpSite) async throws
    -> Backend.Value
  {
    switch parameters.softmax {
    case .sigma: return try await tableReciprocal(sum, terms: terms, op: op)
    case .puma: return try await normalisedReciprocal(sum, terms: terms, op: op)
    case .secformer: return try await quadReciprocal(sum, terms: terms, op: op)
    }
  }

  /// round(2^fo · √numerator / √(v / 2^scale)) for v ≥ 1 ([rows, 1]) at scale
  /// `rsqrtOutputScale`, by the chosen approximation.
  public func rsqrt(_ v: Backend.Value, numerator: Double, op: OpSite) async throws
    -> Backend.Value
  {
    switch parameters.normalization {
    case .sigma: return try await tableRsqrt(v, numerator: numerator, op: op)
    case .puma: return try await polynomialRsqrt(v, numerator: numerator, op: op)
    case .secformer: return try await goldschmidtRsqrt(v, numerator: numerator, op: op)
    }
  }

  /// Softmax over the last axis: max tree and z = max − x in the `softmaxRingBits` ring, then
  /// exp(−z) and one reciprocal per row by the chosen approximation (SIGMA: T_hi·T_lo and a
  /// table; PUMA: (1 + x/2^k)^(2^k) and Goldschmidt), or SecFormer's 2Quad (x + 5)² with a
  /// Goldschmidt division and no max. Keys at or beyond `mask.validKeys` get probability
  /// exactly 0 and cost nothing (the row is cut to the valid keys, a public length); under a
  /// causal mask only the visible scores pay for exponentials and products.
  public func softmax(_ x: Backend.Value, mask: AttentionMask, op: OpSite) async throws
    -> Backend.Value
  {
    let shape = b.shape(of: x)
    guard shape.count >= 2, let width = shape.last, width > 0 else {
      throw MPCError.badShape(site(op, "softmax"), shape, "softmax needs rows")
    }
    let rowsPerMatrix = shape[shape.count - 2]
    let rows = shape.reduce(1, *) / width
    let valid = min(mask.validKeys, width)
    guard valid > 0 else { throw MPCError.badShape(site(op, "softmax"), shape, "no valid keys") }
    var scores =
      valid < width ? try await columns(x, 0..<valid, op) : try await reshape(x, [rows, width], op)
    let approximation = parameters.softmax
    let ringBits = parameters.softmaxRingBits
    if approximation != .secformer, ringBits < b.format(of: scores).bits {
      let bound = Int64(1) << Int64(ringBits - 2)
      try await b.assertRange(
        scores, (-bound + 1)...(bound - 1), site: site(op, "softmax.inputBound"))
      scores = try await b.reduceRing(scores, bits: ringBits, site: site(op, "softmax.reduce"))
    }
    // Causal: a hidden score is replaced by its row's first score (local: public 0/1
    // coefficients), so the max tree keeps its row shape without the hidden scores raising the
    // max; the exponentials and the normalising products then run on the visible (lower
    // triangular) scores only, packed flat, and hidden probabilities are exactly 0.
    var visible: [Int]? = nil
    if mask.causal {
      var k = [Int64](repeating: 0, count: rows * valid)
      for r in 0..<rows {
        for j in 0..<min(mask.visibleKeys(query: r % rowsPerMatrix), valid) { k[r * valid + j] = 1 }
      }
      let first = try await broadcast(try await columns(scores, 0..<1, op), width: valid, op)
      let kept = try await b.multiplyConstants(
        scores, k, fractionalBits: 0, site: site(op, "softmax.causal"))
      let filled = try await b.multiplyConstants(
        first, k.map { 1 - $0 }, fractionalBits: 0, site: site(op, "softmax.causal"))
      scores = try await b.add(kept, filled, site: site(op, "softmax.causal"))
      visible = k.indices.filter { k[$0] == 1 }
    }
    func packed(_ v: Backend.Value) async throws -> Backend.Value {
      guard let visible else { return v }
      return try await b.gather(
        v, indices: visible, shape: [visible.count], site: site(op, "softmax.causal"))
    }
    func unpacked(_ v: Backend.Value) async throws -> Backend.Value {
      guard let visible else { return v }
      return try await scatter(v, to: visible, shape: [rows, valid], op)
    }
    let numerators: Backend.Value
    if approximation == .secformer {
      numerators = try await quadNumerators(try await packed(scores), op: op)
    } else {
      let maximum = try await rowMax(scores, op: op)
      let z = try await packed(
        try await b.subtract(
          try await broadcast(maximum, width: valid, op), scores, site: site(op, "softmax.z")))
      numerators =
        approximation == .sigma
        ? try await negativeExp(z, op: op) : try await iteratedNegativeExp(z, op: op)
    }
    let exponentials = try await unpacked(numerators)
    let total = try await b.sumLastAxis(exponentials, site: site(op, "softmax.sum"))
    let inverse = try await reciprocal(total, terms: valid, op: op)
    let product = try await b.multiply(
      try await packed(exponentials),
      try await packed(try await broadcast(inverse, width: valid, op)),
      site: site(op, "softmax.product"))
    var probabilities = try await unpacked(
      try await truncateProduct(
        product, by: b.format(of: inverse).scale, gate: "softmax.truncate", op: op))
    if valid < width {
      let zeros = try await b.constant(
        [Int64](repeating: 0, count: rows * (width - valid)), shape: [rows, width - valid],
        format: b.format(of: probabilities), site: site(op, "softmax.padding"))
      probabilities = try await b.concatenate(
        [probabilities, zeros], axis: 1, site: site(op, "softmax.padding"))
    }
    return try await reshape(probabilities, shape, op)
  }

  // MARK: LayerNorm, pooling, normalisation

  /// LayerNorm with ε (DESIGN §9): μ by exact division, (x − μ)² by a Beaver square, the row
  /// sum d·var at scale 2f plus ε·d at that scale rounded up to at least one unit (this also
  /// keeps var = 0 finite), rsqrt with the 1/d folded into the table, then (x − μ)·rsqrt and
  /// ·γ, each with an exact truncation, and + β.
  ///
  /// - Note: Deviation (narrow rings only): with `layerNormSquareShift` > 0, x − μ is
  ///   truncated before the square (one more TrWithSlack layer, 2 rounds).
  public func layerNorm(
    _ x: Backend.Value, gamma: WeightID, beta: WeightID, epsilon: Double, op: OpSite
  ) async throws
    -> Backend.Value
  {
    try await normalize(x, gamma: gamma, beta: beta, epsilon: epsilon, centre: true, op: op)
  }

  /// RMSNorm (LLaMA): x·rsqrt(mean(x²) + ε)·γ, LayerNorm's gates without the mean and β.
  public func rmsNorm(_ x: Backend.Value, gamma: WeightID, epsilon: Double, op: OpSite)
    async throws -> Backend.Value
  {
    try await normalize(x, gamma: gamma, beta: nil, epsilon: epsilon, centre: false, op: op)
  }

  func normalize(
    _ x: Backend.Value, gamma: WeightID, beta: WeightID?, epsilon: Double, centre: Bool,
    op: OpSite
  ) async throws -> Backend.Value {
    let shape = b.shape(of: x)
    let (rows, d) = try rowsAndWidth(x, op)
    let f = b.format(of: x).scale
    let flat = try await reshape(x, [rows, d], op)
    var centred = flat
    if centre {
      let sum = try await b.sumLastAxis(flat, site: site(op, "layerNorm.sum"))
      let mean = try await divide(sum, by: d, gate: "layerNorm.mean", op: op)
      centred = try await b.subtract(
        flat, try await broadcast(mean, width: d, op), site: site(op, "layerNorm.centre"))
    }
    var squared = centred
    let shift = parameters.layerNormSquareShift
    if shift > 0 {
      squared = try await truncateProduct(
        centred, by: shift, gate: "layerNorm.squareTruncate", op: op)
    }
    let squares = try await b.square(squared, site: site(op, "layerNorm.square"))
    let sumOfSquares = try await b.sumLastAxis(squares, site: site(op, "layerNorm.variance"))
    let varianceScale = b.format(of: sumOfSquares).scale
    let epsilonUnits = max(
      1,
      Int64(
        (epsilon * Double(d) * Double(sign: .plus, exponent: varianceScale, significand: 1))
          .rounded(.up)))
    let variance = try await b.addConstant(
      sumOfSquares, epsilonUnits, site: site(op, "layerNorm.epsilon"))
    let inverse = try await rsqrt(variance, numerator: Double(d), op: op)
    let normalised = try await truncateProduct(
      try await b.multiply(
        centred, try await broadcast(inverse, width: d, op), site: site(op, "layerNorm.scale")),
      by: b.format(of: inverse).scale, gate: "layerNorm.scaleTruncate", op: op)
    let product = try await b.multiplyWeight(
      normalised, weight: gamma, site: site(op, "layerNorm.gamma"))
    let weighted = try await truncateProduct(
      product, by: b.format(of: product).scale - f, gate: "layerNorm.gammaTruncate", op: op)
    guard let beta else { return try await reshape(weighted, shape, op) }
    let shifted = try await b.addWeight(weighted, bias: beta, site: site(op, "layerNorm.beta"))
    return try await reshape(shifted, shape, op)
  }

  /// Mean of the first `validRows` rows of [T, d]: a local column sum and an exact division.
  public func meanPool(_ x: Backend.Value, validRows: Int, op: OpSite) async throws -> Backend.Value
  {
    let shape = b.shape(of: x)
    guard shape.count == 2, validRows > 0, validRows <= shape[0] else {
      throw MPCError.badShape(site(op, "pool"), shape, "cannot pool \(validRows) rows")
    }
    let sums = try await columnSums(x, rows: validRows, op: op)
    let mean = try await divide(sums, by: validRows, gate: "pool.mean", op: op)
    return try await reshape(mean, [1, shape[1]], op)
  }

  /// The sums of the first `rows` rows of [T, d], [d]: a local transpose and row sums.
  func columnSums(_ x: Backend.Value, rows: Int, op: OpSite) async throws -> Backend.Value {
    let d = b.shape(of: x)[1]
    var indices: [Int] = []
    indices.reserveCapacity(d * rows)
    for j in 0..<d { for i in 0..<rows { indices.append(i * d + j) } }
    let columnsFirst = try await b.gather(
      x, indices: indices, shape: [d, rows], site: site(op, "pool.transpose"))
    return try await b.sumLastAxis(columnsFirst, site: site(op, "pool.sum"))
  }

  /// Each row divided by its norm: Σx² (Beaver squares) + one unit (a zero row stays finite,
  /// as torch's clamp of the norm at 1e-12 keeps it), rsqrt, product and truncation.
  public func l2Normalize(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let shape = b.shape(of: x)
    let (rows, d) = try rowsAndWidth(x, op)
    let flat = try await reshape(x, [rows, d], op)
    let squares = try await b.square(flat, site: site(op, "normalize.square"))
    let total = try await b.addConstant(
      try await b.sumLastAxis(squares, site: site(op, "normalize.sum")), 1,
      site: site(op, "normalize.guard"))
    let inverse = try await rsqrt(total, numerator: 1, op: op)
    let product = try await b.multiply(
      flat, try await broadcast(inverse, width: d, op), site: site(op, "normalize.scale"))
    let y = try await truncateProduct(
      product, by: b.format(of: inverse).scale, gate: "normalize.truncate", op: op)
    return try await reshape(y, shape, op)
  }
}

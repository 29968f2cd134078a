// SIGMA's approximations (RECIPES.md §2.1–2.3): GeLU = ReLU − LUT after a truncate-reduce,
// exp(−z) = T_hi·T_lo, the softmax reciprocal table and the float-like rsqrt table. Deviations
// from SIGMA are marked "Deviation:"; each keeps SIGMA's gate structure and costs no extra round
// unless it says so.
import VeilFSS
import VeilModels

extension Recipe {
  /// GeLU(x) = ReLU(x) − T[c] (RECIPES §2.1): TrWithSlack from n bits at scale f to
  /// m = `geluReducedBits` bits at scale s (s = 6), which needs |x| < 2^(m−s−2) (asserted and
  /// counted; SIGMA's m = n − 2f + s + 1 is its bound |x·2^f| < 2^(n−f−1)); one DReLU key at offsets 0,
  /// −(2^b − 1), 2^b − 1 gives the sign d and the in-range bits; two selects in Z_2^b form the
  /// clipped index; d·x is ReLU; one b-bit LUT; 6 rounds.
  ///
  /// - Note: Deviation: the index is the one's complement of the floor for negative inputs
  ///   (|x|·2^s between k and k + 1 ↦ k for both signs) and the table holds h at bucket
  ///   midpoints; SIGMA
  ///   uses min(|⌊x·2^s⌋|, 255) and h(k/2^s). The index comes from c = (2^b − 1) + e·(2x+1) −
  ///   i·x (mod 2^b), e = [0 ≤ x < 2^b − 1], i = [|x + ½| < 2^b − ½]: the same two selects that
  ///   SIGMA's 4-way mux replaces, in one round.
  func tableGelu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    try await reluMinusTable(x, table: geluTable, name: "gelu", op: op)
  }

  /// SIGMA's SiLU: `tableGelu`'s gates with a `siluIndexBits` table of ReLU − SiLU = |x|·σ(−|x|)
  /// (SIGMA: 10 bits at input scale 6, |x| < 16).
  func tableSilu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    try await reluMinusTable(x, table: try SigmaTables.silu(parameters), name: "silu", op: op)
  }

  /// ReLU(x) − T[clip(|x|·2^s)] for an even correction table T.
  func reluMinusTable(_ x: Backend.Value, table: LookupTable, name: String, op: OpSite)
    async throws -> Backend.Value
  {
    let format = b.format(of: x)
    let (n, f) = (format.bits, format.scale)
    let s = parameters.geluInputScale
    let indexBits = table.inputBits
    guard f == parameters.fractionalBits, n == parameters.ringBits else {
      throw MPCError.formatMismatch(
        site(op, name),
        "\(name) takes \(parameters.ringBits)/\(parameters.fractionalBits), not \(format)")
    }
    // x·2^s must fit the reduced ring with one bit to spare for the offsets ±(2^b − 1).
    let reducedBits = parameters.geluReducedBits
    let bound = Int64(1) << Int64(reducedBits - 2 + f - s)
    try await b.assertRange(x, (-bound + 1)...(bound - 1), site: site(op, name + ".inputBound"))
    // Floor, not rounding: the sign of the result must be the sign of x.
    let xt = try await b.truncate(
      x, kind: .slack, shift: f - s, outputBits: reducedBits, site: site(op, name + ".truncate"))
    let limit = Int64(1) << Int64(indexBits) - 1
    let shape = b.shape(of: x)
    let tests = try await b.compare(
      xt, offsets: [0, -limit, limit], site: site(op, name + ".compare"))
    let nonNegative = try await offsetBits(tests, 0, of: 3, shape, op)
    let aboveLow = try await offsetBits(tests, 1, of: 3, shape, op)
    let aboveHigh = try await offsetBits(tests, 2, of: 3, shape, op)
    let positiveInRange = try await b.xor(nonNegative, aboveHigh, site: site(op, name + ".bits"))
    let inRange = try await b.xor(aboveLow, aboveHigh, site: site(op, name + ".bits"))
    let small = try await b.reduceRing(xt, bits: indexBits, site: site(op, name + ".index"))
    let doubled = try await b.multiplyConstant(
      small, 2, fractionalBits: 0, site: site(op, name + ".index"))
    let odd = try await b.addConstant(doubled, 1, site: site(op, name + ".index"))
    // The two clip selects are opened together as their difference (one round), and ReLU's
    // select is opened with the table's output (their difference is GeLU): 6 rounds in all.
    let positivePart = try await b.selectUnopened(
      positiveInRange, odd, site: site(op, name + ".clip"))
    let rangePart = try await b.selectUnopened(inRange, small, site: site(op, name + ".clip"))
    let difference = try await b.open(
      try await b.subtract(positivePart, rangePart, site: site(op, name + ".index")),
      site: site(op, name + ".index"))
    let index = try await b.addConstant(difference, limit, site: site(op, name + ".index"))
    let relu = try await b.selectUnopened(nonNegative, x, site: site(op, name + ".relu"))
    let correction = try await b.lookups(
      [try await b.withScale(index, 0, site: site(op, name + ".index"))], tables: [table],
      open: false,
      site: site(op, name + ".lut"))[0]
    return try await b.open(
      try await b.subtract(relu, correction, site: site(op, name + ".output")),
      site: site(op, name + ".output"))
  }

  /// exp(−z) for z ≥ 0 at scale f (RECIPES §2.2 nExp): z is brought to scale 12 and split into
  /// its low byte (local) and the rest (truncate-reduce); the rest is clipped to the high
  /// table's 8 bits (z < 16; exp(−16) is below ½ ulp) with one DReLU + select, both halves are
  /// looked up in two tables and multiplied, with an exact truncation.
  ///
  /// - Note: Deviation: SIGMA clips z to 16 bits before the split, with a DReLU in z's ring;
  ///   clipping the high part after it compares 8 bits fewer (BERT-base: 0.3 GB fewer keys per
  ///   party). Beyond the clip the low byte is z's own instead of 255: the result is still at
  ///   most T_hi's last entry, which is 0 for every f < 21 (exp(−255/16)·2^f < ½).
  func negativeExp(_ z: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let inputScale = parameters.expInputScale
    let clipBits = parameters.expClipBits
    let lowBits = clipBits / 2
    let scaled = try await rescale(z, to: inputScale, gate: "exp.rescale", op: op)
    let low = try await b.reduceRing(scaled, bits: lowBits, site: site(op, "exp.split"))
    let rest = try await b.truncate(
      scaled, kind: .reduce, shift: lowBits, outputBits: b.format(of: scaled).bits - lowBits,
      site: site(op, "exp.high"))
    let clipped = try await clipAbove(
      rest, Int64(1) << Int64(clipBits - lowBits) - 1, gate: "exp", op: op)
    let high = try await b.reduceRing(
      clipped, bits: clipBits - lowBits, site: site(op, "exp.split"))
    // Both tables in the rounds of one lookup.
    let e = try await b.lookups(
      [high, low], tables: [expHighTable, expLowTable], open: true, site: site(op, "exp.lut"))
    let product = try await b.multiply(e[0], e[1], site: site(op, "exp.product"))
    return try await truncateProduct(
      product, by: expLowTable.output.scale, gate: "exp.truncate", op: op)
  }

  /// 1/s for row sums s ∈ [1, terms] at scale f (RECIPES §2.2 step 5): TrWithSlack straight
  /// into the table's index ring, then a ⌈log2 terms⌉ + 6-bit LUT.
  ///
  /// - Note: Deviation: the index is round(s·2^6) − 2^6 instead of ⌊s·2^6⌋, so a row of
  ///   2^k equal scores (s = 2^k exactly) does not wrap the index to 0, and rounding halves the
  ///   index error.
  func tableReciprocal(_ sum: Backend.Value, terms: Int, op: OpSite) async throws -> Backend.Value {
    let f = b.format(of: sum).scale
    let inputScale = parameters.reciprocalInputScale
    let table = try SigmaTables.reciprocal(parameters, terms: terms)
    try await b.assertRange(
      sum, (Int64(1) << Int64(f))...(Int64(terms) << Int64(f)),
      site: site(op, "reciprocal.inputBound"))
    let shift = f - inputScale
    var shifted = try await b.addConstant(
      sum, -(Int64(1) << Int64(f)), site: site(op, "reciprocal.index"))
    if parameters.roundProducts && shift > 0 {
      shifted = try await b.addConstant(
        shifted, Int64(1) << Int64(shift - 1), site: site(op, "reciprocal.index"))
    }
    let index: Backend.Value
    if shift > 0 {
      index = try await b.truncate(
        shifted, kind: .slack, shift: shift, outputBits: table.inputBits,
        site: site(op, "reciprocal.truncate"))
    } else {
      index = try await b.reduceRing(
        shifted, bits: table.inputBits, site: site(op, "reciprocal.index"))
    }
    return try await b.lookup(
      try await b.withScale(index, 0, site: site(op, "reciprocal.index")), table: table,
      site: site(op, "reciprocal.lut"))
  }

  /// round(2^fo · √numerator / √(v / 2^scale)) for v ≥ 1 (RECIPES §2.3, SIGMA's float-like
  /// 13-bit LUT): `leadingOne` gives the exponent's one-hot code h and v with its leading one
  /// at bit n − 3; TrWithSlack keeps the M bits below it in a
  /// 13-bit ring, where Σ_k h_k·k·2^M (a second select in the same round) adds the exponent;
  /// one 13-bit LUT. Needs v < 2^(n−2) (asserted).
  ///
  /// - Note: Deviation: SIGMA's F2BF16 conversion takes 3 rounds of its own protocol; this one
  ///   uses only DReLU, select and TrWithSlack gates (1 + 1 + 2 rounds) before the LUT.
  func tableRsqrt(_ v: Backend.Value, numerator: Double, op: OpSite) async throws -> Backend.Value {
    let format = b.format(of: v)
    let n = format.bits
    let (rows, width) = try rowsAndWidth(v, op)
    guard width == 1 else {
      throw MPCError.badShape(site(op, "rsqrt"), b.shape(of: v), "rsqrt takes [rows, 1]")
    }
    let m = parameters.rsqrtMantissaBits
    let top = n - 3
    let table = try SigmaTables.rsqrt(parameters, inputScale: format.scale, numerator: numerator)
    let indexBits = table.inputBits
    let (oneHot, normalised) = try await leadingOne(v, low: 0, high: top, gate: "rsqrt", op: op)
    let codeShape = [rows, top + 1]
    let exponents = try await b.constant(
      (0..<rows).flatMap { _ in (0...top).map { Int64($0) << Int64(m) } }, shape: codeShape,
      format: WireFormat(bits: indexBits, scale: 0), site: site(op, "rsqrt.exponent"))
    let exponentPart = try await b.sumLastAxis(
      try await b.select(oneHot, exponents, site: site(op, "rsqrt.exponent")),
      site: site(op, "rsqrt.exponent"))
    // The normalised value is 1.xxx at scale `top`; keep M fractional bits in the index ring.
    let mantissa = try await b.truncate(
      try await b.withScale(normalised, top, site: site(op, "rsqrt.mantissa")), kind: .slack,
      shift: top - m,
      outputBits: indexBits, site: site(op, "rsqrt.mantissa"))
    let fraction = try await b.withScale(
      try await b.addConstant(mantissa, -(Int64(1) << Int64(m)), site: site(op, "rsqrt.index")), 0,
      site: site(op, "rsqrt.index"))
    let index = try await b.add(fraction, exponentPart, site: site(op, "rsqrt.index"))
    return try await b.lookup(index, table: table, site: site(op, "rsqrt.lut"))
  }
}

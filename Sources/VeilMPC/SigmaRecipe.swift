// SIGMA's recipe (RECIPES.md §2.1–2.3, §2.6), written once over `GateBackend`: linear layers
// with exact truncation, GeLU = ReLU − LUT after a truncate-reduce, softmax with a max tree,
// exp(−z) = T_hi·T_lo and a reciprocal table (any row length, padding and causal masks),
// LayerNorm with ε and a float-like rsqrt table, mean pooling and L2 normalisation.
// Deviations from SIGMA are marked "Deviation:" where they are made; each keeps SIGMA's gate
// structure and costs no extra round unless it says so.
import VeilFSS
import VeilModels

/// The SIGMA approximations over a gate back end.
public struct SigmaRecipe<Backend: GateBackend>: Sendable {
  public let backend: Backend
  public let parameters: SigmaParameters
  let geluTable: LookupTable
  let expHighTable: LookupTable
  let expLowTable: LookupTable

  public init(backend: Backend, parameters: SigmaParameters) throws(MPCError) {
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

  private var b: Backend { backend }
  private func site(_ op: OpSite, _ gate: String) -> GateSite { GateSite(op: op, gate: gate) }

  // MARK: Layout helpers (local)

  /// [rows, width] view of any value whose last axis is `width`.
  private func rowsAndWidth(_ x: Backend.Value, _ op: OpSite) throws -> (rows: Int, width: Int) {
    let shape = b.shape(of: x)
    guard let width = shape.last, width > 0 else {
      throw MPCError.badShape(site(op, "rows"), shape, "no last axis")
    }
    return (shape.reduce(1, *) / width, width)
  }

  private func reshape(_ x: Backend.Value, _ shape: [Int], _ op: OpSite) async throws
    -> Backend.Value
  {
    try await b.gather(
      x, indices: Array(0..<shape.reduce(1, *)), shape: shape, site: site(op, "reshape"))
  }

  /// Columns `range` of a [rows, width] value.
  private func columns(_ x: Backend.Value, _ range: Range<Int>, _ op: OpSite) async throws
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
  private func broadcast(_ x: Backend.Value, width: Int, _ op: OpSite) async throws -> Backend.Value
  {
    let rows = b.shape(of: x).reduce(1, *)
    var indices: [Int] = []
    indices.reserveCapacity(rows * width)
    for r in 0..<rows { indices.append(contentsOf: repeatElement(r, count: width)) }
    return try await b.gather(
      x, indices: indices, shape: [rows, width], site: site(op, "broadcast"))
  }

  /// Drops the trailing axis of length 1 that `compare` adds for a single offset.
  /// A flat value's elements placed at `positions` of a tensor of `shape`, zeros elsewhere
  /// (local: a gather from the value with one zero appended).
  private func scatter(_ flat: Backend.Value, to positions: [Int], shape: [Int], _ op: OpSite)
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

  private func singleBits(_ bits: Backend.Bits, _ shape: [Int], _ op: OpSite) async throws
    -> Backend.Bits
  {
    try await b.gather(
      bits: bits, indices: Array(0..<shape.reduce(1, *)), shape: shape, site: site(op, "bits"))
  }

  /// Bits of offset `i` out of `count` from a `compare` result, in the value's shape.
  private func offsetBits(
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

  // MARK: GeLU

  /// GeLU(x) = ReLU(x) − T[c] (RECIPES §2.1): TrWithSlack from n bits at scale f to
  /// n − 2f + s + 1 bits at scale s (s = 6), which needs the integer x·2^f to satisfy
  /// |x·2^f| < 2^(n−f−1) (SIGMA's bound; asserted and counted); one DReLU key at offsets 0,
  /// −(2^b − 1), 2^b − 1 gives the sign d and the in-range bits; two selects in Z_2^b form the
  /// clipped index; d·x is ReLU; one b-bit LUT; 6 rounds.
  ///
  /// - Note: Deviation: the index is the one's complement of the floor for negative inputs
  ///   (|x|·2^s between k and k + 1 ↦ k for both signs) and the table holds h at bucket
  ///   midpoints; SIGMA
  ///   uses min(|⌊x·2^s⌋|, 255) and h(k/2^s). The index comes from c = (2^b − 1) + e·(2x+1) −
  ///   i·x (mod 2^b), e = [0 ≤ x < 2^b − 1], i = [|x + ½| < 2^b − ½]: the same two selects that
  ///   SIGMA's 4-way mux replaces, in one round.
  public func gelu(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let format = b.format(of: x)
    let (n, f) = (format.bits, format.scale)
    let s = parameters.geluInputScale
    let indexBits = parameters.geluIndexBits
    guard f == parameters.fractionalBits, n == parameters.ringBits else {
      throw MPCError.formatMismatch(
        site(op, "gelu"),
        "GeLU takes \(parameters.ringBits)/\(parameters.fractionalBits), not \(format)")
    }
    let bound = Int64(1) << Int64(n - f - 1)
    try await b.assertRange(x, (-bound + 1)...(bound - 1), site: site(op, "gelu.inputBound"))
    let reducedBits = n - 2 * f + s + 1
    // Floor, not rounding: the sign of the result must be the sign of x.
    let xt = try await b.truncate(
      x, kind: .slack, shift: f - s, outputBits: reducedBits, site: site(op, "gelu.truncate"))
    let limit = Int64(1) << Int64(indexBits) - 1
    let shape = b.shape(of: x)
    let tests = try await b.compare(
      xt, offsets: [0, -limit, limit], site: site(op, "gelu.compare"))
    let nonNegative = try await offsetBits(tests, 0, of: 3, shape, op)
    let aboveLow = try await offsetBits(tests, 1, of: 3, shape, op)
    let aboveHigh = try await offsetBits(tests, 2, of: 3, shape, op)
    let positiveInRange = try await b.xor(nonNegative, aboveHigh, site: site(op, "gelu.bits"))
    let inRange = try await b.xor(aboveLow, aboveHigh, site: site(op, "gelu.bits"))
    let small = try await b.reduceRing(xt, bits: indexBits, site: site(op, "gelu.index"))
    let doubled = try await b.multiplyConstant(
      small, 2, fractionalBits: 0, site: site(op, "gelu.index"))
    let odd = try await b.addConstant(doubled, 1, site: site(op, "gelu.index"))
    // The two clip selects are opened together as their difference (one round), and ReLU's
    // select is opened with the table's output (their difference is GeLU): 6 rounds in all.
    let positivePart = try await b.selectUnopened(positiveInRange, odd, site: site(op, "gelu.clip"))
    let rangePart = try await b.selectUnopened(inRange, small, site: site(op, "gelu.clip"))
    let difference = try await b.open(
      try await b.subtract(positivePart, rangePart, site: site(op, "gelu.index")),
      site: site(op, "gelu.index"))
    let index = try await b.addConstant(difference, limit, site: site(op, "gelu.index"))
    let relu = try await b.selectUnopened(nonNegative, x, site: site(op, "gelu.relu"))
    let correction = try await b.lookups(
      [try await b.withScale(index, 0, site: site(op, "gelu.index"))], tables: [geluTable],
      open: false,
      site: site(op, "gelu.lut"))[0]
    return try await b.open(
      try await b.subtract(relu, correction, site: site(op, "gelu.output")),
      site: site(op, "gelu.output"))
  }

  // MARK: Softmax

  /// Row max of a [rows, width] value by a tree of DReLU + select (⌈log2 width⌉ levels); an
  /// odd element waits for the next level, so any width works. Returns [rows, 1].
  public func rowMax(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let (rows, fullWidth) = try rowsAndWidth(x, op)
    var width = fullWidth
    var current = try await reshape(x, [rows, width], op)
    while width > 1 {
      let half = width / 2
      let left = try await columns(current, 0..<half, op)
      let right = try await columns(current, half..<(2 * half), op)
      let difference = try await b.subtract(left, right, site: site(op, "max.difference"))
      let larger = try await singleBits(
        try await b.compare(difference, offsets: [0], site: site(op, "max.compare")), [rows, half],
        op)
      let excess = try await b.select(larger, difference, site: site(op, "max.select"))
      let maximum = try await b.add(right, excess, site: site(op, "max.combine"))
      if width % 2 == 1 {
        let odd = try await columns(current, (width - 1)..<width, op)
        current = try await b.concatenate([maximum, odd], axis: 1, site: site(op, "max.carry"))
      } else {
        current = maximum
      }
      width = half + width % 2
    }
    return current
  }

  /// exp(−z) for z ≥ 0 at scale f (RECIPES §2.2 nExp): z is brought to scale 12, clipped to
  /// 16 bits (z < 16; exp(−16) is below ½ ulp) with one DReLU + select, split into its high
  /// byte (truncate-reduce) and low byte (local), looked up in two tables and multiplied, with
  /// an exact truncation.
  public func negativeExp(_ z: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let format = b.format(of: z)
    let f = format.scale
    let shape = b.shape(of: z)
    let inputScale = parameters.expInputScale
    let clipBits = parameters.expClipBits
    let lowBits = clipBits / 2
    var scaled = z
    if f > inputScale {
      scaled = try await truncateProduct(z, by: f - inputScale, gate: "exp.rescale", op: op)
    } else if f < inputScale {
      scaled = try await b.multiplyConstant(
        z, Int64(1) << Int64(inputScale - f), fractionalBits: inputScale - f,
        site: site(op, "exp.rescale"))
    }
    let cap = Int64(1) << Int64(clipBits) - 1
    let excess = try await b.addConstant(scaled, -cap, site: site(op, "exp.clip"))
    let over = try await singleBits(
      try await b.compare(excess, offsets: [0], site: site(op, "exp.compare")), shape, op)
    let cut = try await b.select(over, excess, site: site(op, "exp.clip"))
    let clipped = try await b.subtract(scaled, cut, site: site(op, "exp.clip"))
    let narrow = try await b.reduceRing(clipped, bits: clipBits, site: site(op, "exp.split"))
    let low = try await b.reduceRing(narrow, bits: lowBits, site: site(op, "exp.split"))
    let high = try await b.truncate(
      narrow, kind: .reduce, shift: lowBits, outputBits: clipBits - lowBits,
      site: site(op, "exp.high"))
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
  public func reciprocal(_ sum: Backend.Value, terms: Int, op: OpSite) async throws -> Backend.Value
  {
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

  /// Softmax over the last axis with SIGMA's recipe, in the `softmaxRingBits` ring up to the
  /// exp tables (whose outputs are n-bit again). Keys at or beyond `mask.validKeys` get
  /// probability exactly 0 and cost nothing (the row is cut to the valid keys, a public
  /// length); under a causal mask only the visible scores pay for exponentials and products.
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
    let ringBits = parameters.softmaxRingBits
    if ringBits < b.format(of: scores).bits {
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
        let query = r % rowsPerMatrix
        for j in 0..<min(query + 1, valid) { k[r * valid + j] = 1 }
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
    let maximum = try await rowMax(scores, op: op)
    let z = try await b.subtract(
      try await broadcast(maximum, width: valid, op), scores, site: site(op, "softmax.z"))
    let exponentials = try await unpacked(try await negativeExp(try await packed(z), op: op))
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

  // MARK: rsqrt, LayerNorm, pooling, normalisation

  /// round(2^fo · √numerator / √(v / 2^scale)) for v ≥ 1 (RECIPES §2.3, SIGMA's float-like
  /// 13-bit LUT): one DReLU key against 2^0 … 2^(n−2) gives the exponent's thermometer code,
  /// XORs of neighbours its one-hot code h; Σ_k h_k·v·2^(n−3−k) (one select round, local
  /// shifts) puts the leading one at bit n − 3; TrWithSlack keeps the M bits below it in a
  /// 13-bit ring, where Σ_k h_k·k·2^M (a second select in the same round) adds the exponent;
  /// one 13-bit LUT. Needs v < 2^(n−2) (asserted).
  ///
  /// - Note: Deviation: SIGMA's F2BF16 conversion takes 3 rounds of its own protocol; this one
  ///   uses only DReLU, select and TrWithSlack gates (1 + 1 + 2 rounds) before the LUT.
  public func rsqrt(_ v: Backend.Value, numerator: Double, op: OpSite) async throws -> Backend.Value
  {
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
    try await b.assertRange(
      v, 1...(Int64(1) << Int64(n - 2) - 1), site: site(op, "rsqrt.inputBound"))
    // b_k = [v ≥ 2^k] for k = 0 … top + 1 (b_0 = 1 and b_(top+1) = 0 by the bound).
    let offsets = (0...(top + 1)).map { Int64(1) << Int64($0) }
    let thermometer = try await b.compare(v, offsets: offsets, site: site(op, "rsqrt.compare"))
    let count = offsets.count
    var lowerIndices: [Int] = []
    var upperIndices: [Int] = []
    for r in 0..<rows {
      for k in 0...top {
        lowerIndices.append(r * count + k)
        upperIndices.append(r * count + k + 1)
      }
    }
    let codeShape = [rows, top + 1]
    let lower = try await b.gather(
      bits: thermometer, indices: lowerIndices, shape: codeShape, site: site(op, "rsqrt.bits"))
    let upper = try await b.gather(
      bits: thermometer, indices: upperIndices, shape: codeShape, site: site(op, "rsqrt.bits"))
    let oneHot = try await b.xor(lower, upper, site: site(op, "rsqrt.bits"))
    let spread = try await broadcast(v, width: top + 1, op)
    let picked = try await b.select(oneHot, spread, site: site(op, "rsqrt.normalise"))
    let shifts = (0..<rows).flatMap { _ in (0...top).map { Int64(1) << Int64(top - $0) } }
    let normalised = try await b.sumLastAxis(
      try await b.multiplyConstants(
        picked, shifts, fractionalBits: 0, site: site(op, "rsqrt.normalise")),
      site: site(op, "rsqrt.normalise"))
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
    let shape = b.shape(of: x)
    let (rows, d) = try rowsAndWidth(x, op)
    let f = b.format(of: x).scale
    let flat = try await reshape(x, [rows, d], op)
    let sum = try await b.sumLastAxis(flat, site: site(op, "layerNorm.sum"))
    let mean = try await divide(sum, by: d, gate: "layerNorm.mean", op: op)
    let centred = try await b.subtract(
      flat, try await broadcast(mean, width: d, op), site: site(op, "layerNorm.centre"))
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
    let d = shape[1]
    var indices: [Int] = []
    indices.reserveCapacity(d * validRows)
    for j in 0..<d { for i in 0..<validRows { indices.append(i * d + j) } }
    let columnsFirst = try await b.gather(
      x, indices: indices, shape: [d, validRows], site: site(op, "pool.transpose"))
    let sums = try await b.sumLastAxis(columnsFirst, site: site(op, "pool.sum"))
    let mean = try await divide(sums, by: validRows, gate: "pool.mean", op: op)
    return try await reshape(mean, [1, d], op)
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

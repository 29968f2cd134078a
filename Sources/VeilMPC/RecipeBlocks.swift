// Building blocks the approximations share, written over the gate back end: the row max tree
// (SIGMA and PUMA softmax), the leading-one normalisation (SIGMA's float-like rsqrt index,
// PUMA's reciprocal and rsqrt), batched powers and polynomials with public coefficients
// (PUMA's GeLU and rsqrt), and the scale adjustment of a result.
import VeilFSS
import VeilModels

extension Recipe {
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

  /// The leading one of integers v ∈ [2^low, 2^(high+1)) ([rows, 1]; asserted): one DReLU key
  /// against 2^low … 2^(high+1) gives the thermometer code [v ≥ 2^k], XORs of neighbours the
  /// one-hot code h_k = [2^k ≤ v < 2^(k+1)] for k = low…high ([rows, high − low + 1]), and
  /// Σ_k h_k·v·2^(high − k) (one select round, local shifts) is v with its leading one moved to
  /// bit `high`. Needs high ≤ n − 3.
  func leadingOne(_ v: Backend.Value, low: Int, high: Int, gate: String, op: OpSite) async throws
    -> (oneHot: Backend.Bits, normalised: Backend.Value)
  {
    let (rows, width) = try rowsAndWidth(v, op)
    guard width == 1, low >= 0, high >= low, high <= b.format(of: v).bits - 3 else {
      throw MPCError.badShape(
        site(op, gate), b.shape(of: v), "leading one of [rows, 1] in bits \(low)…\(high)")
    }
    try await b.assertRange(
      v, (Int64(1) << Int64(low))...(Int64(1) << Int64(high + 1) - 1),
      site: site(op, gate + ".inputBound"))
    let oneHot = try await intervalCode(
      v, offsets: (low...(high + 1)).map { Int64(1) << Int64($0) }, gate: gate, op: op)
    let codes = high - low + 1
    let picked = try await b.select(
      oneHot, try await broadcast(v, width: codes, op), site: site(op, gate + ".normalise"))
    let shifts = (0..<rows).flatMap { _ in (low...high).map { Int64(1) << Int64(high - $0) } }
    let normalised = try await b.sumLastAxis(
      try await b.multiplyConstants(
        picked, shifts, fractionalBits: 0, site: site(op, gate + ".normalise")),
      site: site(op, gate + ".normalise"))
    return (oneHot, normalised)
  }

  /// The interval code of x [rows, 1] against ascending public offsets c_0 < … < c_K: one DReLU
  /// key gives the thermometer code [x ≥ c_k], XORs of neighbours (local) the one-hot code
  /// h_k = [c_k ≤ x < c_(k+1)], [rows, K].
  func intervalCode(_ x: Backend.Value, offsets: [Int64], gate: String, op: OpSite) async throws
    -> Backend.Bits
  {
    let rows = b.shape(of: x).reduce(1, *)
    let thermometer = try await b.compare(x, offsets: offsets, site: site(op, gate + ".compare"))
    let count = offsets.count
    let codes = count - 1
    var lowerIndices: [Int] = []
    var upperIndices: [Int] = []
    for r in 0..<rows {
      for k in 0..<codes {
        lowerIndices.append(r * count + k)
        upperIndices.append(r * count + k + 1)
      }
    }
    let codeShape = [rows, codes]
    let lower = try await b.gather(
      bits: thermometer, indices: lowerIndices, shape: codeShape, site: site(op, gate + ".bits"))
    let upper = try await b.gather(
      bits: thermometer, indices: upperIndices, shape: codeShape, site: site(op, gate + ".bits"))
    return try await b.xor(lower, upper, site: site(op, gate + ".bits"))
  }

  /// Σ_k h_k·x·c_k for a one-hot code h [rows, K] from `leadingOne`, x [rows, 1] and public
  /// reals c_k (the same for every row) at `constantBits` fractional bits: one select round;
  /// the result's scale is x's plus `constantBits`.
  func scaleByCode(
    _ x: Backend.Value, code: Backend.Bits, constants: [Double], constantBits: Int, gate: String,
    op: OpSite
  ) async throws -> Backend.Value {
    let rows = b.shape(of: x).reduce(1, *)
    let picked = try await b.select(
      code, try await broadcast(x, width: constants.count, op), site: site(op, gate + ".select"))
    let integers = constants.map { fixed($0, scale: constantBits) }
    return try await b.sumLastAxis(
      try await b.multiplyConstants(
        picked, (0..<rows).flatMap { _ in integers }, fractionalBits: constantBits,
        site: site(op, gate + ".scale")),
      site: site(op, gate + ".scale"))
  }

  /// x brought to `scale`: an exact truncation when the scale drops, a local multiplication by
  /// a power of two when it grows.
  func rescale(_ x: Backend.Value, to scale: Int, gate: String, op: OpSite) async throws
    -> Backend.Value
  {
    let current = b.format(of: x).scale
    if current > scale {
      return try await truncateProduct(x, by: current - scale, gate: gate, op: op)
    }
    if current < scale {
      return try await b.multiplyConstant(
        x, Int64(1) << Int64(scale - current), fractionalBits: scale - current,
        site: site(op, gate))
    }
    return x
  }

  /// a_i·b_i for pairs of one shape (the a's of one format, the b's of one format) in one
  /// Beaver product over the concatenated operands and one exact truncation by the b's scale,
  /// so each result keeps its a's format (3 rounds).
  func batchedProducts(
    _ pairs: [(Backend.Value, Backend.Value)], gate: String, op: OpSite
  ) async throws -> [Backend.Value] {
    guard let (a0, b0) = pairs.first else { return [] }
    let shape = b.shape(of: a0)
    let count = shape.reduce(1, *)
    var lefts: [Backend.Value] = []
    var rights: [Backend.Value] = []
    for (left, right) in pairs {
      lefts.append(try await reshape(left, [count], op))
      rights.append(try await reshape(right, [count], op))
    }
    let product = try await truncateProduct(
      try await b.multiply(
        try await b.concatenate(lefts, axis: 0, site: site(op, gate)),
        try await b.concatenate(rights, axis: 0, site: site(op, gate)), site: site(op, gate)),
      by: b.format(of: b0).scale, gate: gate + "Truncate", op: op)
    var out: [Backend.Value] = []
    for i in pairs.indices {
      out.append(
        try await b.gather(
          product, indices: Array((i * count)..<((i + 1) * count)), shape: shape,
          site: site(op, gate)))
    }
    return out
  }

  /// a·b and c·d by `batchedProducts`.
  func pairProduct(
    _ first: (Backend.Value, Backend.Value), _ second: (Backend.Value, Backend.Value),
    gate: String, op: OpSite
  ) async throws -> (Backend.Value, Backend.Value) {
    let products = try await batchedProducts([first, second], gate: gate, op: op)
    return (products[0], products[1])
  }

  /// c − k·x for public integers c and k (k at `fractionalBits`, which the scale grows by; c at
  /// the result's scale): local.
  func constantMinus(
    _ c: Int64, _ x: Backend.Value, times k: Int64 = 1, fractionalBits: Int = 0, site: GateSite
  ) async throws -> Backend.Value {
    try await b.addConstant(
      try await b.multiplyConstant(x, -k, fractionalBits: fractionalBits, site: site), c,
      site: site)
  }

  /// min(x, cap) for a public cap: one DReLU on x − cap and a select of the excess.
  func clipAbove(_ x: Backend.Value, _ cap: Int64, gate: String, op: OpSite) async throws
    -> Backend.Value
  {
    let excess = try await b.addConstant(x, -cap, site: site(op, gate + ".clip"))
    let over = try await singleBits(
      try await b.compare(excess, offsets: [0], site: site(op, gate + ".compare")), b.shape(of: x),
      op)
    return try await b.subtract(
      x, try await b.select(over, excess, site: site(op, gate + ".clip")),
      site: site(op, gate + ".clip"))
  }

  /// DReLU against public thresholds (at x's scale) on x reduced to f + 12 bits (exact while
  /// |x| < 2^10, asserted): a narrower DPF than the full ring, the same bits. One bit tensor
  /// per threshold, in x's shape.
  func thresholds(_ x: Backend.Value, _ levels: [Int64], gate: String, op: OpSite) async throws
    -> [Backend.Bits]
  {
    let format = b.format(of: x)
    let bits = min(format.bits, format.scale + 12)
    var narrow = x
    if bits < format.bits {
      let bound = Int64(1) << Int64(bits - 2)
      try await b.assertRange(x, (-bound + 1)...(bound - 1), site: site(op, gate + ".inputBound"))
      narrow = try await b.reduceRing(x, bits: bits, site: site(op, gate + ".reduce"))
    }
    let shape = b.shape(of: x)
    let tests = try await b.compare(narrow, offsets: levels, site: site(op, gate + ".compare"))
    var out: [Backend.Bits] = []
    for i in levels.indices {
      out.append(try await offsetBits(tests, i, of: levels.count, shape, op))
    }
    return out
  }

  /// x^k for every k in `degrees` at x's format: each level multiplies pairs of powers already
  /// known (one batched Beaver product over the concatenated operands and one exact
  /// truncation, 3 rounds), so degree d takes ⌈log2 d⌉ levels.
  func powers(_ x: Backend.Value, _ degrees: Set<Int>, gate: String, op: OpSite) async throws
    -> [Int: Backend.Value]
  {
    var known: [Int: Backend.Value] = [1: x]
    var wanted = degrees.filter { $0 > 1 }
    while !wanted.isEmpty {
      var pairs: [(degree: Int, left: Int, right: Int)] = []
      for d in wanted.sorted() {
        if let a = known.keys.sorted(by: >).first(where: { known[d - $0] != nil }) {
          pairs.append((d, a, d - a))
        }
      }
      if pairs.isEmpty {
        // No pair of known powers makes any wanted degree: want the halves of the smallest.
        let d = wanted.min() ?? 2
        wanted.formUnion([d / 2, d - d / 2].filter { known[$0] == nil })
        continue
      }
      let products = try await batchedProducts(
        pairs.map { (known[$0.left] ?? x, known[$0.right] ?? x) }, gate: gate + ".powers", op: op)
      for (p, product) in zip(pairs, products) {
        known[p.degree] = product
        wanted.remove(p.degree)
      }
    }
    return known
  }

  /// Σ_k c_k·x^k from `powers` (c_0 … c_d, zeros skipped) with the coefficients at
  /// `coefficientBits` fractional bits: local; the result is at scale f + coefficientBits.
  func polynomial(
    _ coefficients: [Double], powers: [Int: Backend.Value], coefficientBits: Int, gate: String,
    op: OpSite
  ) async throws -> Backend.Value {
    guard let x = powers[1] else {
      throw MPCError.invalidParameters("\(gate): a polynomial needs x")
    }
    let f = b.format(of: x).scale
    var total: Backend.Value? = nil
    for (k, c) in coefficients.enumerated() where k >= 1 && c != 0 {
      guard let power = powers[k] else {
        throw MPCError.invalidParameters("\(gate): x^\(k) was not computed")
      }
      let term = try await b.multiplyConstant(
        power, fixed(c, scale: coefficientBits), fractionalBits: coefficientBits,
        site: site(op, gate + ".terms"))
      if let previous = total {
        total = try await b.add(previous, term, site: site(op, gate + ".terms"))
      } else {
        total = term
      }
    }
    guard var sum = total else {
      throw MPCError.invalidParameters("\(gate): a polynomial needs a term of degree ≥ 1")
    }
    if let c0 = coefficients.first, c0 != 0 {
      sum = try await b.addConstant(
        sum, fixed(c0, scale: f + coefficientBits), site: site(op, gate + ".terms"))
    }
    return sum
  }
}

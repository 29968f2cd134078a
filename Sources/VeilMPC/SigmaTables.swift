// SIGMA's recipe parameters and the public lookup tables, computed once from their formulas
// (RECIPES.md §2.1–2.3). Every table is a pure function of the parameters, so the dealer, the
// parties and the clear back end build identical ones.
import Foundation
import VeilFSS

/// The numeric choices of the SIGMA recipe. Defaults follow SIGMA (n = 50, f = 12, 8-bit GeLU
/// table at input scale 6, exp(−z) = T_hi·T_lo on a 16-bit clipped z at scale 12, reciprocal
/// table at input scale 6, 13-bit float-like rsqrt table); the deviations are documented at
/// each field.
public struct SigmaParameters: Sendable, Hashable, CustomStringConvertible {
  /// Ring width n.
  public var ringBits: Int
  /// Fractional bits f of activations and weights.
  public var fractionalBits: Int
  /// Truncation after products: `.slack` (TrWithSlack, exact while |x| < 2^(n−2), which the
  /// clear back end checks) or `.reduce` (TrFloor = truncate-reduce then sign extension, exact
  /// for every input, ≈7× the DPF work).
  public var productTruncation: TruncationKind
  /// Adds 2^(s−1) before each truncation of a product, so it rounds half up instead of taking
  /// the floor (a public constant: free on masked wires). SIGMA floors; the floor's −½-ulp
  /// bias adds up over a deep network. Sign-sensitive truncations (GeLU's) always floor.
  public var roundProducts: Bool
  /// GeLU: input scale of the table (SIGMA: 6) and its index bits (SIGMA: 8, so the table
  /// covers |x| < 255/64 ≈ 3.98).
  public var geluInputScale: Int
  public var geluIndexBits: Int
  /// Softmax runs in this many bits (max tree, z = max − x, clip): the scores are reduced
  /// into Z_2^m locally (exact while |score| < 2^(m−2), asserted), so each DReLU of the max
  /// tree and the clip compares m − 1 bits instead of n − 1.
  /// Deviation: SIGMA runs its max-pool in bin + 2 bits after its own truncations; the
  /// default f + 14 (26 bits: |score| < 4096) roughly halves those DPF keys at n = 50.
  public var softmaxRingBits: Int
  /// nExp: z = max − x is brought to this scale (SIGMA: 12) and clipped to this many bits
  /// (SIGMA: 16, z < 16), then split into two halves for two tables (SIGMA: 8 + 8).
  public var expInputScale: Int
  public var expClipBits: Int
  /// Reciprocal of the softmax row sum: the sum is truncated to this scale (SIGMA: 6) and
  /// looked up in a table of ⌈log2 T⌉ + 6 bits; the output scale of the table.
  /// Deviation: SIGMA's table holds 1/s at scale f, which leaves 1/128 only 32 units (±1.5 %
  /// on every probability of a long flat row); the default f + 8 costs nothing (same table
  /// size, same product and truncation) and needs 2f + 8 < n − 2.
  public var reciprocalInputScale: Int
  public var reciprocalOutputScale: Int
  /// rsqrt: mantissa bits of the float-like index (SIGMA: 7, with a 6-bit exponent: a 13-bit
  /// table) and the output scale.
  /// Deviation: SIGMA outputs at scale f; 1/‖x‖ of a vector of norm 100 is then 41 units
  /// (±1.2 %). The default f + 4 keeps ≥ 11 bits for norms up to 16·2^4 and still fits the
  /// product (x − μ)·rsqrt, |·| ≤ √d, at n = 37.
  public var rsqrtMantissaBits: Int
  public var rsqrtOutputScale: Int
  /// LayerNorm squares x − μ after dropping this many fractional bits (one more TrWithSlack
  /// per element), so Σ(x − μ)² at scale 2(f − shift) fits a narrow ring. SIGMA squares at
  /// full scale (shift 0, the default for n ≥ 48); MiniLM's hidden states reach |x − μ| ≈ 222,
  /// whose square at scale 24 needs 41 bits, so narrower rings default to f/2.
  public var layerNormSquareShift: Int

  public init(
    ringBits: Int = 50, fractionalBits: Int = 12, productTruncation: TruncationKind = .slack,
    roundProducts: Bool = true, geluInputScale: Int = 6, geluIndexBits: Int = 8, expInputScale: Int = 12,
    expClipBits: Int = 16, reciprocalInputScale: Int = 6, reciprocalOutputScale: Int? = nil,
    rsqrtMantissaBits: Int = 7, rsqrtOutputScale: Int? = nil, layerNormSquareShift: Int? = nil,
    softmaxRingBits: Int? = nil
  ) {
    self.ringBits = ringBits
    self.fractionalBits = fractionalBits
    self.productTruncation = productTruncation
    self.roundProducts = roundProducts
    self.geluInputScale = geluInputScale
    self.geluIndexBits = geluIndexBits
    self.expInputScale = expInputScale
    self.expClipBits = expClipBits
    self.reciprocalInputScale = reciprocalInputScale
    self.reciprocalOutputScale = reciprocalOutputScale ?? fractionalBits + 8
    self.rsqrtMantissaBits = rsqrtMantissaBits
    self.rsqrtOutputScale = rsqrtOutputScale ?? fractionalBits + 4
    self.layerNormSquareShift = layerNormSquareShift ?? (ringBits >= 48 ? 0 : fractionalBits / 2)
    self.softmaxRingBits = softmaxRingBits ?? min(ringBits, fractionalBits + 14)
  }

  public var description: String {
    "sigma n=\(ringBits) f=\(fractionalBits) trunc=\(productTruncation == .slack ? "slack" : "floor")"
      + (roundProducts ? " round" : " floor-products") + " gelu=\(geluIndexBits)b@\(geluInputScale)"
      + " exp=\(expClipBits)b@\(expInputScale) recip@\(reciprocalInputScale)→\(reciprocalOutputScale)"
      + " rsqrt=\(rsqrtMantissaBits)m→\(rsqrtOutputScale)"
      + (layerNormSquareShift > 0 ? " lnSquare>>\(layerNormSquareShift)" : "")
      + " softmax@\(softmaxRingBits)b"
  }

  /// Checks that the parameters fit together and fit the gates.
  public func validate() throws(MPCError) {
    let n = ringBits
    let f = fractionalBits
    guard (16...64).contains(n) else { throw .invalidParameters("ring width \(n) is outside 16…64") }
    guard f >= 1, 2 * f + 8 < n else { throw .invalidParameters("f = \(f) does not fit n = \(n) (need 2f + 8 < n)") }
    guard productTruncation != .signExtend else {
      throw .invalidParameters("products are truncated with .slack or .reduce, not sign extension")
    }
    guard (1...f).contains(geluInputScale), (2...12).contains(geluIndexBits) else {
      throw .invalidParameters("GeLU table: input scale 1…f and 2…12 index bits")
    }
    guard n - 2 * f + geluInputScale + 1 >= geluIndexBits + 3 else {
      throw .invalidParameters("GeLU: the reduced ring is narrower than the table index")
    }
    guard (4...24).contains(expInputScale), (4...24).contains(expClipBits), expClipBits < n - 2 else {
      throw .invalidParameters("nExp: input scale and clip bits must be 4…24")
    }
    // exp(−z)·(1/s) ≤ 2^(f + reciprocalOutputScale) must keep TrWithSlack's headroom.
    guard (1...f).contains(reciprocalInputScale), (1...(n - f - 3)).contains(reciprocalOutputScale) else {
      throw .invalidParameters("reciprocal: input scale 1…f, output scale 1…n − f − 3")
    }
    // (x − μ)·rsqrt ≤ √d·2^(f + rsqrtOutputScale): room for d up to 2^10.
    guard (1...10).contains(rsqrtMantissaBits), (1...(n - f - 8)).contains(rsqrtOutputScale) else {
      throw .invalidParameters("rsqrt: 1…10 mantissa bits, output scale 1…n − f − 8")
    }
    guard softmaxRingBits <= n, softmaxRingBits >= max(f + 8, expClipBits + 2, expInputScale + 8) else {
      throw .invalidParameters("softmax ring: \(softmaxRingBits) bits is outside max(f + 8, clip + 2)…n")
    }
    guard (0..<f).contains(layerNormSquareShift) else {
      throw .invalidParameters("LayerNorm square shift must be 0…f − 1")
    }
  }
}

/// ⌈log2 x⌉ for x ≥ 1.
func ceilLog2(_ x: Int) -> Int { x <= 1 ? 0 : Int.bitWidth - (x - 1).leadingZeroBitCount }

/// ⌊log2 x⌋ for x ≥ 1.
func floorLog2(_ x: Int) -> Int { Int.bitWidth - 1 - x.leadingZeroBitCount }

/// round(x · 2^scale) as a signed integer.
func fixed(_ x: Double, scale: Int) -> Int64 {
  Int64((x * Double(sign: .plus, exponent: scale, significand: 1)).rounded(.toNearestOrAwayFromZero))
}

/// The recipe's tables.
public enum SigmaTables {
  /// h(x) = ReLU(x) − GeLU(x) = |x|·Φ(−|x|), even in x.
  static func reluMinusGelu(_ x: Double) -> Double {
    let a = abs(x)
    return a * 0.5 * erfc(a / 2.0.squareRoot())
  }

  /// GeLU's correction table. Index k stands for |x| ∈ [k, k + 1) / 2^s (the recipe forms the
  /// one's-complement index of the floor, so negative and positive inputs share the buckets),
  /// and holds h at the bucket's midpoint; the last index is the clip region |x| ≥ (2^b − 1)/2^s,
  /// where h < 1.4e-4 (≈ ½ ulp at f = 12) and the entry is 0.
  ///
  /// - Note: SIGMA indexes min(|⌊x·2^s⌋|, 2^b − 1) into h(k/2^s); the midpoint of the
  ///   bucket halves the worst error (0.5·max|h′|/2^s) at the same cost.
  public static func gelu(_ p: SigmaParameters) throws(MPCError) -> LookupTable {
    let size = 1 << p.geluIndexBits
    let step = Double(sign: .plus, exponent: -p.geluInputScale, significand: 1)
    var entries = [Int64](repeating: 0, count: size)
    for k in 0..<(size - 1) { entries[k] = fixed(reluMinusGelu((Double(k) + 0.5) * step), scale: p.fractionalBits) }
    return try LookupTable(
      name: "sigma.gelu.reluMinusGelu.\(p.geluIndexBits)@\(p.geluInputScale)", inputBits: p.geluIndexBits,
      output: WireFormat(bits: p.ringBits, scale: p.fractionalBits), entries: entries)
  }

  /// exp(−z) tables: the high half of the clipped z (index h: z = h·2^lowBits / 2^s) and the
  /// low half (index l: z = l / 2^s), each exp(−z) at scale f.
  public static func exponential(_ p: SigmaParameters) throws(MPCError) -> (high: LookupTable, low: LookupTable) {
    let lowBits = p.expClipBits / 2
    let highBits = p.expClipBits - lowBits
    let unit = Double(sign: .plus, exponent: -p.expInputScale, significand: 1)
    let output = WireFormat(bits: p.ringBits, scale: p.fractionalBits)
    let high = (0..<(1 << highBits)).map { h in
      fixed(exp(-Double(h) * Double(1 << lowBits) * unit), scale: p.fractionalBits)
    }
    let low = (0..<(1 << lowBits)).map { l in fixed(exp(-Double(l) * unit), scale: p.fractionalBits) }
    return (
      try LookupTable(
        name: "sigma.nexp.high.\(highBits)@\(p.expInputScale - lowBits)", inputBits: highBits, output: output,
        entries: high),
      try LookupTable(
        name: "sigma.nexp.low.\(lowBits)@\(p.expInputScale)", inputBits: lowBits, output: output, entries: low)
    )
  }

  /// 1/s for a softmax row sum s ∈ [1, terms]: index j stands for s = (j + 2^s_in)/2^s_in
  /// (the recipe subtracts the guaranteed 1, so a power-of-two row length never overflows the
  /// index), entries 1/s at the reciprocal output scale. ⌈log2 terms⌉ + s_in index bits.
  public static func reciprocal(_ p: SigmaParameters, terms: Int) throws(MPCError) -> LookupTable {
    let bits = ceilLog2(max(terms, 1)) + p.reciprocalInputScale
    let one = Double(1 << p.reciprocalInputScale)
    let entries = (0..<(1 << bits)).map { j in fixed(one / (Double(j) + one), scale: p.reciprocalOutputScale) }
    return try LookupTable(
      name: "sigma.reciprocal.\(bits)@\(p.reciprocalInputScale)", inputBits: bits,
      output: WireFormat(bits: p.ringBits, scale: p.reciprocalOutputScale), entries: entries)
  }

  /// Exponent bits of the float-like rsqrt index for an n-bit ring (exponents 0…n − 3).
  static func rsqrtExponentBits(ringBits n: Int) -> Int { ceilLog2(n - 2) }

  /// √numerator / √(v / 2^inputScale) for a positive integer v given as exponent e = ⌊log2 v⌋
  /// and the M bits below the leading one (index e·2^M + mantissa). Each entry is the mean of
  /// the function at the two ends of its bucket of integers; the division by d of a variance
  /// is folded in as `numerator` (SIGMA folds it the same way).
  public static func rsqrt(_ p: SigmaParameters, inputScale: Int, numerator: Double) throws(MPCError) -> LookupTable {
    let m = p.rsqrtMantissaBits
    let exponentBits = rsqrtExponentBits(ringBits: p.ringBits)
    let top = p.ringBits - 3
    var entries = [Int64](repeating: 0, count: 1 << (m + exponentBits))
    let factor = numerator.squareRoot() * Double(sign: .plus, exponent: inputScale, significand: 1).squareRoot()
    func value(_ v: Double) -> Double { factor / v.squareRoot() }
    for e in 0...top {
      for mantissa in 0..<(1 << m) {
        let lead = Double((1 << m) + mantissa)
        let entry: Double
        if e >= m {
          let low = lead * Double(sign: .plus, exponent: e - m, significand: 1)
          let high = low + Double(sign: .plus, exponent: e - m, significand: 1) - 1
          entry = (value(low) + value(high)) / 2
        } else {
          entry = value((lead * Double(sign: .plus, exponent: e - m, significand: 1)).rounded(.down))
        }
        // Saturate: only inputs of a few units (a constant row plus ε, where x − μ = 0) can
        // reach the ring's edge, and their product with x − μ stays 0.
        let limit = (Int64(1) << Int64(p.ringBits - 2)) - 1
        entries[(e << m) + mantissa] = min(fixed(entry, scale: p.rsqrtOutputScale), limit)
      }
    }
    return try LookupTable(
      name: "sigma.rsqrt.\(m + exponentBits)@\(inputScale).\(numerator)", inputBits: m + exponentBits,
      output: WireFormat(bits: p.ringBits, scale: p.rsqrtOutputScale), entries: entries)
  }
}

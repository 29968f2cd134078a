// SIGMA's public lookup tables, computed once from their formulas (RECIPES.md §2.1–2.3). Every
// table is a pure function of the parameters, so the dealer, the parties and the clear back end
// build identical ones.
import Foundation
import VeilFSS

/// ⌈log2 x⌉ for x ≥ 1.
func ceilLog2(_ x: Int) -> Int { x <= 1 ? 0 : Int.bitWidth - (x - 1).leadingZeroBitCount }

/// ⌊log2 x⌋ for x ≥ 1.
func floorLog2(_ x: Int) -> Int { Int.bitWidth - 1 - x.leadingZeroBitCount }

/// round(x · 2^scale) as a signed integer.
func fixed(_ x: Double, scale: Int) -> Int64 {
  Int64(
    (x * Double(sign: .plus, exponent: scale, significand: 1)).rounded(.toNearestOrAwayFromZero))
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
  public static func gelu(_ p: RecipeParameters) throws(MPCError) -> LookupTable {
    try reluMinus(p, name: "gelu.reluMinusGelu", indexBits: p.geluIndexBits, reluMinusGelu)
  }

  /// h(x) = ReLU(x) − SiLU(x) = |x|·σ(−|x|), even in x.
  static func reluMinusSilu(_ x: Double) -> Double {
    let a = abs(x)
    return a / (1 + exp(a))
  }

  /// SiLU's correction table, laid out as GeLU's, with `siluIndexBits` (SIGMA: 10, so
  /// |x| < 1023/64 ≈ 16, where h < 2·10⁻⁶).
  public static func silu(_ p: RecipeParameters) throws(MPCError) -> LookupTable {
    try reluMinus(p, name: "silu.reluMinusSilu", indexBits: p.siluIndexBits, reluMinusSilu)
  }

  static func reluMinus(
    _ p: RecipeParameters, name: String, indexBits: Int, _ h: (Double) -> Double
  ) throws(MPCError) -> LookupTable {
    let size = 1 << indexBits
    let step = Double(sign: .plus, exponent: -p.geluInputScale, significand: 1)
    var entries = [Int64](repeating: 0, count: size)
    for k in 0..<(size - 1) {
      entries[k] = fixed(h((Double(k) + 0.5) * step), scale: p.fractionalBits)
    }
    return try LookupTable(
      name: "sigma.\(name).\(indexBits)@\(p.geluInputScale)", inputBits: indexBits,
      output: WireFormat(bits: p.ringBits, scale: p.fractionalBits), entries: entries)
  }

  /// exp(−z) tables: the high half of the clipped z (index h: z = h·2^lowBits / 2^s) and the
  /// low half (index l: z = l / 2^s), each exp(−z) at scale f.
  public static func exponential(_ p: RecipeParameters) throws(MPCError) -> (
    high: LookupTable, low: LookupTable
  ) {
    let lowBits = p.expClipBits / 2
    let highBits = p.expClipBits - lowBits
    let unit = Double(sign: .plus, exponent: -p.expInputScale, significand: 1)
    let output = WireFormat(bits: p.ringBits, scale: p.fractionalBits)
    let high = (0..<(1 << highBits)).map { h in
      fixed(exp(-Double(h) * Double(1 << lowBits) * unit), scale: p.fractionalBits)
    }
    let low = (0..<(1 << lowBits)).map { l in fixed(exp(-Double(l) * unit), scale: p.fractionalBits)
    }
    return (
      try LookupTable(
        name: "sigma.nexp.high.\(highBits)@\(p.expInputScale - lowBits)", inputBits: highBits,
        output: output,
        entries: high),
      try LookupTable(
        name: "sigma.nexp.low.\(lowBits)@\(p.expInputScale)", inputBits: lowBits, output: output,
        entries: low)
    )
  }

  /// 1/s for a softmax row sum s ∈ [1, terms]: index j stands for s = (j + 2^s_in)/2^s_in
  /// (the recipe subtracts the guaranteed 1, so a power-of-two row length never overflows the
  /// index), entries 1/s at the reciprocal output scale. ⌈log2 terms⌉ + s_in index bits.
  public static func reciprocal(_ p: RecipeParameters, terms: Int) throws(MPCError) -> LookupTable {
    let bits = ceilLog2(max(terms, 1)) + p.reciprocalInputScale
    let one = Double(1 << p.reciprocalInputScale)
    let entries = (0..<(1 << bits)).map { j in
      fixed(one / (Double(j) + one), scale: p.reciprocalOutputScale)
    }
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
  public static func rsqrt(_ p: RecipeParameters, inputScale: Int, numerator: Double)
    throws(MPCError) -> LookupTable
  {
    let m = p.rsqrtMantissaBits
    let exponentBits = rsqrtExponentBits(ringBits: p.ringBits)
    let top = p.ringBits - 3
    var entries = [Int64](repeating: 0, count: 1 << (m + exponentBits))
    let factor =
      numerator.squareRoot()
      * Double(sign: .plus, exponent: inputScale, significand: 1).squareRoot()
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
          entry = value(
            (lead * Double(sign: .plus, exponent: e - m, significand: 1)).rounded(.down))
        }
        // Saturate: only inputs of a few units (a constant row plus ε, where x − μ = 0) can
        // reach the ring's edge, and their product with x − μ stays 0.
        let limit = (Int64(1) << Int64(p.ringBits - 2)) - 1
        entries[(e << m) + mantissa] = min(fixed(entry, scale: p.rsqrtOutputScale), limit)
      }
    }
    return try LookupTable(
      name: "sigma.rsqrt.\(m + exponentBits)@\(inputScale).\(numerator)",
      inputBits: m + exponentBits,
      output: WireFormat(bits: p.ringBits, scale: p.rsqrtOutputScale), entries: entries)
  }
}

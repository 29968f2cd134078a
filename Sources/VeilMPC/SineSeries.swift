// The secure sine series of SecFormer's GeLU (RECIPES.md §2.1, DESIGN §3): Σ_k β_k·sin(2πk·φ)
// for an angle φ held as a masked wire in Z_2^m, where a whole turn is 2^m. The wire's mask r is
// uniform in Z_2^m, so the opened angle φ̂ = φ + r is uniform modulo the period (SecFormer's
// public code opens u − t with t drawn from an interval, which leaks). With
// sin(k(φ̂ − r)) = sin(kφ̂)·cos(kr) − cos(kφ̂)·sin(kr), the dealer shares β_k·cos(kr) and
// β_k·sin(kr) and each party multiplies its shares by the public sin(kφ̂), cos(kφ̂).
//
// Both parties must use bit-identical public multipliers (a one-unit difference would scale a
// uniformly random share), so sines come from a table built with IEEE basic operations only
// (a Taylor polynomial, no libm), which every machine rounds the same way.
import Foundation
import VeilFSS

/// sin and cos of 2π·j/2^m for j ∈ Z_2^m, deterministic on every IEEE-754 machine: two tables
/// of 2^⌈m/2⌉ and 2^⌊m/2⌋ angles and the angle-addition formula.
struct TurnTable: Sendable {
  let bits: Int
  private let lowBits: Int
  private let high: [(sin: Double, cos: Double)]
  private let low: [(sin: Double, cos: Double)]

  init(bits: Int) {
    self.bits = bits
    lowBits = bits / 2
    let highBits = bits - lowBits
    high = (0..<(1 << highBits)).map { Self.sinCos(turn: Double($0) / Double(1 << highBits)) }
    low = (0..<(1 << lowBits)).map { Self.sinCos(turn: Double($0) / Double(1 << bits)) }
  }

  /// sin and cos of 2π·j/2^bits (j is read modulo 2^bits).
  @inline(__always) func sinCos(_ j: UInt64) -> (sin: Double, cos: Double) {
    let j = Int(j & ((1 << UInt64(bits)) - 1))
    let a = high[j >> lowBits]
    let b = low[j & ((1 << lowBits) - 1)]
    return (a.sin * b.cos + a.cos * b.sin, a.cos * b.cos - a.sin * b.sin)
  }

  /// sin and cos of 2π·t for t ∈ [0, 1): the quadrant by exact arithmetic on t, then Taylor
  /// series to degree 25 on [0, π/2) (truncation error below 10⁻¹⁹).
  static func sinCos(turn t: Double) -> (sin: Double, cos: Double) {
    let quadrant = Int(t * 4)
    let x = (t - Double(quadrant) / 4) * (2 * Double.pi)
    let x2 = x * x
    var s = 0.0
    var c = 0.0
    // Horner from the highest term: sin = x·Σ (−x²)^i/(2i+1)!, cos = Σ (−x²)^i/(2i)!.
    for i in stride(from: 12, through: 0, by: -1) {
      s = s * (-x2) / Double((2 * i + 2) * (2 * i + 3)) + 1
      c = c * (-x2) / Double((2 * i + 1) * (2 * i + 2)) + 1
    }
    s *= x
    switch quadrant & 3 {
    case 0: return (s, c)
    case 1: return (c, -s)
    case 2: return (-s, -c)
    default: return (-c, s)
    }
  }
}

/// The integer arithmetic of the secure sine series, shared by the dealer, the parties and the
/// clear back end.
enum SineSeries {
  /// The series' output has `outputScale` = public + secret scale: each party multiplies public
  /// sines at `publicScale(outputScale)` by shares at the rest.
  static func publicScale(_ outputScale: Int) -> Int { outputScale / 2 }

  /// round(Σ_k β_k·sin(2πk·φ/2^m)·2^scale): the rounded series (what the clear back end
  /// computes).
  static func rounded(_ phase: UInt64, coefficients: [Double], table: TurnTable, scale: Int)
    -> Int64
  {
    var total = 0.0
    for (i, beta) in coefficients.enumerated() {
      total += beta * table.sinCos(UInt64(i + 1) &* phase).sin
    }
    return fixed(total, scale: scale)
  }

  /// The dealer's values for one mask r: round(β_k·cos(2πkr)·2^s) and round(β_k·sin(2πkr)·2^s)
  /// for k = 1…K, appended to `cosines` and `sines`.
  static func maskTerms(
    _ mask: UInt64, coefficients: [Double], table: TurnTable, scale: Int,
    cosines: inout [UInt64], sines: inout [UInt64], bits: Int
  ) {
    for (i, beta) in coefficients.enumerated() {
      let (s, c) = table.sinCos(UInt64(i + 1) &* mask)
      cosines.append(element(fixed(beta * c, scale: scale), bits: bits))
      sines.append(element(fixed(beta * s, scale: scale), bits: bits))
    }
  }

  /// A party's share of the series at φ̂: Σ_k round(sin(kφ̂)·2^p)·[C_k] − round(cos(kφ̂)·2^p)·[S_k]
  /// plus its share of the output mask, mod 2^bits.
  static func share(
    _ masked: UInt64, cosines: ArraySlice<UInt64>, sines: ArraySlice<UInt64>, outputMask: UInt64,
    table: TurnTable, publicScale p: Int, bits: Int
  ) -> UInt64 {
    var z = outputMask
    for i in 0..<cosines.count {
      let (s, c) = table.sinCos(UInt64(i + 1) &* masked)
      let a = UInt64(bitPattern: fixed(s, scale: p))
      let b = UInt64(bitPattern: fixed(c, scale: p))
      z = z &+ a &* cosines[cosines.startIndex + i] &- b &* sines[sines.startIndex + i]
    }
    return z & ringMask(bits)
  }
}

extension SineSeries {
  /// The limits of the gate: an angle ring of 2…30 bits, 1…16 terms, an output scale whose
  /// products fit the run's ring.
  static func validate(
    angleBits m: Int, terms: Int, outputScale: Int, ringBits n: Int, _ site: GateSite
  )
    throws(MPCError)
  {
    guard (2...30).contains(m), (1...16).contains(terms), outputScale >= 2, outputScale <= n - 8
    else {
      throw .formatMismatch(
        site,
        "sine series: a 2…30-bit angle, 1…16 terms and output scale 2…n − 8 (\(m) bits, \(terms) terms, scale \(outputScale), n \(n))"
      )
    }
  }
}

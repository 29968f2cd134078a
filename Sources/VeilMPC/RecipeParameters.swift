// The numeric choices of a run (DESIGN §2, §9): ring width and scale, which published
// approximation computes each nonlinear family (`--recipe sigma|puma|secformer`, or a mix for
// experiments), and each approximation's settings. The description goes into the model digest,
// so keys made for one choice are refused by a run with another.
import VeilFSS

/// A published family of approximations (RECIPES.md §2).
public enum Approximation: String, Sendable, Hashable, Codable, CaseIterable,
  CustomStringConvertible
{
  /// SIGMA: lookup tables by FSS (GeLU = ReLU − LUT, exp = T_hi·T_lo, reciprocal and rsqrt LUTs).
  case sigma
  /// PUMA: piecewise polynomials, (1 + x/32)^32, Goldschmidt reciprocal, polynomial rsqrt.
  case puma
  /// SecFormer: Fourier-series erf, 2Quad softmax, Goldschmidt division and rsqrt.
  case secformer

  public var description: String { rawValue }
}

/// The numeric choices of a run: the ring, the approximation of each nonlinear family, and
/// each approximation's own settings. Defaults follow SIGMA (n = 50, f = 12, 8-bit GeLU
/// table at input scale 6, exp(−z) = T_hi·T_lo on a 16-bit clipped z at scale 12, reciprocal
/// table at input scale 6, 13-bit float-like rsqrt table); `preset(_:)` gives PUMA's and
/// SecFormer's published settings. Deviations are documented at each field.
public struct RecipeParameters: Sendable, Hashable, Codable, CustomStringConvertible {
  /// GeLU's approximation.
  public var gelu: Approximation
  /// Softmax's approximation (exponential, reciprocal; SecFormer's is 2Quad).
  public var softmax: Approximation
  /// LayerNorm's and L2 normalisation's rsqrt.
  public var normalization: Approximation
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
  /// SiLU: the index bits of its table at GeLU's input scale (SIGMA: 10, |x| < 16).
  public var siluIndexBits: Int
  /// GeLU/SiLU compare in a ring of this many bits at the table's input scale s: TrWithSlack
  /// reduces x into it, exact while |x| < 2^(m−s−2) (asserted and counted by the fixed-point
  /// engine), so the DReLU walks m − 1 tree levels instead of n − 2f + s.
  /// Deviation: SIGMA reduces to n − 2f + s + 1 bits (33 at n = 50, f = 12, |x| < 2^25); the
  /// default s + 12 (|x| < 1024; MiniLM's largest GeLU input over its 28 reference sentences
  /// is 24.6) halves GeLU's DPF keys and tree walks. Capped at SIGMA's width.
  public var geluRingBits: Int
  /// The ring GeLU's comparisons run in: `geluRingBits`, at most n − 2f + s + 1.
  public var geluReducedBits: Int {
    min(geluRingBits, ringBits - 2 * fractionalBits + geluInputScale + 1)
  }
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
  /// PUMA: exp(x) ≈ (1 + x/2^k)^(2^k) with k = `expIterations`, and exp(x) = 0 below
  /// −`expCutoff` (PUMA: 14). Default k = 8, SPU's own default: PUMA's benchmark configuration
  /// k = 5 ((1 + x/32)^32, ln error ≈ x²/64) leaves MiniLM at cosine 0.996–0.999 against
  /// float64; k = 8 keeps every sentence above 0.999 for 3 more squarings (BENCHMARKS.md).
  public var expIterations: Int
  public var expCutoff: Int
  /// PUMA: Goldschmidt iterations of the reciprocal after normalising into [0.5, 1) (PUMA: 2).
  public var reciprocalIterations: Int
  /// SecFormer: Goldschmidt iterations of the division and of rsqrt (SecFormer's end-to-end
  /// code: 7 each). Deflation by a public bound leaves small inputs far from 1, where an
  /// iteration only gains a factor 2 (division) or 2.25 (rsqrt), so rsqrt needs more for
  /// LayerNorm's variances; the accuracy tables report both.
  public var divisionIterations: Int
  public var rsqrtIterations: Int
  /// SecFormer: the public deflation bound of rsqrt's input, a power of two: the variance
  /// (plus ε) is divided by about 2^`rsqrtDeflationBits` before the iteration, which converges
  /// for inputs in (0, 3), so variances up to ≈ 3·2^D work (D = 8: ≈ 1000, above MiniLM's).
  /// From a variance of 2^−6 the iteration needs ≈ 16 steps (the default; SecFormer's code
  /// runs 7, which is accurate only for variances within ≈ 2^5 of the bound).
  public var rsqrtDeflationBits: Int
  /// SecFormer 2Quad: the assumed bound on |x + 5| of a score, a power of two, which sets the
  /// division's deflation (row sums up to T·4^`quadBoundBits`).
  public var quadBoundBits: Int

  public init(
    gelu: Approximation = .sigma, softmax: Approximation = .sigma,
    normalization: Approximation = .sigma, ringBits: Int = 50, fractionalBits: Int = 12,
    productTruncation: TruncationKind = .slack,
    roundProducts: Bool = true, geluInputScale: Int = 6, geluIndexBits: Int = 8,
    siluIndexBits: Int = 10, geluRingBits: Int? = nil,
    expInputScale: Int = 12,
    expClipBits: Int = 16, reciprocalInputScale: Int = 6, reciprocalOutputScale: Int? = nil,
    rsqrtMantissaBits: Int = 7, rsqrtOutputScale: Int? = nil, layerNormSquareShift: Int? = nil,
    softmaxRingBits: Int? = nil, expIterations: Int = 8, expCutoff: Int = 14,
    reciprocalIterations: Int = 2, divisionIterations: Int = 7, rsqrtIterations: Int = 16,
    rsqrtDeflationBits: Int = 8,
    quadBoundBits: Int = 4
  ) {
    self.gelu = gelu
    self.softmax = softmax
    self.normalization = normalization
    self.expIterations = expIterations
    self.expCutoff = expCutoff
    self.reciprocalIterations = reciprocalIterations
    self.divisionIterations = divisionIterations
    self.rsqrtIterations = rsqrtIterations
    self.rsqrtDeflationBits = rsqrtDeflationBits
    self.quadBoundBits = quadBoundBits
    self.ringBits = ringBits
    self.fractionalBits = fractionalBits
    self.productTruncation = productTruncation
    self.roundProducts = roundProducts
    self.geluInputScale = geluInputScale
    self.geluIndexBits = geluIndexBits
    self.siluIndexBits = siluIndexBits
    self.geluRingBits = geluRingBits ?? geluInputScale + 12
    self.expInputScale = expInputScale
    self.expClipBits = expClipBits
    self.reciprocalInputScale = reciprocalInputScale
    self.reciprocalOutputScale = reciprocalOutputScale ?? fractionalBits + 8
    self.rsqrtMantissaBits = rsqrtMantissaBits
    self.rsqrtOutputScale = rsqrtOutputScale ?? fractionalBits + 4
    self.layerNormSquareShift = layerNormSquareShift ?? (ringBits >= 48 ? 0 : fractionalBits / 2)
    self.softmaxRingBits = softmaxRingBits ?? min(ringBits, fractionalBits + 14)
  }

  /// One published recipe for every family, at its published ring (SIGMA n = 50, f = 12;
  /// PUMA 64/18; SecFormer 64/16) unless `ringBits`/`fractionalBits` say otherwise.
  public static func preset(
    _ recipe: Approximation, ringBits: Int? = nil, fractionalBits: Int? = nil
  ) -> RecipeParameters {
    let (n, f) =
      switch recipe {
      case .sigma: (50, 12)
      case .puma: (64, 18)
      case .secformer: (64, 16)
      }
    return RecipeParameters(
      gelu: recipe, softmax: recipe, normalization: recipe, ringBits: ringBits ?? n,
      fractionalBits: fractionalBits ?? f)
  }

  /// The recipe's name: one approximation, or a mix's three as gelu+softmax+norm (at most 25
  /// bytes: the key-stream header keeps 32).
  public var recipeName: String {
    if gelu == softmax, softmax == normalization { return gelu.rawValue }
    return "\(gelu)+\(softmax)+\(normalization)"
  }

  public var description: String {
    "\(recipeName) n=\(ringBits) f=\(fractionalBits) trunc=\(productTruncation == .slack ? "slack" : "floor")"
      + (roundProducts ? " round" : " floor-products")
      + " gelu=\(geluIndexBits)b@\(geluInputScale) silu=\(siluIndexBits)b gelu@\(geluReducedBits)b"
      + " exp=\(expClipBits)b@\(expInputScale) recip@\(reciprocalInputScale)→\(reciprocalOutputScale)"
      + " rsqrt=\(rsqrtMantissaBits)m→\(rsqrtOutputScale)"
      + (layerNormSquareShift > 0 ? " lnSquare>>\(layerNormSquareShift)" : "")
      + " softmax@\(softmaxRingBits)b"
      + " puma(exp=\(expIterations)/-\(expCutoff) recip=\(reciprocalIterations))"
      + " secformer(div=\(divisionIterations) rsqrt=\(rsqrtIterations)/2^\(rsqrtDeflationBits)"
      + " quad<2^\(quadBoundBits))"
  }

  /// Checks that the parameters fit together and fit the gates.
  public func validate() throws(MPCError) {
    let n = ringBits
    let f = fractionalBits
    guard (16...64).contains(n) else {
      throw .invalidParameters("ring width \(n) is outside 16…64")
    }
    guard f >= 1, 2 * f + 8 < n else {
      throw .invalidParameters("f = \(f) does not fit n = \(n) (need 2f + 8 < n)")
    }
    guard productTruncation != .signExtend else {
      throw .invalidParameters("products are truncated with .slack or .reduce, not sign extension")
    }
    guard (1...f).contains(geluInputScale), (2...12).contains(geluIndexBits) else {
      throw .invalidParameters("GeLU table: input scale 1…f and 2…12 index bits")
    }
    guard geluReducedBits >= max(geluIndexBits, siluIndexBits) + 3,
      (2...12).contains(siluIndexBits)
    else {
      throw .invalidParameters(
        "GeLU/SiLU: the reduced ring (\(geluReducedBits) bits) is narrower than the table index + 3"
      )
    }
    guard (4...24).contains(expInputScale), (4...24).contains(expClipBits), expClipBits < n - 2
    else {
      throw .invalidParameters("nExp: input scale and clip bits must be 4…24")
    }
    // exp(−z)·(1/s) ≤ 2^(f + reciprocalOutputScale) must keep TrWithSlack's headroom.
    guard (1...f).contains(reciprocalInputScale), (1...(n - f - 3)).contains(reciprocalOutputScale)
    else {
      throw .invalidParameters("reciprocal: input scale 1…f, output scale 1…n − f − 3")
    }
    // (x − μ)·rsqrt ≤ √d·2^(f + rsqrtOutputScale): room for d up to 2^10.
    guard (1...10).contains(rsqrtMantissaBits), (1...(n - f - 8)).contains(rsqrtOutputScale) else {
      throw .invalidParameters("rsqrt: 1…10 mantissa bits, output scale 1…n − f − 8")
    }
    guard softmaxRingBits <= n, softmaxRingBits >= max(f + 8, expClipBits + 2, expInputScale + 8)
    else {
      throw .invalidParameters(
        "softmax ring: \(softmaxRingBits) bits is outside max(f + 8, clip + 2)…n")
    }
    guard (0..<f).contains(layerNormSquareShift) else {
      throw .invalidParameters("LayerNorm square shift must be 0…f − 1")
    }
    guard (1...10).contains(expIterations), (1...30).contains(expCutoff),
      (1...6).contains(reciprocalIterations), (1...16).contains(divisionIterations),
      (1...40).contains(rsqrtIterations)
    else {
      throw .invalidParameters(
        "PUMA/SecFormer: 1…10 exp squarings, cut-off 1…30, 1…6 reciprocal, 1…16 division and 1…40 rsqrt iterations"
      )
    }
    // Polynomials and Goldschmidt iterations multiply values of a few units at scale 2f.
    if gelu != .sigma || softmax != .sigma || normalization != .sigma {
      guard n >= 2 * f + 16 else {
        throw .invalidParameters(
          "PUMA and SecFormer approximations need n ≥ 2f + 16 (n \(n), f \(f))")
      }
    }
    guard (0...(n - 2 * f - 4)).contains(rsqrtDeflationBits), (1...8).contains(quadBoundBits) else {
      throw .invalidParameters("SecFormer: rsqrt deflation 0…n − 2f − 4 bits, quad bound 1…8 bits")
    }
  }
}

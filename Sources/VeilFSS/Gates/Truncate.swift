// Exact truncations on masked wires (never CrypTen-style probabilistic truncation), and the
// sign extension they need. Each takes two rounds: the parties open a masked comparison bit,
// then each picks, by that public bit, one of two dealer-shared corrections (only the chosen
// one is ever opened), and opens the output.
//
// For x̂ = x + r in Z_2^n and a shift s, with the public offset x' = x + 2^(n−1) ≥ 0:
//   ⌊x'/2^s⌋ = x̂'_hi − r_hi − [x̂'_lo < r_lo] (mod 2^(n−s)),  ⌊x/2^s⌋ = ⌊x'/2^s⌋ − 2^(n−1−s)
// (hi = bits above s, lo = the s low bits): an s-bit comparison gives the exact result in
// Z_2^(n−s) ("truncate-reduce"). TrFloor keeps Z_2^n by sign-extending that result, which
// needs one more comparison at the reduced width. TrWithSlack assumes |x| < 2^(n−2): then
// x'' = x + 2^(n−2) < 2^(n−1), the wrap of x'' + r is msb(r) ∧ ¬msb(x̂''), known locally
// up to a dealer share, and one s-bit comparison suffices for any output width.
import VeilRing

/// Which exact truncation a key implements.
public enum TruncationKind: UInt8, Sendable, CaseIterable, Codable {
  /// ⌊x/2^s⌋ into Z_2^(n−s) (SIGMA's truncate-reduce).
  case reduce = 1
  /// ⌊x/2^s⌋ into Z_2^m (m ≤ n) for |x| < 2^(n−2).
  case slack = 2
  /// ⌊x/2^s⌋ from Z_2^m into the wider Z_2^n with s = 0: sign extension.
  case signExtend = 3
}

/// Keys of a batch of one-step truncations (or sign extensions).
public struct TruncationKey: Sendable, Equatable {
  public let kind: TruncationKind
  /// Input ring width, shift, output ring width.
  public let inputBits: Int
  public let shift: Int
  public let outputBits: Int
  let compare: DPFKeys
  /// XOR shares of ρ ⊕ (comparison correction): the masked carry bit's mask.
  let bitMaskShares: [UInt8]
  /// Shares of the two corrections, element-major: [corr(ĉ = 0), corr(ĉ = 1)].
  let corrections: [UInt64]
  /// Shares of 2^(n−s)·msb(r) (TrWithSlack only), in the subgroup 2^(n−s)·Z_2^m
  /// (`wrapSubgroup`).
  let wrapShares: [UInt64]
  /// The seed this party's shares expand from, if it is the batch's seeded party
  /// (`SeededSharing`).
  let shareSeed: [UInt8]?
  public var count: Int { compare.count }
}

public enum TruncationGate {
  /// The public offset added to the input before the comparison.
  static func offset(kind: TruncationKind, inputBits n: Int) -> UInt64 {
    kind == .slack ? 1 << UInt64(n - 2) : 1 << UInt64(n - 1)
  }

  /// TrWithSlack's wrap term 2^(n−s)·msb(r) lies in the subgroup 2^(n−s)·Z_2^m, so it is
  /// shared there: uniform shares of that subgroup hide it as well as shares of Z_2^m, and
  /// each is a (m − (n − s))-bit multiple (none when m ≤ n − s). A product truncation
  /// (n = m = 50, s = 12) ships 12 bits instead of 50.
  static func wrapSubgroup(inputBits n: Int, shift s: Int, outputBits m: Int) -> (
    shift: Int, bits: Int
  ) {
    (n - s, Swift.max(m - (n - s), 0))
  }

  /// The comparison width: the shift, or the whole input for a sign extension.
  static func compareBits(kind: TruncationKind, inputBits: Int, shift: Int) -> Int {
    kind == .signExtend ? inputBits : shift
  }

  /// Dealer: keys for inputs masked with `inputMasks` (Z_2^inputBits); outputs will be masked
  /// with `outputMasks` (Z_2^outputBits).
  public static func gen(
    kind: TruncationKind, inputBits n: Int, shift s: Int, outputBits m: Int, inputMasks: [UInt64],
    outputMasks: [UInt64], prg: TreePRG, random: inout SecureRandom, seededParty: Int = 0
  ) throws(FSSError) -> (TruncationKey, TruncationKey) {
    switch kind {
    case .reduce:
      guard n >= 2, s >= 1, s < n, m == n - s else {
        throw .invalidWidth("reduce needs 1 ≤ s < n and m = n − s")
      }
    case .slack:
      guard n >= 3, s >= 1, s <= n - 2, m >= 1, m <= n else {
        throw .invalidWidth("slack needs 1 ≤ s ≤ n − 2, m ≤ n")
      }
    case .signExtend:
      guard s == 0, n >= 1, m > n, m <= 64 else {
        throw .invalidWidth("sign extension needs s = 0 and m > n")
      }
    }
    guard outputMasks.count == inputMasks.count else {
      throw .countMismatch(expected: inputMasks.count, found: outputMasks.count)
    }
    let count = inputMasks.count
    let w = compareBits(kind: kind, inputBits: n, shift: s)
    let lowMask = ringMask(w)
    let outMask = ringMask(m)
    let (k0, k1, wrap) = try MaskCompare.gen(
      bits: w, alphas: inputMasks.map { $0 & lowMask }, prg: prg, random: &random)
    let rho = random.bits(count)
    var corrections = [UInt64](repeating: 0, count: 2 * count)
    // msb(r) per element: the wrap term 2^(n−s)·msb(r) in its subgroup's coordinate.
    var wrapBits = [UInt64]()
    for e in 0..<count {
      let r = inputMasks[e]
      for opened in 0..<2 {
        // The comparison bit c = ĉ ⊕ ρ; the term that multiplies it differs per kind.
        let c = UInt64(UInt8(opened) ^ rho[e])
        let value: UInt64
        switch kind {
        case .reduce, .slack:
          value = 0 &- (r >> UInt64(s)) &- c
        case .signExtend:
          value = 0 &- r &+ (c << UInt64(n))
        }
        corrections[2 * e + opened] = (value &+ outputMasks[e]) & outMask
      }
      if kind == .slack {
        wrapBits.append((r >> UInt64(n - 1)) & 1)
      }
    }
    // In this order the seeded party's decoder expands them (KeyFormat).
    var shares = try SeededSharing(seededParty: seededParty, random: &random)
    let (b0, b1) = shares.xor(zip(rho, wrap).map { $0 ^ $1 })
    let (c0, c1) = shares.arithmetic(corrections, bits: m)
    let subgroup = wrapSubgroup(inputBits: n, shift: s, outputBits: m)
    let (w0, w1) = shares.arithmetic(
      wrapBits, bits: subgroup.bits)
    let inSubgroup = { (shares: [UInt64]) in shares.map { ($0 << UInt64(subgroup.shift)) & outMask }
    }
    return (
      TruncationKey(
        kind: kind, inputBits: n, shift: s, outputBits: m, compare: k0, bitMaskShares: b0,
        corrections: c0, wrapShares: inSubgroup(w0), shareSeed: shares.seed(for: 0)),
      TruncationKey(
        kind: kind, inputBits: n, shift: s, outputBits: m, compare: k1, bitMaskShares: b1,
        corrections: c1, wrapShares: inSubgroup(w1), shareSeed: shares.seed(for: 1))
    )
  }

  /// Party, round 1: XOR shares of the masked comparison bits, to be opened.
  public static func evalBits(
    party: Int, key: TruncationKey, maskedInputs: [UInt64], prg: TreePRG, threads: Int = 1
  ) throws(FSSError) -> [UInt8] {
    guard maskedInputs.count == key.count else {
      throw .countMismatch(expected: key.count, found: maskedInputs.count)
    }
    let n = key.inputBits
    let offset = offset(kind: key.kind, inputBits: n)
    let lowMask = ringMask(compareBits(kind: key.kind, inputBits: n, shift: key.shift))
    let inMask = ringMask(n)
    let points = maskedInputs.map { (($0 &+ offset) & inMask) & lowMask }
    let below = try MaskCompare.eval(
      party: party, keys: key.compare, points: points, prg: prg, threads: threads)
    return zip(below, key.bitMaskShares).map { $0 ^ $1 }
  }

  /// Party, round 2: its share of the masked output, given the opened comparison bits.
  public static func evalOutput(
    party: Int, key: TruncationKey, maskedInputs: [UInt64], openedBits: [UInt8]
  ) throws(FSSError) -> [UInt64] {
    guard maskedInputs.count == key.count, openedBits.count == key.count else {
      throw .countMismatch(expected: key.count, found: maskedInputs.count)
    }
    let n = key.inputBits
    let s = key.shift
    let inMask = ringMask(n)
    let outMask = ringMask(key.outputBits)
    let offset = offset(kind: key.kind, inputBits: n)
    var out = [UInt64](repeating: 0, count: key.count)
    for e in 0..<key.count {
      let shifted = (maskedInputs[e] &+ offset) & inMask
      var share = key.corrections[2 * e + Int(openedBits[e] & 1)]
      switch key.kind {
      case .reduce:
        if party == 0 { share = share &+ (shifted >> UInt64(s)) &- (1 << UInt64(n - 1 - s)) }
      case .slack:
        if party == 0 { share = share &+ (shifted >> UInt64(s)) &- (1 << UInt64(n - 2 - s)) }
        if (shifted >> UInt64(n - 1)) & 1 == 0 { share = share &+ key.wrapShares[e] }
      case .signExtend:
        if party == 0 { share = share &+ shifted &- (1 << UInt64(n - 1)) }
      }
      out[e] = share & outMask
    }
    return out
  }
}

// Additive sharing in Z_2^n and XOR sharing of bits: how the dealer hands out correlated
// values, and how tests reconstruct them.

/// XOR shares of bits (0/1 values).
func shareBits(_ bits: [UInt8], random: inout SecureRandom) -> ([UInt8], [UInt8]) {
  let first = random.bits(bits.count)
  return (first, zip(bits, first).map { $0 ^ $1 })
}

/// 2^bits − 1.
@inline(__always) func ringMask(_ bits: Int) -> UInt64 {
  bits >= 64 ? .max : (1 << UInt64(bits)) - 1
}

/// Reconstructs additive shares mod 2^bits.
public func reconstruct(_ a: [UInt64], _ b: [UInt64], bits: Int) -> [UInt64] {
  let mask = ringMask(bits)
  return zip(a, b).map { ($0 &+ $1) & mask }
}

/// Reconstructs XOR-shared bits.
public func reconstructBits(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] { zip(a, b).map { $0 ^ $1 } }

/// The comparison at the heart of sign tests and truncations: XOR shares of [x < alpha] for a
/// public w-bit x and the dealer's w-bit alpha, from one DPF keyed at alpha − 1 evaluated as
/// [alpha − 1 < x] = ¬[x < alpha] — except for alpha = 0, where [x < 0] = 0; the dealer folds
/// that case into a correction bit it knows (`wrapCorrection`).
struct MaskCompare {
  /// Dealer: keys for alphas (w-bit) and, per key, the bit [alpha = 0].
  static func gen(
    bits: Int, alphas: [UInt64], prg: TreePRG, random: inout SecureRandom
  ) throws(FSSError) -> (DPFKeys, DPFKeys, wrapCorrection: [UInt8]) {
    let mask = ringMask(bits)
    let (k0, k1, _) = try DPF.gen(
      bits: bits, alphas: alphas.map { ($0 &- 1) & mask }, prg: prg, random: &random)
    return (k0, k1, alphas.map { $0 & mask == 0 ? 1 : 0 })
  }

  /// Party: its share of [x < alpha] ⊕ wrapCorrection (the dealer's bit completes it), at
  /// `pointsPerKey` points per key (key-major).
  static func eval(
    party: Int, keys: DPFKeys, points: [UInt64], pointsPerKey: Int = 1, prg: TreePRG,
    threads: Int = 1
  ) throws(FSSError)
    -> [UInt8]
  {
    let above = try DPF.evalPoints(
      party: party, keys: keys, points: points, pointsPerKey: pointsPerKey, lessThan: true,
      prg: prg,
      threads: threads)
    return party == 0 ? above.map { $0 ^ 1 } : above
  }
}

/// The shares of one key batch where one party's halves expand from a seed: that party's
/// record carries 16 bytes (`shareSeed`) instead of its shares, the other's carries the
/// differences. The dealer alternates the seeded party from batch to batch, so each party
/// saves about half of its share bytes over a run. A seed is drawn fresh from the dealer's
/// generator and goes to its party only; the expansion is the AES-CTR generator the dealer
/// draws everything else from, so the seeded party's shares are as uniform as before and the
/// other party's view is unchanged.
struct SeededSharing {
  let seededParty: Int
  private let seed: [UInt8]
  private var expansion: SecureRandom

  init(seededParty: Int, random: inout SecureRandom) throws(FSSError) {
    self.seededParty = seededParty & 1
    seed = random.bytes(16)
    expansion = try SecureRandom(seed: seed)
  }

  /// The seed party `party`'s key holds (nil for the party that receives its shares).
  func seed(for party: Int) -> [UInt8]? { party == seededParty ? seed : nil }

  /// Additive shares of `values` in Z_2^bits, the seeded party's half from the seed.
  mutating func arithmetic(_ values: [UInt64], bits: Int) -> ([UInt64], [UInt64]) {
    let mask = ringMask(bits)
    let seeded = expansion.elements(values.count, bits: bits)
    let rest = zip(values, seeded).map { ($0 &- $1) & mask }
    return seededParty == 0 ? (seeded, rest) : (rest, seeded)
  }

  /// XOR shares of bits, the seeded party's half from the seed.
  mutating func xor(_ bits: [UInt8]) -> ([UInt8], [UInt8]) {
    let seeded = expansion.bits(bits.count)
    let rest = zip(bits, seeded).map { $0 ^ $1 }
    return seededParty == 0 ? (seeded, rest) : (rest, seeded)
  }
}

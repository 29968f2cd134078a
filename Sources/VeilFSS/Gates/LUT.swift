// Lookup tables on masked wires (Pika-style): y = T[x] for a public table T of 2^m entries
// in Z_2^n and a masked m-bit input x̂ = x + r. The dealer gives a DPF for the point r; each
// party evaluates it on the whole domain and takes the dot product of its bits with the table
// rotated by x̂. The XOR-shared one-hot vector turns into a signed sum: party b's
// (−1)^b Σ_y t_b(y)·T[x̂ − y] adds up to σ·T[x] with σ = ±1 (which party holds the 1 at r),
// and (−1)^b Σ_y t_b(y) adds up to σ itself. Round 1 opens σ·T[x] + c and the bit
// τ ⊕ ρ (σ = 1 − 2τ; τ is the XOR of the parties' second-lowest bits of those counts mod 4);
// round 2 opens T[x] + r_out = (1 − 2(τ ⊕ ρ))·(1 − 2ρ)·(σT + c − c) + r_out, computed from
// dealer shares of 1 − 2ρ, (1 − 2ρ)·c and r_out.
import VeilRing

/// Keys of a batch of lookups into one public table.
public struct LUTKey: Sendable, Equatable {
  public let inputBits: Int
  public let outputRing: Ring
  let point: DPFKeys
  /// XOR shares of ρ.
  let signMaskShares: [UInt8]
  /// Shares in Z_2^n of c, 1 − 2ρ, (1 − 2ρ)·c and r_out.
  let valueMask: [UInt64]
  let signFactor: [UInt64]
  let signedValueMask: [UInt64]
  let outputMask: [UInt64]
  /// The seed this party's shares expand from, if it is the batch's seeded party
  /// (`SeededSharing`).
  let shareSeed: [UInt8]?
  public var count: Int { point.count }
}

/// What a party opens after round 1 of a lookup: a masked sign bit and a masked signed value.
public struct LUTRound1: Sendable, Equatable {
  public var signBits: [UInt8]
  public var values: [UInt64]

  public init(signBits: [UInt8], values: [UInt64]) {
    self.signBits = signBits
    self.values = values
  }
}

public enum LUTGate {
  public static func gen(
    inputBits m: Int, outputRing: Ring, inputMasks: [UInt64], outputMasks: [UInt64], prg: TreePRG,
    random: inout SecureRandom, seededParty: Int = 0
  ) throws(FSSError) -> (LUTKey, LUTKey) {
    guard (1...24).contains(m) else {
      throw .invalidWidth("lookup tables of 1…24 input bits, not \(m)")
    }
    guard outputMasks.count == inputMasks.count else {
      throw .countMismatch(expected: inputMasks.count, found: outputMasks.count)
    }
    let n = outputRing.bits
    let count = inputMasks.count
    let (k0, k1, _) = try DPF.gen(bits: m, alphas: inputMasks, prg: prg, random: &random)
    let rho = random.bits(count)
    let c = random.elements(count, bits: n)
    // The parties compute shares of τ themselves; ρ masks it when opened. In this order the
    // seeded party's decoder expands the shares (KeyFormat).
    var shares = try SeededSharing(seededParty: seededParty, random: &random)
    let (z0, z1) = shares.xor(rho)
    let factor = rho.map { $0 == 0 ? UInt64(1) : UInt64.max }  // 1 − 2ρ
    let (v0, v1) = shares.arithmetic(c, bits: n)
    let (f0, f1) = shares.arithmetic(factor, bits: n)
    let (g0, g1) = shares.arithmetic(zip(factor, c).map { $0 &* $1 }, bits: n)
    let (o0, o1) = shares.arithmetic(outputMasks, bits: n)
    return (
      LUTKey(
        inputBits: m, outputRing: outputRing, point: k0, signMaskShares: z0, valueMask: v0,
        signFactor: f0,
        signedValueMask: g0, outputMask: o0, shareSeed: shares.seed(for: 0)),
      LUTKey(
        inputBits: m, outputRing: outputRing, point: k1, signMaskShares: z1, valueMask: v1,
        signFactor: f1,
        signedValueMask: g1, outputMask: o1, shareSeed: shares.seed(for: 1))
    )
  }

  /// Party, round 1: shares of the masked sign bit (XOR) and the masked signed value (additive).
  public static func evalRound1(
    party: Int, key: LUTKey, maskedInputs: [UInt64], table: [UInt64], prg: TreePRG, threads: Int = 1
  ) throws(FSSError) -> LUTRound1 {
    let (ones, dot) = try DPF.lookup(
      party: party, keys: key.point, maskedInputs: maskedInputs, table: table, prg: prg,
      threads: threads)
    let mask = key.outputRing.mask
    var round = LUTRound1(
      signBits: [UInt8](repeating: 0, count: key.count),
      values: [UInt64](repeating: 0, count: key.count))
    for e in 0..<key.count {
      let signedCount = party == 0 ? ones[e] : 0 &- ones[e]
      round.signBits[e] = UInt8((signedCount >> 1) & 1) ^ key.signMaskShares[e]
      let signedDot = party == 0 ? dot[e] : 0 &- dot[e]
      round.values[e] = (signedDot &+ key.valueMask[e]) & mask
    }
    return round
  }

  /// Party, round 2: its share of T[x] + r_out from the opened round-1 values.
  public static func evalRound2(party: Int, key: LUTKey, opened: LUTRound1) throws(FSSError)
    -> [UInt64]
  {
    guard opened.signBits.count == key.count, opened.values.count == key.count else {
      throw .countMismatch(expected: key.count, found: opened.values.count)
    }
    let mask = key.outputRing.mask
    return (0..<key.count).map { e in
      let s: UInt64 = opened.signBits[e] & 1 == 0 ? 1 : .max
      let unsigned = opened.values[e] &* key.signFactor[e] &- key.signedValueMask[e]
      return (s &* unsigned &+ key.outputMask[e]) & mask
    }
  }
}

// DReLU (the sign test) on masked wires, for several public offsets with one shared DPF key:
// d_i = [x − c_i ≥ 0] for a signed n-bit x. GeLU's interval tests are such constant shifts of
// the same input, so they cost one DPF key and one evaluation path each.
//
// With y = x − c and ŷ = x̂ − c = y + r, write low = the n − 1 low bits:
// msb(y) = msb(ŷ) ⊕ msb(r) ⊕ [ŷ_low < r_low] (the borrow of the low subtraction), so
// d ⊕ ρ = msb(ŷ) ⊕ [ŷ_low < r_low] ⊕ 1 ⊕ msb(r) ⊕ ρ: one (n − 1)-bit comparison against
// the mask, the rest public or dealer-known.
import VeilRing

/// Keys of a batch of DReLU gates.
public struct DReLUKey: Sendable, Equatable {
  public let ring: Ring
  public let offsets: [UInt64]
  let compare: DPFKeys
  /// XOR shares of msb(r) ⊕ ρ_i ⊕ (the comparison's corrections), element-major.
  let maskShares: [UInt8]
  public var count: Int { compare.count }
}

public enum DReLUGate {
  /// Dealer: keys for masked inputs with masks `inputMasks` (in Z_2^n); the output bit of
  /// offset i of element e is masked with outputMasks[e · offsets.count + i].
  public static func gen(
    ring: Ring, offsets: [UInt64], inputMasks: [UInt64], outputMasks: [UInt8], prg: TreePRG,
    random: inout SecureRandom
  ) throws(FSSError) -> (DReLUKey, DReLUKey) {
    guard ring.bits >= 2 else { throw .invalidWidth("DReLU needs a ring of at least 2 bits") }
    guard outputMasks.count == inputMasks.count * offsets.count else {
      throw .countMismatch(expected: inputMasks.count * offsets.count, found: outputMasks.count)
    }
    let w = ring.bits - 1
    let (k0, k1, wrap) = try MaskCompare.gen(bits: w, alphas: inputMasks, prg: prg, random: &random)
    var constants = [UInt8](repeating: 0, count: outputMasks.count)
    for (e, r) in inputMasks.enumerated() {
      let base = UInt8(ring.msb(r)) ^ wrap[e] ^ 1
      for i in offsets.indices {
        constants[e * offsets.count + i] = base ^ outputMasks[e * offsets.count + i]
      }
    }
    let (s0, s1) = shareBits(constants, random: &random)
    let offsets = offsets.map { $0 & ring.mask }
    return (
      DReLUKey(ring: ring, offsets: offsets, compare: k0, maskShares: s0),
      DReLUKey(ring: ring, offsets: offsets, compare: k1, maskShares: s1)
    )
  }

  /// Party: XOR shares of the masked output bits, element-major (e · offsets + i).
  public static func eval(
    party: Int, key: DReLUKey, maskedInputs: [UInt64], prg: TreePRG, threads: Int = 1
  ) throws(FSSError) -> [UInt8] {
    guard maskedInputs.count == key.count else {
      throw .countMismatch(expected: key.count, found: maskedInputs.count)
    }
    let ring = key.ring
    let lowMask = ringMask(ring.bits - 1)
    let k = key.offsets.count
    // Every offset's point, element-major: one walk of each DPF key serves all of them.
    var shifted = [UInt64](repeating: 0, count: key.count * k)
    for (e, x) in maskedInputs.enumerated() {
      for (i, c) in key.offsets.enumerated() { shifted[e * k + i] = ring.sub(x, c) }
    }
    let below = try MaskCompare.eval(
      party: party, keys: key.compare, points: shifted.map { $0 & lowMask }, pointsPerKey: k,
      prg: prg,
      threads: threads)
    var out = [UInt8](repeating: 0, count: key.count * k)
    for j in out.indices {
      let publicPart: UInt8 = party == 0 ? UInt8(ring.msb(shifted[j])) : 0
      out[j] = publicPart ^ below[j] ^ key.maskShares[j]
    }
    return out
  }
}

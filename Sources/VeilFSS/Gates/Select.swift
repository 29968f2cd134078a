// Select on masked wires: z = d · x for a masked bit d̂ = d ⊕ ρ and a masked value
// x̂ = x + r_x, output masked as z + r_out. With s = 1 − 2d̂, d = d̂ + s·ρ, so
// d·x = d̂·x̂ − d̂·r_x + s·x̂·ρ − s·ρ·r_x: public terms times dealer shares of r_x, ρ, ρ·r_x.
// A mux (d ? a : b) is b + select(d, a − b), local around this gate.
import VeilRing

/// Keys of a batch of select gates: per element, shares of r_x, ρ, ρ·r_x and r_out in Z_2^n.
public struct SelectKey: Sendable, Equatable {
  public let ring: Ring
  let valueMask: [UInt64]
  let bitMask: [UInt64]
  let product: [UInt64]
  let outputMask: [UInt64]
  /// The seed this party's shares expand from, if it is the batch's seeded party
  /// (`SeededSharing`).
  let shareSeed: [UInt8]?
  public var count: Int { valueMask.count }
}

public enum SelectGate {
  public static func gen(
    ring: Ring, bitMasks: [UInt8], valueMasks: [UInt64], outputMasks: [UInt64],
    random: inout SecureRandom, seededParty: Int = 0
  ) throws(FSSError) -> (SelectKey, SelectKey) {
    let n = valueMasks.count
    guard bitMasks.count == n, outputMasks.count == n else {
      throw .countMismatch(
        expected: n, found: bitMasks.count == n ? outputMasks.count : bitMasks.count)
    }
    let bits = ring.bits
    // In this order the seeded party's decoder expands them (KeyFormat).
    var shares = try SeededSharing(seededParty: seededParty, random: &random)
    let (r0, r1) = shares.arithmetic(valueMasks, bits: bits)
    let (b0, b1) = shares.arithmetic(bitMasks.map { UInt64($0) }, bits: bits)
    let (p0, p1) = shares.arithmetic(zip(bitMasks, valueMasks).map { UInt64($0) &* $1 }, bits: bits)
    let (o0, o1) = shares.arithmetic(outputMasks, bits: bits)
    return (
      SelectKey(
        ring: ring, valueMask: r0, bitMask: b0, product: p0, outputMask: o0,
        shareSeed: shares.seed(for: 0)),
      SelectKey(
        ring: ring, valueMask: r1, bitMask: b1, product: p1, outputMask: o1,
        shareSeed: shares.seed(for: 1))
    )
  }

  /// Party: its additive share of d·x + r_out.
  public static func eval(party: Int, key: SelectKey, maskedBits: [UInt8], maskedValues: [UInt64])
    throws(FSSError)
    -> [UInt64]
  {
    guard maskedBits.count == key.count, maskedValues.count == key.count else {
      throw .countMismatch(expected: key.count, found: maskedValues.count)
    }
    let mask = key.ring.mask
    var out = [UInt64](repeating: 0, count: key.count)
    for i in 0..<key.count {
      let d = UInt64(maskedBits[i] & 1)
      let x = maskedValues[i]
      let s: UInt64 = d == 0 ? 1 : .max  // 1 − 2d̂ as a ring element
      var z =
        key.outputMask[i] &- d &* key.valueMask[i] &+ s &* (x &* key.bitMask[i] &- key.product[i])
      if party == 0 { z = z &+ d &* x }
      out[i] = z & mask
    }
    return out
  }
}

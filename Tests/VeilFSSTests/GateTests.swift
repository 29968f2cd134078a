import Testing
import VeilRing

@testable import VeilFSS

/// Runs both parties of each gate and checks the reconstruction against the plaintext function,
/// and that what a party sees (masked values, its shares) is not the secret.
@Suite(.serialized) struct GateTests {
  let prg = try! TreePRG(runKey: Array("gate tests".utf8))

  /// Every x of small rings, random x of large ones.
  func inputs(bits: Int, random: inout SecureRandom) -> [UInt64] {
    bits <= 12 ? (0..<(UInt64(1) << UInt64(bits))).map { $0 } : random.elements(20_000, bits: bits)
  }

  @Test(arguments: [2, 3, 8, 12, 13, 37, 50, 64])
  func dreluWithSeveralOffsets(bits: Int) throws {
    let ring = try Ring(bits: bits)
    var random = try SecureRandom()
    let xs = inputs(bits: bits, random: &random)
    let offsets: [UInt64] = [0, 1, ring.element(-3), 5 & ring.mask]
    let r = random.elements(xs.count, bits: bits)
    let rho = random.bits(xs.count * offsets.count)
    let (k0, k1) = try DReLUGate.gen(
      ring: ring, offsets: offsets, inputMasks: r, outputMasks: rho, prg: prg, random: &random)
    let masked = zip(xs, r).map { ring.add($0, $1) }
    let s0 = try DReLUGate.eval(party: 0, key: k0, maskedInputs: masked, prg: prg)
    let s1 = try DReLUGate.eval(party: 1, key: k1, maskedInputs: masked, prg: prg)
    let opened = reconstructBits(s0, s1)
    for (e, x) in xs.enumerated() {
      for (i, c) in offsets.enumerated() {
        let expected: UInt8 = ring.signed(ring.sub(x, c)) >= 0 ? 1 : 0
        let got = opened[e * offsets.count + i] ^ rho[e * offsets.count + i]
        if got != expected { Issue.record("n=\(bits) x=\(ring.signed(x)) c=\(ring.signed(c)): \(got)"); return }
      }
    }
  }

  /// The opened bits are masked by ρ: balanced even when every input has the same sign for every
  /// offset, where an unmasked opening (the DReLU bits themselves) would be all ones or all zeros.
  @Test(arguments: [8, 13, 37, 50, 64])
  func dreluOpenedBitsAreBalancedForOneSignedInputs(bits: Int) throws {
    let ring = try Ring(bits: bits)
    var random = try SecureRandom()
    let n = 20_000
    let offsets: [UInt64] = [0, 1]
    let half = UInt64(1) << UInt64(bits - 1)
    // x − c ≥ 0 for every x in [1, 2^(n−1)) and c ∈ {0, 1}; x − c < 0 for x in (−2^(n−1), 0).
    for positive in [true, false] {
      let xs = (0..<n).map { _ in
        let x = UInt64.random(in: 1..<half, using: &random)
        return positive ? x : ring.neg(x)
      }
      let r = random.elements(n, bits: bits)
      let rho = random.bits(n * offsets.count)
      let (k0, k1) = try DReLUGate.gen(
        ring: ring, offsets: offsets, inputMasks: r, outputMasks: rho, prg: prg, random: &random)
      let masked = zip(xs, r).map { ring.add($0, $1) }
      let opened = reconstructBits(
        try DReLUGate.eval(party: 0, key: k0, maskedInputs: masked, prg: prg),
        try DReLUGate.eval(party: 1, key: k1, maskedInputs: masked, prg: prg))
      #expect(zip(opened, rho).allSatisfy { $0 ^ $1 == (positive ? 1 : 0) }, "n=\(bits) positive=\(positive)")
      // Within 6σ of a fair coin (σ = √count / 2).
      let ones = opened.reduce(0) { $0 + Int($1) }
      #expect(
        abs(Double(ones) - Double(opened.count) / 2) <= 6 * Double(opened.count).squareRoot() / 2,
        "n=\(bits) positive=\(positive): \(ones) ones of \(opened.count)")
    }
  }

  @Test(arguments: [8, 37, 50, 64])
  func selectMultipliesByTheBit(bits: Int) throws {
    let ring = try Ring(bits: bits)
    var random = try SecureRandom()
    let n = 5000
    let xs = random.elements(n, bits: bits)
    let ds = random.bits(n)
    let (rx, rho, rout) = (random.elements(n, bits: bits), random.bits(n), random.elements(n, bits: bits))
    let (k0, k1) = try SelectGate.gen(ring: ring, bitMasks: rho, valueMasks: rx, outputMasks: rout, random: &random)
    let xh = zip(xs, rx).map { ring.add($0, $1) }
    let dh = zip(ds, rho).map { $0 ^ $1 }
    let z0 = try SelectGate.eval(party: 0, key: k0, maskedBits: dh, maskedValues: xh)
    let z1 = try SelectGate.eval(party: 1, key: k1, maskedBits: dh, maskedValues: xh)
    let opened = reconstruct(z0, z1, bits: bits)
    for i in 0..<n {
      #expect(ring.sub(opened[i], rout[i]) == (ds[i] == 1 ? xs[i] : 0))
    }
  }

  /// Neither party 0's output share nor the opening before r_out is removed shows the selected
  /// value: for one fixed input and bit (the worst case for a leak), over many fresh keys, both
  /// are spread out and equal the secret no more often than chance. This fails if P0's share
  /// carried d·x (P1's holding only masks) or if the gate left r_out out of the shares.
  @Test(arguments: [8, 37, 50, 64])
  func selectSharesDoNotShowTheSelectedValue(bits: Int) throws {
    let ring = try Ring(bits: bits)
    var random = try SecureRandom()
    let n = 5000
    // A value appears about n / min(2^bits, n) times by chance; 6σ above that plus slack.
    let chance = Double(n) / min(Double(sign: .plus, exponent: bits, significand: 1), Double(n))
    let bound = Int(chance + 6 * chance.squareRoot()) + 5
    for d: UInt8 in [1, 0] {
      let x = ring.element(-123_457)
      let secret = d == 1 ? x : 0
      let (rx, rho, rout) = (random.elements(n, bits: bits), random.bits(n), random.elements(n, bits: bits))
      let (k0, k1) = try SelectGate.gen(ring: ring, bitMasks: rho, valueMasks: rx, outputMasks: rout, random: &random)
      let xh = rx.map { ring.add(x, $0) }
      let dh = rho.map { d ^ $0 }
      let z0 = try SelectGate.eval(party: 0, key: k0, maskedBits: dh, maskedValues: xh)
      let z1 = try SelectGate.eval(party: 1, key: k1, maskedBits: dh, maskedValues: xh)
      let opened = reconstruct(z0, z1, bits: bits)
      #expect(zip(opened, rout).allSatisfy { ring.sub($0, $1) == secret }, "n=\(bits) d=\(d)")
      for (name, values) in [("party 0's share", z0), ("party 1's share", z1), ("opened value", opened)] {
        let most = Dictionary(values.map { ($0, 1) }, uniquingKeysWith: +).values.max() ?? 0
        #expect(most <= bound, "n=\(bits) d=\(d): \(name) repeats a value \(most) times")
        let hits = values.filter { $0 == secret }.count
        #expect(hits <= bound, "n=\(bits) d=\(d): \(name) equals d·x \(hits) times")
      }
    }
  }

  @Test(arguments: [(12, 5), (16, 12), (37, 12), (50, 12), (50, 24), (64, 16), (13, 1)])
  func truncateReduceIsExactFloor(bits: Int, shift: Int) throws {
    let ring = try Ring(bits: bits)
    let out = try Ring(bits: bits - shift)
    var random = try SecureRandom()
    let xs = inputs(bits: bits, random: &random)
    let r = random.elements(xs.count, bits: bits)
    let rout = random.elements(xs.count, bits: bits - shift)
    let (k0, k1) = try TruncationGate.gen(
      kind: .reduce, inputBits: bits, shift: shift, outputBits: bits - shift, inputMasks: r, outputMasks: rout,
      prg: prg, random: &random)
    let masked = zip(xs, r).map { ring.add($0, $1) }
    let opened = try runTruncation(k0, k1, masked: masked, bits: bits - shift)
    for (e, x) in xs.enumerated() {
      let expected = out.element(ring.signed(x) >> Int64(shift))
      if out.sub(opened[e], rout[e]) != expected {
        Issue.record("reduce n=\(bits) s=\(shift) x=\(ring.signed(x))")
        return
      }
    }
  }

  @Test(arguments: [(14, 6, 14), (16, 12, 16), (37, 12, 37), (50, 12, 50), (50, 12, 30), (64, 16, 64)])
  func truncateWithSlackIsExactWithinHeadroom(bits: Int, shift: Int, outBits: Int) throws {
    let ring = try Ring(bits: bits)
    let out = try Ring(bits: outBits)
    var random = try SecureRandom()
    // |x| < 2^(n−2): every such x for small rings, random ones (and the extremes) otherwise.
    let bound = Int64(1) << Int64(bits - 2)
    var xs: [UInt64] =
      bits <= 16
      ? (-bound..<bound).map { ring.element($0) }
      : (0..<20_000).map { _ in ring.element(Int64.random(in: -bound..<bound, using: &random)) }
    xs += [ring.element(-bound), ring.element(bound - 1), 0, ring.element(-1)]
    let r = random.elements(xs.count, bits: bits)
    let rout = random.elements(xs.count, bits: outBits)
    let (k0, k1) = try TruncationGate.gen(
      kind: .slack, inputBits: bits, shift: shift, outputBits: outBits, inputMasks: r, outputMasks: rout, prg: prg,
      random: &random)
    let opened = try runTruncation(k0, k1, masked: zip(xs, r).map { ring.add($0, $1) }, bits: outBits)
    for (e, x) in xs.enumerated() {
      if out.sub(opened[e], rout[e]) != out.element(ring.signed(x) >> Int64(shift)) {
        Issue.record("slack n=\(bits) s=\(shift) x=\(ring.signed(x))")
        return
      }
    }
  }

  @Test(arguments: [(5, 12), (12, 20), (38, 50), (50, 64), (1, 8)])
  func signExtensionPreservesTheSignedValue(bits: Int, outBits: Int) throws {
    let ring = try Ring(bits: bits)
    let out = try Ring(bits: outBits)
    var random = try SecureRandom()
    let xs = inputs(bits: bits, random: &random)
    let r = random.elements(xs.count, bits: bits)
    let rout = random.elements(xs.count, bits: outBits)
    let (k0, k1) = try TruncationGate.gen(
      kind: .signExtend, inputBits: bits, shift: 0, outputBits: outBits, inputMasks: r, outputMasks: rout, prg: prg,
      random: &random)
    let opened = try runTruncation(k0, k1, masked: zip(xs, r).map { ring.add($0, $1) }, bits: outBits)
    for (e, x) in xs.enumerated() {
      #expect(out.sub(opened[e], rout[e]) == out.element(ring.signed(x)), "sign extend \(bits)→\(outBits)")
    }
  }

  @Test func truncationRefusesImpossibleWidths() throws {
    var random = try SecureRandom()
    #expect(throws: FSSError.self) {
      try TruncationGate.gen(
        kind: .reduce, inputBits: 12, shift: 12, outputBits: 0, inputMasks: [1], outputMasks: [1], prg: prg,
        random: &random)
    }
    #expect(throws: FSSError.self) {
      try TruncationGate.gen(
        kind: .slack, inputBits: 12, shift: 11, outputBits: 12, inputMasks: [1], outputMasks: [1], prg: prg,
        random: &random)
    }
  }

  /// Both rounds of a truncation with the opened bits passed between them.
  func runTruncation(_ k0: TruncationKey, _ k1: TruncationKey, masked: [UInt64], bits: Int) throws -> [UInt64] {
    let bits0 = try TruncationGate.evalBits(party: 0, key: k0, maskedInputs: masked, prg: prg)
    let bits1 = try TruncationGate.evalBits(party: 1, key: k1, maskedInputs: masked, prg: prg)
    let c = reconstructBits(bits0, bits1)
    let y0 = try TruncationGate.evalOutput(party: 0, key: k0, maskedInputs: masked, openedBits: c)
    let y1 = try TruncationGate.evalOutput(party: 1, key: k1, maskedInputs: masked, openedBits: c)
    return reconstruct(y0, y1, bits: bits)
  }

  @Test(arguments: [(3, 16), (7, 50), (8, 50), (10, 37), (13, 64)])
  func lookupTableReturnsTheEntry(inputBits: Int, outBits: Int) throws {
    let out = try Ring(bits: outBits)
    var random = try SecureRandom()
    let table = random.elements(1 << inputBits, bits: outBits)
    let xs = inputs(bits: inputBits, random: &random) + random.elements(500, bits: inputBits)
    let r = random.elements(xs.count, bits: inputBits)
    let rout = random.elements(xs.count, bits: outBits)
    let (k0, k1) = try LUTGate.gen(
      inputBits: inputBits, outputRing: out, inputMasks: r, outputMasks: rout, prg: prg, random: &random)
    let domain = ringMask(inputBits)
    let masked = zip(xs, r).map { ($0 &+ $1) & domain }
    let a0 = try LUTGate.evalRound1(party: 0, key: k0, maskedInputs: masked, table: table, prg: prg)
    let a1 = try LUTGate.evalRound1(party: 1, key: k1, maskedInputs: masked, table: table, prg: prg)
    let opened = LUTRound1(signBits: reconstructBits(a0.signBits, a1.signBits), values: reconstruct(a0.values, a1.values, bits: outBits))
    let y = reconstruct(
      try LUTGate.evalRound2(party: 0, key: k0, opened: opened),
      try LUTGate.evalRound2(party: 1, key: k1, opened: opened), bits: outBits)
    for (e, x) in xs.enumerated() {
      if out.sub(y[e], rout[e]) != table[Int(x)] { Issue.record("LUT m=\(inputBits) x=\(x)"); return }
    }
    // The opened round-1 values are masked: they do not equal ±T[x].
    let exposed = (0..<xs.count).filter { opened.values[$0] == table[Int(xs[$0])] || opened.values[$0] == out.neg(table[Int(xs[$0])]) }
    #expect(exposed.count <= 1)
  }

  /// What a party receives in round 1 of a truncation or lookup — the opened masked bits and
  /// values — does not depend on the secret: for one fixed input (the worst case for a leak),
  /// over many fresh keys, the opened bits are balanced and the opened values are spread out.
  @Test func openedRoundOneMessagesDoNotDependOnTheSecret() throws {
    var random = try SecureRandom()
    let ring = try Ring(bits: 50)
    let n = 20_000
    for secret in [ring.element(0), ring.element(-1), ring.element(123_456)] {
      let xs = [UInt64](repeating: secret, count: n)
      let r = random.elements(n, bits: 50)
      let (k0, k1) = try TruncationGate.gen(
        kind: .reduce, inputBits: 50, shift: 12, outputBits: 38, inputMasks: r,
        outputMasks: random.elements(n, bits: 38), prg: prg, random: &random)
      let masked = zip(xs, r).map { ring.add($0, $1) }
      let opened = reconstructBits(
        try TruncationGate.evalBits(party: 0, key: k0, maskedInputs: masked, prg: prg),
        try TruncationGate.evalBits(party: 1, key: k1, maskedInputs: masked, prg: prg))
      let ones = opened.reduce(0) { $0 + Int($1) }
      #expect(abs(ones - n / 2) < 6 * 71, "carry bits for x = \(ring.signed(secret))")  // 6σ, σ = √n / 2
    }
    let table = random.elements(256, bits: 50)
    let xs = [UInt64](repeating: 200, count: n)
    let r = random.elements(n, bits: 8)
    let (l0, l1) = try LUTGate.gen(
      inputBits: 8, outputRing: ring, inputMasks: r, outputMasks: random.elements(n, bits: 50), prg: prg,
      random: &random)
    let masked = zip(xs, r).map { ($0 &+ $1) & 255 }
    let a0 = try LUTGate.evalRound1(party: 0, key: l0, maskedInputs: masked, table: table, prg: prg)
    let a1 = try LUTGate.evalRound1(party: 1, key: l1, maskedInputs: masked, table: table, prg: prg)
    let signs = reconstructBits(a0.signBits, a1.signBits).reduce(0) { $0 + Int($1) }
    #expect(abs(signs - n / 2) < 6 * 71)
    let values = reconstruct(a0.values, a1.values, bits: 50)
    // Uniform 50-bit values: their top bits are balanced and almost all distinct.
    #expect(Set(values).count > n - 5)
    #expect(abs(values.filter { $0 >> 49 == 1 }.count - n / 2) < 6 * 71)
  }
}

import Testing
import VeilTestSupport

@testable import VeilRing

@Suite struct RingArithmeticTests {
  @Test func widthsOutsideOneToSixtyFourAreRejected() {
    #expect(throws: RingError.invalidWidth(0)) { try Ring(bits: 0) }
    #expect(throws: RingError.invalidWidth(65)) { try Ring(bits: 65) }
  }

  @Test func oneBitRingIsXor() throws {
    let r = try Ring(bits: 1)
    #expect(r.add(1, 1) == 0)
    #expect(r.sub(0, 1) == 1)
    #expect(r.neg(1) == 1)
    #expect(r.signed(1) == -1)
    #expect(r.signed(0) == 0)
  }

  @Test func sixtyFourBitRingWrapsAround() throws {
    let r = try Ring(bits: 64)
    #expect(r.mask == .max)
    #expect(r.add(.max, 1) == 0)
    #expect(r.signed(.max) == -1)
    #expect(r.signed(1 << 63) == .min)
    #expect(r.element(.min) == 1 << 63)
    #expect(r.arithmeticShiftRight(1 << 63, by: 63) == .max)
  }

  @Test(arguments: [2, 13, 37, 50, 52, 63])
  func signedReadingAndShiftsAgreeWithIntegers(bits: Int) throws {
    let r = try Ring(bits: bits)
    var rng = SplitMix64(seed: UInt64(bits))
    let half = Int64(1) << Int64(bits - 1)
    for _ in 0..<2000 {
      let v = Int64.random(in: -half..<half, using: &rng)
      let x = r.element(v)
      #expect(x <= r.mask)
      #expect(r.signed(x) == v)
      let s = Int.random(in: 0..<bits, using: &rng)
      #expect(r.signed(r.arithmeticShiftRight(x, by: s)) == v >> Int64(s))
      #expect(r.logicalShiftRight(x, by: s) == x >> UInt64(s))
    }
    // Extremes: −2^(n−1) and 2^(n−1) − 1.
    #expect(r.signed(r.element(-half)) == -half)
    #expect(r.signed(r.element(half - 1)) == half - 1)
    #expect(r.signed(r.add(r.element(half - 1), 1)) == -half)
    #expect(r.msb(r.element(-1)) == 1)
    #expect(r.msb(r.element(half - 1)) == 0)
  }
}

@Suite struct FixedPointTests {
  @Test func roundsToNearestWithTiesAwayFromZero() throws {
    let fmt = try FixedPointFormat(bits: 50, fractionalBits: 12)
    let ulp = 1.0 / 4096
    #expect(fmt.ring.signed(try fmt.encode(0.5 * ulp)) == 1)
    #expect(fmt.ring.signed(try fmt.encode(-0.5 * ulp)) == -1)
    #expect(fmt.ring.signed(try fmt.encode(0.49 * ulp)) == 0)
    #expect(fmt.ring.signed(try fmt.encode(2.5 * ulp)) == 3)
    #expect(fmt.ring.signed(try fmt.encode(-1.25)) == -5120)
    #expect(fmt.decode(try fmt.encode(-1.25)) == -1.25)
  }

  @Test func outOfRangeAndNonFiniteValuesThrow() throws {
    let fmt = try FixedPointFormat(bits: 16, fractionalBits: 8)
    // Signed range is [−128, 128 − 2^−8].
    #expect(fmt.representableRange == -128.0...(128.0 - 1.0 / 256))
    #expect(fmt.decode(try fmt.encode(-128)) == -128)
    #expect(fmt.decode(try fmt.encode(128 - 1.0 / 256)) == 128 - 1.0 / 256)
    #expect(throws: RingError.self) { try fmt.encode(128) }
    #expect(throws: RingError.self) { try fmt.encode(-128.01) }
    #expect(throws: RingError.notFinite(.infinity)) { try fmt.encode(.infinity) }
    #expect(throws: RingError.self) { try fmt.encode(.nan) }
    #expect(throws: RingError.self) { try FixedPointFormat(bits: 8, fractionalBits: 8) }
  }

  @Test func sixtyFourBitFormatCoversItsWholeRange() throws {
    let fmt = try FixedPointFormat(bits: 64, fractionalBits: 16)
    #expect(fmt.decode(try fmt.encode(-140_737_488_355_328)) == -140_737_488_355_328)
    #expect(throws: RingError.self) { try fmt.encode(140_737_488_355_328) }
    #expect(fmt.decode(try fmt.encode(3.14159)) == (3.14159 * 65536).rounded() / 65536)
  }

  @Test func tensorRoundTripIsWithinHalfAnUlp() throws {
    let fmt = try FixedPointFormat(bits: 37, fractionalBits: 12)
    var rng = SplitMix64(seed: 7)
    let xs = (0..<500).map { _ in Double.random(in: -1000...1000, using: &rng) }
    let t = try Tensor(shape: [20, 25], scalars: xs)
    let back = fmt.decode(try fmt.encode(t))
    #expect(back.shape == [20, 25])
    for (a, b) in Swift.zip(xs, back.scalars) { #expect(abs(a - b) <= 0.5 / 4096) }
  }
}

extension Ring {
  // A literal width in 1…64 cannot throw.
  static let fifty = try! Ring(bits: 50)
}

@Suite struct RingTensorTests {
  let ring = Ring.fifty

  func random(_ shape: [Int], ring: Ring, rng: inout SplitMix64) -> RingTensor {
    let n = shape.reduce(1, *)
    return try! RingTensor(ring: ring, shape: shape, reducing: (0..<n).map { _ in rng.next() })
  }

  @Test func arithmeticIsElementwiseModTwoToTheN() throws {
    var rng = SplitMix64(seed: 1)
    let a = random([3, 4], ring: ring, rng: &rng)
    let b = random([3, 4], ring: ring, rng: &rng)
    let sum = try a + b
    let diff = try a - b
    let prod = try a.multiplied(elementwise: b)
    for i in 0..<12 {
      #expect(sum.scalars[i] == ring.add(a.scalars[i], b.scalars[i]))
      #expect(diff.scalars[i] == ring.sub(a.scalars[i], b.scalars[i]))
      #expect(prod.scalars[i] == ring.mul(a.scalars[i], b.scalars[i]))
      #expect((-a).scalars[i] == ring.neg(a.scalars[i]))
      #expect(a.scaled(by: -3).scalars[i] == ring.mul(a.scalars[i], ring.element(-3)))
    }
    #expect(try (sum - b) == a)
    #expect(throws: RingError.self) { try a + random([4, 3], ring: ring, rng: &rng) }
    #expect(throws: RingError.self) { try a + RingTensor.zeros(ring: try Ring(bits: 37), shape: [3, 4]) }
  }

  @Test func layoutOperationsMoveTheRightElements() throws {
    let t = try RingTensor(ring: ring, shape: [2, 3], signed: [1, 2, 3, 4, 5, 6])
    #expect(try t.transposed().signedScalars == [1, 4, 2, 5, 3, 6])
    #expect(try t.transposed().shape == [3, 2])
    #expect(try t.reshaped([3, 2]).shape == [3, 2])
    #expect(throws: RingError.self) { try t.reshaped([4, 2]) }
    #expect(try t.slice(axis: 1, 1..<3).signedScalars == [2, 3, 5, 6])
    #expect(try t.slice(axis: 0, 1..<2).signedScalars == [4, 5, 6])
    #expect(throws: RingError.self) { try t.slice(axis: 1, 2..<4) }
    #expect(try t.rows([1, 1, 0]).signedScalars == [4, 5, 6, 4, 5, 6, 1, 2, 3])
    let c = try RingTensor.concatenate([t, t.slice(axis: 1, 0..<1)], axis: 1)
    #expect(c.shape == [2, 4])
    #expect(c.signedScalars == [1, 2, 3, 1, 4, 5, 6, 4])
    let batched = try RingTensor(ring: ring, shape: [2, 1, 2], signed: [1, 2, 3, 4])
    #expect(try batched.transposed().shape == [2, 2, 1])
  }

  @Test func shiftsAndWidthChanges() throws {
    let t = try RingTensor(ring: ring, shape: [4], signed: [-8, -7, 7, 1 << 40])
    #expect(try t.arithmeticShiftRight(2).signedScalars == [-2, -2, 1, 1 << 38])
    #expect(try t.logicalShiftRight(2).scalars[2] == 1)
    #expect(try t.logicalShiftRight(2).scalars[0] == ring.element(-8) >> 2)
    // 2^40 · 2^10 = 2^50 ≡ 0 in Z_2^50.
    #expect(try t.shiftLeft(10).signedScalars == [-8 << 10, -7 << 10, 7 << 10, 0])
    let wide = try t.signExtended(to: try Ring(bits: 64))
    #expect(wide.signedScalars == [-8, -7, 7, 1 << 40])
    let narrow = try wide.reduced(to: try Ring(bits: 4))
    #expect(narrow.scalars == [8, 9, 7, 0])
    #expect(throws: RingError.self) { try t.reduced(to: try Ring(bits: 64)) }
    #expect(throws: RingError.self) { try t.arithmeticShiftRight(51) }
  }
}

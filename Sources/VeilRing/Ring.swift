// VeilRing owns Veil's numbers: the ring Z_2^n (n = 1…64) carried in UInt64, the fixed-point
// codec, dense tensors (a generic one for Float64 and ring values, and RingTensor, which keeps
// its ring), plaintext ring arithmetic and the dispatch to the C GEMM kernels.

/// Errors of ring and tensor arithmetic. Each case says what was wrong with which operand.
public enum RingError: Error, Equatable, CustomStringConvertible {
  case invalidWidth(Int)
  case invalidFractionalBits(fractionalBits: Int, ringBits: Int)
  case notFinite(Double)
  case outOfRange(value: Double, format: String)
  case shapeMismatch(operation: String, left: [Int], right: [Int])
  case invalidShape(operation: String, shape: [Int], reason: String)
  case ringMismatch(operation: String, left: Int, right: Int)
  case invalidShift(amount: Int, ringBits: Int)

  public var description: String {
    switch self {
    case .invalidWidth(let n): return "ring width \(n) is outside 1…64"
    case .invalidFractionalBits(let f, let n):
      return "\(f) fractional bits do not fit a \(n)-bit ring (need 0 ≤ f < n)"
    case .notFinite(let x): return "cannot encode \(x): not a finite number"
    case .outOfRange(let x, let format): return "\(x) is outside the range of \(format)"
    case .shapeMismatch(let op, let l, let r): return "\(op): shapes \(l) and \(r) do not match"
    case .invalidShape(let op, let s, let why): return "\(op): shape \(s): \(why)"
    case .ringMismatch(let op, let l, let r): return "\(op): ring widths \(l) and \(r) differ"
    case .invalidShift(let s, let n): return "shift by \(s) is outside 0…\(n) for a \(n)-bit ring"
    }
  }
}

/// The ring Z_2^n. Elements are `UInt64` values in 0..<2^n; every operation reduces mod 2^n.
public struct Ring: Sendable, Hashable, CustomStringConvertible {
  /// n, the number of bits.
  public let bits: Int
  /// 2^n − 1: AND with it reduces mod 2^n.
  public let mask: UInt64

  public init(bits: Int) throws(RingError) {
    guard (1...64).contains(bits) else { throw .invalidWidth(bits) }
    self.bits = bits
    self.mask = bits == 64 ? .max : (1 << UInt64(bits)) - 1
  }

  public var description: String { "Z_2^\(bits)" }

  @inlinable public func reduce(_ x: UInt64) -> UInt64 { x & mask }
  @inlinable public func add(_ a: UInt64, _ b: UInt64) -> UInt64 { (a &+ b) & mask }
  @inlinable public func sub(_ a: UInt64, _ b: UInt64) -> UInt64 { (a &- b) & mask }
  @inlinable public func mul(_ a: UInt64, _ b: UInt64) -> UInt64 { (a &* b) & mask }
  @inlinable public func neg(_ a: UInt64) -> UInt64 { (0 &- a) & mask }

  /// The two's-complement value of `x` read as a signed n-bit number.
  @inlinable public func signed(_ x: UInt64) -> Int64 {
    let shift = UInt64(64 - bits)
    return Int64(bitPattern: x << shift) >> Int64(shift)
  }

  /// `x` mod 2^n for any signed integer.
  @inlinable public func element(_ x: Int64) -> UInt64 { UInt64(bitPattern: x) & mask }

  /// Most significant bit (the sign of the signed reading).
  @inlinable public func msb(_ x: UInt64) -> UInt64 { (x >> UInt64(bits - 1)) & 1 }

  /// Signed (arithmetic) shift right by `s` bits within n bits: ⌊signed(x) / 2^s⌋ mod 2^n.
  @inlinable public func arithmeticShiftRight(_ x: UInt64, by s: Int) -> UInt64 {
    element(signed(x) >> Int64(s))
  }

  /// Logical shift right by `s`: ⌊x / 2^s⌋ for x read as unsigned n-bit.
  @inlinable public func logicalShiftRight(_ x: UInt64, by s: Int) -> UInt64 {
    s >= 64 ? 0 : x >> UInt64(s)
  }

  /// Shift left by `s`, reduced mod 2^n.
  @inlinable public func shiftLeft(_ x: UInt64, by s: Int) -> UInt64 {
    s >= 64 ? 0 : (x << UInt64(s)) & mask
  }
}

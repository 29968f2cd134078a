// The fixed-point codec: a real x is the ring element round(x · 2^f) mod 2^n.

/// A fixed-point format: ring Z_2^n with f fractional bits, two's complement.
///
/// Encoding rounds to nearest with ties away from zero, and **throws** when the rounded value
/// does not fit the signed range [−2^(n−1), 2^(n−1) − 1]: a silently saturated activation would
/// corrupt a secure inference without a trace, so callers decide (the engines clamp inputs they
/// know to be bounded, and count violations).
public struct FixedPointFormat: Sendable, Hashable, CustomStringConvertible {
  public let ring: Ring
  /// f, the number of fractional bits.
  public let fractionalBits: Int

  public init(ring: Ring, fractionalBits: Int) throws(RingError) {
    guard fractionalBits >= 0, fractionalBits < ring.bits else {
      throw .invalidFractionalBits(fractionalBits: fractionalBits, ringBits: ring.bits)
    }
    self.ring = ring
    self.fractionalBits = fractionalBits
  }

  public init(bits: Int, fractionalBits: Int) throws(RingError) {
    try self.init(ring: Ring(bits: bits), fractionalBits: fractionalBits)
  }

  public var description: String { "fixed point n=\(ring.bits) f=\(fractionalBits)" }

  /// 2^f.
  public var scale: Double { Double(sign: .plus, exponent: fractionalBits, significand: 1) }

  /// Smallest and largest encodable reals (the ends of the signed range, divided by 2^f).
  public var representableRange: ClosedRange<Double> {
    let half = Double(sign: .plus, exponent: ring.bits - 1, significand: 1)
    return (-half / scale)...((half - 1) / scale)
  }

  /// Encodes `x` as round(x · 2^f) mod 2^n.
  public func encode(_ x: Double) throws(RingError) -> UInt64 {
    guard x.isFinite else { throw .notFinite(x) }
    let scaled = (x * scale).rounded(.toNearestOrAwayFromZero)
    let half = Double(sign: .plus, exponent: ring.bits - 1, significand: 1)
    guard scaled >= -half, scaled < half else { throw .outOfRange(value: x, format: description) }
    return ring.element(Int64(scaled))
  }

  /// Decodes the signed reading of `x` divided by 2^f.
  @inlinable public func decode(_ x: UInt64) -> Double {
    Double(ring.signed(x)) / Double(sign: .plus, exponent: fractionalBits, significand: 1)
  }

  /// Encodes a whole Float64 tensor.
  public func encode(_ tensor: Tensor<Double>) throws(RingError) -> RingTensor {
    var values = [UInt64](repeating: 0, count: tensor.count)
    for i in 0..<tensor.count { values[i] = try encode(tensor.scalars[i]) }
    return RingTensor(uncheckedRing: ring, shape: tensor.shape, values: values)
  }

  /// Decodes a ring tensor into Float64.
  public func decode(_ tensor: RingTensor) -> Tensor<Double> {
    Tensor(uncheckedShape: tensor.shape, scalars: tensor.values.scalars.map { decode($0) })
  }
}

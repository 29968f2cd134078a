// Tensors of ring elements, with plaintext ring arithmetic. Every value is kept reduced
// mod 2^n (an invariant the initialisers enforce), so kernels may rely on it.
import CVeilKernels

/// A tensor over Z_2^n.
public struct RingTensor: Sendable, Equatable {
  public let ring: Ring
  /// Shape and scalars; every scalar is < 2^n.
  public private(set) var values: Tensor<UInt64>

  /// Creates a tensor from values that are reduced mod 2^n on the way in.
  public init(ring: Ring, shape: [Int], reducing scalars: [UInt64]) throws(RingError) {
    self.ring = ring
    self.values = try Tensor(shape: shape, scalars: scalars.map { $0 & ring.mask })
  }

  /// Creates a tensor from signed integers (mod 2^n).
  public init(ring: Ring, shape: [Int], signed scalars: [Int64]) throws(RingError) {
    self.ring = ring
    self.values = try Tensor(shape: shape, scalars: scalars.map { ring.element($0) })
  }

  @usableFromInline init(uncheckedRing ring: Ring, shape: [Int], values: [UInt64]) {
    self.ring = ring
    self.values = Tensor(uncheckedShape: shape, scalars: values)
  }

  init(ring: Ring, _ values: Tensor<UInt64>) {
    self.ring = ring
    self.values = values
  }

  public static func zeros(ring: Ring, shape: [Int]) -> RingTensor {
    RingTensor(ring: ring, Tensor(repeating: 0, shape: shape))
  }

  public var shape: [Int] { values.shape }
  public var count: Int { values.count }
  public var scalars: [UInt64] { values.scalars }

  /// Signed readings of all elements.
  public var signedScalars: [Int64] { values.scalars.map { ring.signed($0) } }

  // MARK: Layout (free on shares: each party applies it to its own share)

  public func reshaped(_ shape: [Int]) throws(RingError) -> RingTensor {
    RingTensor(ring: ring, try values.reshaped(shape))
  }
  public func transposed() throws(RingError) -> RingTensor {
    RingTensor(ring: ring, try values.transposed())
  }
  public func slice(axis: Int, _ range: Range<Int>) throws(RingError) -> RingTensor {
    RingTensor(ring: ring, try values.slice(axis: axis, range))
  }
  public func rows(_ indices: [Int]) throws(RingError) -> RingTensor {
    RingTensor(ring: ring, try values.rows(indices))
  }
  public static func concatenate(_ parts: [RingTensor], axis: Int) throws(RingError) -> RingTensor {
    guard let ring = parts.first?.ring else {
      throw .invalidShape(operation: "concatenate", shape: [], reason: "no tensors")
    }
    for part in parts where part.ring != ring {
      throw .ringMismatch(operation: "concatenate", left: ring.bits, right: part.ring.bits)
    }
    return RingTensor(ring: ring, try Tensor.concatenate(parts.map(\.values), axis: axis))
  }

  // MARK: Arithmetic

  private func elementwise(
    _ other: RingTensor, _ operation: String, _ body: (UInt64, UInt64) -> UInt64
  ) throws(RingError) -> RingTensor {
    guard ring == other.ring else {
      throw .ringMismatch(operation: operation, left: ring.bits, right: other.ring.bits)
    }
    let mask = ring.mask
    return RingTensor(ring: ring, try values.zip(other.values, operation: operation) { body($0, $1) & mask })
  }

  private func mapped(_ body: (UInt64) -> UInt64) -> RingTensor {
    let mask = ring.mask
    return RingTensor(ring: ring, values.map { body($0) & mask })
  }

  public static func + (a: RingTensor, b: RingTensor) throws(RingError) -> RingTensor {
    try a.elementwise(b, "add", &+)
  }
  public static func - (a: RingTensor, b: RingTensor) throws(RingError) -> RingTensor {
    try a.elementwise(b, "sub", &-)
  }
  public static prefix func - (a: RingTensor) -> RingTensor { a.mapped { 0 &- $0 } }

  /// Element-wise (Hadamard) product.
  public func multiplied(elementwise other: RingTensor) throws(RingError) -> RingTensor {
    try elementwise(other, "multiply", &*)
  }

  /// Multiplies every element by a public scalar (given as a signed integer, mod 2^n).
  public func scaled(by scalar: Int64) -> RingTensor {
    let s = UInt64(bitPattern: scalar)
    return mapped { $0 &* s }
  }

  /// Matrix product over the last two axes, batched over leading ones, mod 2^n.
  /// With `transposeB`, b's last two axes are read as [n, k].
  public func matmul(
    _ b: RingTensor, transposeB: Bool = false, kernel: RingGEMMKernel? = nil
  ) throws(RingError) -> RingTensor {
    guard ring == b.ring else {
      throw .ringMismatch(operation: "matmul", left: ring.bits, right: b.ring.bits)
    }
    let right = transposeB ? try b.transposed() : b
    let (batch, m, k, n) = try matmulDimensions(shape, right.shape, transposeB: false)
    var out = [UInt64](repeating: 0, count: batch * m * n)
    let chosen = kernel ?? RingGEMMKernel.best(forBits: ring.bits)
    out.withUnsafeMutableBufferPointer { pc in
      values.scalars.withUnsafeBufferPointer { pa in
        right.values.scalars.withUnsafeBufferPointer { pb in
          for s in 0..<batch {
            RingGEMM.multiply(
              kernel: chosen, m: m, n: n, k: k, a: pa, aOffset: s * m * k, b: pb, bOffset: s * k * n,
              c: pc, cOffset: s * m * n, mask: ring.mask)
          }
        }
      }
    }
    return RingTensor(
      uncheckedRing: ring, shape: Array(shape.dropLast(2)) + [m, n], values: out)
  }

  // MARK: Shifts and width changes

  private func checkShift(_ s: Int) throws(RingError) {
    guard s >= 0, s <= ring.bits else { throw .invalidShift(amount: s, ringBits: ring.bits) }
  }

  /// ⌊signed(x) / 2^s⌋ within n bits.
  public func arithmeticShiftRight(_ s: Int) throws(RingError) -> RingTensor {
    try checkShift(s)
    let r = ring
    return mapped { r.arithmeticShiftRight($0, by: s) }
  }

  /// ⌊x / 2^s⌋ with x unsigned in n bits.
  public func logicalShiftRight(_ s: Int) throws(RingError) -> RingTensor {
    try checkShift(s)
    let r = ring
    return mapped { r.logicalShiftRight($0, by: s) }
  }

  /// x · 2^s mod 2^n.
  public func shiftLeft(_ s: Int) throws(RingError) -> RingTensor {
    try checkShift(s)
    let r = ring
    return mapped { r.shiftLeft($0, by: s) }
  }

  /// Reads each element as signed n-bit and re-encodes it in a ring at least as wide.
  public func signExtended(to wider: Ring) throws(RingError) -> RingTensor {
    guard wider.bits >= ring.bits else {
      throw .ringMismatch(operation: "sign extend", left: ring.bits, right: wider.bits)
    }
    let r = ring
    return RingTensor(ring: wider, values.map { wider.element(r.signed($0)) })
  }

  /// Reduces each element mod 2^m for a ring at most as wide (drops the high bits).
  public func reduced(to narrower: Ring) throws(RingError) -> RingTensor {
    guard narrower.bits <= ring.bits else {
      throw .ringMismatch(operation: "reduce", left: ring.bits, right: narrower.bits)
    }
    return RingTensor(ring: narrower, values.map { $0 & narrower.mask })
  }
}

// The fixed-point back end in the clear: every gate on plain signed integers mod 2^n, exactly
// as the secure gates define it (floors, wraps, unsigned table indices), plus what only the
// clear run can see: each gate's value range and every place where the result wrapped or an
// assumed bound failed. Deterministic: no randomness anywhere.
import Foundation
import VeilFSS
import VeilModels
import VeilRing

/// A fixed-point tensor in the clear: signed integers of a ring, with the ring width and scale.
public struct FixedTensor: Sendable, Equatable {
  public let format: WireFormat
  public let shape: [Int]
  /// Signed readings, each in [−2^(n−1), 2^(n−1)).
  public let values: [Int64]

  /// Creates a tensor; values are reduced into the ring (wrapped to the signed range).
  public init(format: WireFormat, shape: [Int], values: [Int64]) throws(MPCError) {
    guard (1...64).contains(format.bits) else {
      throw .invalidParameters("ring width \(format.bits)")
    }
    guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
      throw .invalidParameters("shape \(shape) does not hold \(values.count) values")
    }
    self.init(unchecked: format, shape, values.map { wrap($0, bits: format.bits) })
  }

  init(unchecked format: WireFormat, _ shape: [Int], _ values: [Int64]) {
    self.format = format
    self.shape = shape
    self.values = values
  }

  public var count: Int { values.count }

  /// Reals encoded at `format` (rounded to nearest; a value outside the ring is an error): the
  /// inverse of `decoded()`.
  public init(encoding reals: [Double], shape: [Int], format: WireFormat) throws {
    let codec = try FixedPointFormat(bits: format.bits, fractionalBits: format.scale)
    try self.init(
      format: format, shape: shape,
      values: try reals.map { codec.ring.signed(try codec.encode($0)) })
  }

  /// The real numbers the integers stand for (value / 2^f).
  public func decoded() -> Tensor<Double> {
    let scale = Double(sign: .plus, exponent: format.scale, significand: 1)
    // A FixedTensor's shape and value count were checked when it was made.
    return (try? Tensor(shape: shape, scalars: values.map { Double($0) / scale }))
      ?? Tensor(repeating: 0, shape: [0])
  }

  /// The same values as ring elements.
  public func ringTensor() throws -> RingTensor {
    try RingTensor(ring: Ring(bits: format.bits), shape: shape, signed: values)
  }
}

/// A tensor of bits in the clear.
public struct BitTensor: Sendable, Equatable {
  public let shape: [Int]
  /// 0 or 1 each.
  public let bits: [UInt8]

  public init(shape: [Int], bits: [UInt8]) {
    precondition(
      shape.reduce(1, *) == bits.count, "shape \(shape) does not hold \(bits.count) bits")
    self.shape = shape
    self.bits = bits
  }
}

/// x mod 2^bits, read as signed.
@inline(__always) func wrap(_ v: Int64, bits: Int) -> Int64 {
  let s = Int64(64 - bits)
  return (v &<< s) &>> s
}

/// Whether v is a signed `bits`-bit value.
@inline(__always) func fits(_ v: Int64, bits: Int) -> Bool {
  if bits >= 64 { return true }
  let high = v &>> Int64(bits - 1)
  return high == 0 || high == -1
}

@inline(__always) func magnitude(_ v: Int64) -> Int64 { v == .min ? .max : abs(v) }

/// Weights encoded once at the run's format (DESIGN §3: one scale per weight set).
public struct ClearWeights: Sendable {
  public let format: FixedPointFormat
  let tensors: [WeightID: Tensor<Int64>]

  /// Encodes every weight with `format`; a weight that does not fit is an error.
  public init(_ weights: Float64Weights, format: FixedPointFormat) throws(MPCError) {
    var tensors: [WeightID: Tensor<Int64>] = [:]
    for (id, tensor) in weights.tensors {
      tensors[id] = try Self.encode(id, tensor, format: format)
    }
    self.format = format
    self.tensors = tensors
  }

  /// One weight as signed integers at `format`, or a `weightOutOfRange` error naming it.
  static func encode(_ id: WeightID, _ tensor: Tensor<Double>, format: FixedPointFormat)
    throws(MPCError)
    -> Tensor<Int64>
  {
    do {
      let encoded = try format.encode(tensor)
      return try Tensor(
        shape: tensor.shape, scalars: encoded.scalars.map { format.ring.signed($0) })
    } catch let error {
      if case .outOfRange(let value, let description) = error {
        throw .weightOutOfRange(weight: id.name, value: value, format: description)
      }
      throw .weightOutOfRange(weight: id.name, value: .nan, format: "\(format): \(error)")
    }
  }

  public var wireFormat: WireFormat {
    WireFormat(bits: format.ring.bits, scale: format.fractionalBits)
  }

  func tensor(_ id: WeightID) throws(MPCError) -> Tensor<Int64> {
    guard let t = tensors[id] else { throw .unknownWeight(id.name) }
    return t
  }
}

/// Values made once per key on first use (transposed weights), shared across tasks.
final class OnceCache<Key: Hashable, Value>: @unchecked Sendable {
  // @unchecked: every access goes through `lock`.
  private let lock = NSLock()
  private var cache: [Key: Value] = [:]

  func value<E: Error>(_ key: Key, _ make: () throws(E) -> Value) throws(E) -> Value {
    lock.lock()
    if let hit = cache[key] {
      lock.unlock()
      return hit
    }
    lock.unlock()
    let made = try make()
    lock.lock()
    cache[key] = made
    lock.unlock()
    return made
  }
}

/// The fixed-point back end in the clear.
public struct ClearBackend: GateBackend {
  public typealias Value = FixedTensor
  public typealias Bits = BitTensor

  public let weights: ClearWeights
  /// Value ranges and violations of every gate run so far.
  public let recorder: RangeRecorder
  private let transposes = OnceCache<WeightID, [Int64]>()

  /// Rings this narrow are index rings: the clear back end does not count their wraps.
  public static let indexRingBits = 24

  public init(weights: ClearWeights, recorder: RangeRecorder = RangeRecorder()) {
    self.weights = weights
    self.recorder = recorder
  }

  public var inputFormat: WireFormat { weights.wireFormat }

  public func shape(of value: FixedTensor) -> [Int] { value.shape }
  public func format(of value: FixedTensor) -> WireFormat { value.format }
  public func shape(of bits: BitTensor) -> [Int] { bits.shape }

  // MARK: Helpers

  /// Wraps exact results into the ring, counting those that did not fit, and records the range.
  /// `overflowed` counts results already known to have left Int64 (a wrap the ring repeats).
  private func emit(
    _ exact: [Int64], _ format: WireFormat, _ shape: [Int], _ site: GateSite,
    checkRing: Bool = true,
    overflowed: Int = 0
  ) -> FixedTensor {
    let bits = format.bits
    var peak: Int64 = 0
    var outside = 0
    exact.withUnsafeBufferPointer { buffer in
      for v in buffer {
        peak = max(peak, magnitude(v))
        if !fits(v, bits: bits) { outside += 1 }
      }
    }
    recorder.record(site, format: format, maxMagnitude: peak, elements: exact.count)
    // Rings of at most 24 bits hold table indices (`LUTGate` takes ≤ 24 input bits), whose
    // arithmetic wraps on purpose; wider rings hold numbers, where a wrap is an error.
    if checkRing && bits > ClearBackend.indexRingBits && outside + overflowed > 0 {
      recorder.violation(
        .ringOverflow, at: site, format: format, count: outside + overflowed,
        detail: "result outside the \(bits)-bit ring")
    }
    guard outside > 0 else { return FixedTensor(unchecked: format, shape, exact) }
    return FixedTensor(unchecked: format, shape, exact.map { wrap($0, bits: bits) })
  }

  private func sameFormat(_ a: FixedTensor, _ b: FixedTensor, _ site: GateSite) throws(MPCError) {
    guard a.format == b.format else {
      throw .formatMismatch(site, "operands have formats \(a.format) and \(b.format)")
    }
    guard a.shape == b.shape else { throw .badShape(site, b.shape, "expected \(a.shape)") }
  }

  private func sameRing(_ a: FixedTensor, _ b: FixedTensor, _ site: GateSite) throws(MPCError) {
    guard a.format.bits == b.format.bits else {
      throw .formatMismatch(
        site, "operands have rings of \(a.format.bits) and \(b.format.bits) bits")
    }
  }

  private func checkedScale(_ a: Int, _ b: Int, _ site: GateSite) throws(MPCError) -> Int {
    guard a + b < 63 else { throw .formatMismatch(site, "scale \(a) + \(b) is too large") }
    return a + b
  }

  /// Exact products (Int64; a product that leaves Int64 is counted as an overflow).
  private func products(_ a: [Int64], _ b: (Int) -> Int64) -> ([Int64], Int) {
    var out = [Int64](repeating: 0, count: a.count)
    var overflow = 0
    for i in a.indices {
      let (p, o) = a[i].multipliedReportingOverflow(by: b(i))
      out[i] = p
      if o { overflow += 1 }
    }
    return (out, overflow)
  }

  /// C = A·B over Z_2^64 (the exact integer product unless it leaves Int64), row-major.
  private func gemm(_ a: [Int64], _ b: [Int64], batch: Int, m: Int, k: Int, n: Int) -> [Int64] {
    var out = [Int64](repeating: 0, count: batch * m * n)
    let kernel = RingGEMMKernel.best(forBits: 64)
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        out.withUnsafeMutableBufferPointer { pc in
          pa.withMemoryRebound(to: UInt64.self) { ua in
            pb.withMemoryRebound(to: UInt64.self) { ub in
              pc.withMemoryRebound(to: UInt64.self) { uc in
                for s in 0..<batch {
                  RingGEMM.multiply(
                    kernel: kernel, m: m, n: n, k: k, a: ua, aOffset: s * m * k, b: ub,
                    bOffset: s * k * n,
                    c: uc, cOffset: s * m * n, mask: .max)
                }
              }
            }
          }
        }
      }
    }
    return out
  }

  // MARK: Inputs

  public func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: GateSite) async throws
    -> FixedTensor
  {
    guard let ids = tokens.ids else { throw MPCError.missingTokenIds(site) }
    return try await weightRows(table, rows: ids, site: site)
  }

  public func clientInput(_ values: [Int64]?, shape: [Int], format: WireFormat, site: GateSite)
    async throws -> FixedTensor
  {
    guard let values, values.count == shape.reduce(1, *) else {
      throw MPCError.protocolViolation("\(site): the client's input is missing")
    }
    return emit(values, format, shape, site)
  }

  public func weightRows(_ table: WeightID, rows: [Int], site: GateSite) async throws -> FixedTensor
  {
    let t = try weights.tensor(table).rows(rows)
    return emit(t.scalars, inputFormat, t.shape, site)
  }

  public func constant(_ values: [Int64], shape: [Int], format: WireFormat, site: GateSite)
    async throws
    -> FixedTensor
  {
    guard shape.reduce(1, *) == values.count else {
      throw MPCError.badShape(site, shape, "\(values.count) values")
    }
    return emit(values, format, shape, site)
  }

  // MARK: Local

  public func add(_ a: FixedTensor, _ b: FixedTensor, site: GateSite) async throws -> FixedTensor {
    try sameFormat(a, b, site)
    return emit(zip(a.values, b.values).map { $0 &+ $1 }, a.format, a.shape, site)
  }

  public func subtract(_ a: FixedTensor, _ b: FixedTensor, site: GateSite) async throws
    -> FixedTensor
  {
    try sameFormat(a, b, site)
    return emit(zip(a.values, b.values).map { $0 &- $1 }, a.format, a.shape, site)
  }

  public func addConstant(_ x: FixedTensor, _ constant: Int64, site: GateSite) async throws
    -> FixedTensor
  {
    emit(x.values.map { $0 &+ constant }, x.format, x.shape, site)
  }

  public func multiplyConstant(
    _ x: FixedTensor, _ constant: Int64, fractionalBits: Int, site: GateSite
  )
    async throws -> FixedTensor
  {
    let scale = try checkedScale(x.format.scale, fractionalBits, site)
    let (p, overflow) = products(x.values) { _ in constant }
    return emit(
      p, WireFormat(bits: x.format.bits, scale: scale), x.shape, site, overflowed: overflow)
  }

  public func multiplyConstants(
    _ x: FixedTensor, _ constants: [Int64], fractionalBits: Int, site: GateSite
  )
    async throws -> FixedTensor
  {
    guard constants.count == x.count else {
      throw MPCError.badShape(site, x.shape, "\(constants.count) constants")
    }
    let scale = try checkedScale(x.format.scale, fractionalBits, site)
    let (p, overflow) = products(x.values) { constants[$0] }
    return emit(
      p, WireFormat(bits: x.format.bits, scale: scale), x.shape, site, overflowed: overflow)
  }

  public func withScale(_ x: FixedTensor, _ scale: Int, site: GateSite) async throws -> FixedTensor
  {
    FixedTensor(unchecked: WireFormat(bits: x.format.bits, scale: scale), x.shape, x.values)
  }

  public func gather(_ x: FixedTensor, indices: [Int], shape: [Int], site: GateSite) async throws
    -> FixedTensor
  {
    guard shape.reduce(1, *) == indices.count else {
      throw MPCError.badShape(site, shape, "\(indices.count) indices")
    }
    let count = x.count
    guard indices.allSatisfy({ $0 >= 0 && $0 < count }) else {
      throw MPCError.badShape(site, x.shape, "gather index out of range")
    }
    return FixedTensor(unchecked: x.format, shape, indices.map { x.values[$0] })
  }

  public func concatenate(_ parts: [FixedTensor], axis: Int, site: GateSite) async throws
    -> FixedTensor
  {
    guard let first = parts.first else {
      throw MPCError.badShape(site, [], "nothing to concatenate")
    }
    guard parts.allSatisfy({ $0.format == first.format }) else {
      throw MPCError.formatMismatch(site, "concatenated parts differ in format")
    }
    let joined = try Tensor.concatenate(
      try parts.map { try Tensor(shape: $0.shape, scalars: $0.values) }, axis: axis)
    return FixedTensor(unchecked: first.format, joined.shape, joined.scalars)
  }

  public func sumLastAxis(_ x: FixedTensor, site: GateSite) async throws -> FixedTensor {
    guard let width = x.shape.last, width > 0 else {
      throw MPCError.badShape(site, x.shape, "nothing to sum")
    }
    let rows = x.count / width
    var out = [Int64](repeating: 0, count: rows)
    x.values.withUnsafeBufferPointer { v in
      for r in 0..<rows {
        var s: Int64 = 0
        for j in 0..<width { s = s &+ v[r * width + j] }
        out[r] = s
      }
    }
    return emit(out, x.format, Array(x.shape.dropLast()) + [1], site)
  }

  public func reduceRing(_ x: FixedTensor, bits: Int, site: GateSite) async throws -> FixedTensor {
    guard bits >= 1, bits <= x.format.bits else {
      throw MPCError.formatMismatch(site, "cannot reduce \(x.format.bits) bits to \(bits)")
    }
    let format = WireFormat(bits: bits, scale: x.format.scale)
    return emit(x.values.map { wrap($0, bits: bits) }, format, x.shape, site)
  }

  public func addWeight(_ x: FixedTensor, bias: WeightID, site: GateSite) async throws
    -> FixedTensor
  {
    let b = try weights.tensor(bias)
    guard x.format == inputFormat else {
      throw MPCError.formatMismatch(
        site, "a bias of format \(inputFormat) cannot be added to \(x.format)")
    }
    guard b.rank == 1, let d = x.shape.last, d == b.count else {
      throw MPCError.badShape(site, x.shape, "bias '\(bias)' has shape \(b.shape)")
    }
    let bv = b.scalars
    return emit(x.values.enumerated().map { $1 &+ bv[$0 % d] }, x.format, x.shape, site)
  }

  public func xor(_ a: BitTensor, _ b: BitTensor, site: GateSite) async throws -> BitTensor {
    guard a.shape == b.shape else { throw MPCError.badShape(site, b.shape, "expected \(a.shape)") }
    return BitTensor(shape: a.shape, bits: zip(a.bits, b.bits).map { $0 ^ $1 })
  }

  public func not(_ a: BitTensor, site: GateSite) async throws -> BitTensor {
    BitTensor(shape: a.shape, bits: a.bits.map { $0 ^ 1 })
  }

  public func gather(bits: BitTensor, indices: [Int], shape: [Int], site: GateSite) async throws
    -> BitTensor
  {
    guard shape.reduce(1, *) == indices.count,
      indices.allSatisfy({ $0 >= 0 && $0 < bits.bits.count })
    else {
      throw MPCError.badShape(site, shape, "bad bit gather")
    }
    return BitTensor(shape: shape, bits: indices.map { bits.bits[$0] })
  }

  // MARK: Gates

  public func linear(_ x: FixedTensor, weight: WeightID, site: GateSite) async throws -> FixedTensor
  {
    try weightProduct(x, weight, transposed: true, site)
  }

  public func tableProduct(_ x: FixedTensor, table: WeightID, site: GateSite) async throws
    -> FixedTensor
  {
    try weightProduct(x, table, transposed: false, site)
  }

  /// x·Wᵀ (a linear layer, W [out, in]) or x·W (a table product, W [in, out]).
  private func weightProduct(
    _ x: FixedTensor, _ weight: WeightID, transposed: Bool, _ site: GateSite
  ) throws -> FixedTensor {
    let w = try weights.tensor(weight)
    guard x.format.bits == inputFormat.bits else {
      throw MPCError.formatMismatch(
        site, "input ring \(x.format.bits) bits, weights \(inputFormat.bits)")
    }
    guard w.rank == 2, x.shape.count >= 1, let inner = x.shape.last,
      inner == w.shape[transposed ? 1 : 0]
    else {
      throw MPCError.badShape(site, x.shape, "weight '\(weight)' has shape \(w.shape)")
    }
    let (outputs, rows) = (w.shape[transposed ? 0 : 1], x.count / max(inner, 1))
    let right =
      transposed
      ? try transposes.value(weight) { () throws(RingError) in try w.transposed().scalars }
      : w.scalars
    let product = gemm(x.values, right, batch: 1, m: rows, k: inner, n: outputs)
    let scale = try checkedScale(x.format.scale, inputFormat.scale, site)
    return emit(
      product, WireFormat(bits: x.format.bits, scale: scale), Array(x.shape.dropLast()) + [outputs],
      site)
  }

  public func multiplyWeight(_ x: FixedTensor, weight: WeightID, site: GateSite) async throws
    -> FixedTensor
  {
    let w = try weights.tensor(weight)
    guard x.format.bits == inputFormat.bits else {
      throw MPCError.formatMismatch(
        site, "input ring \(x.format.bits) bits, weights \(inputFormat.bits)")
    }
    guard w.rank == 1, let d = x.shape.last, d == w.count else {
      throw MPCError.badShape(site, x.shape, "weight '\(weight)' has shape \(w.shape)")
    }
    let scale = try checkedScale(x.format.scale, inputFormat.scale, site)
    let wv = w.scalars
    let (p, overflow) = products(x.values) { wv[$0 % d] }
    return emit(
      p, WireFormat(bits: x.format.bits, scale: scale), x.shape, site, overflowed: overflow)
  }

  public func multiply(_ a: FixedTensor, _ b: FixedTensor, site: GateSite) async throws
    -> FixedTensor
  {
    try sameRing(a, b, site)
    guard a.shape == b.shape else { throw MPCError.badShape(site, b.shape, "expected \(a.shape)") }
    let scale = try checkedScale(a.format.scale, b.format.scale, site)
    let bv = b.values
    let (p, overflow) = products(a.values) { bv[$0] }
    return emit(
      p, WireFormat(bits: a.format.bits, scale: scale), a.shape, site, overflowed: overflow)
  }

  public func square(_ x: FixedTensor, site: GateSite) async throws -> FixedTensor {
    try await multiply(x, x, site: site)
  }

  public func matmul(_ a: FixedTensor, _ b: FixedTensor, transposeB: Bool, site: GateSite)
    async throws
    -> FixedTensor
  {
    try sameRing(a, b, site)
    let ta = try Tensor(shape: a.shape, scalars: a.values)
    var tb = try Tensor(shape: b.shape, scalars: b.values)
    if transposeB { tb = try tb.transposed() }
    guard ta.rank >= 2, ta.rank == tb.rank, ta.shape.dropLast(2) == tb.shape.dropLast(2),
      ta.shape[ta.rank - 1] == tb.shape[tb.rank - 2]
    else {
      throw MPCError.badShape(
        site, a.shape, "cannot multiply by \(b.shape)\(transposeB ? "ᵀ" : "")")
    }
    let (m, k, n) = (ta.shape[ta.rank - 2], ta.shape[ta.rank - 1], tb.shape[tb.rank - 1])
    let batch = ta.shape.dropLast(2).reduce(1, *)
    let product = gemm(ta.scalars, tb.scalars, batch: batch, m: m, k: k, n: n)
    let scale = try checkedScale(a.format.scale, b.format.scale, site)
    return emit(
      product, WireFormat(bits: a.format.bits, scale: scale), Array(ta.shape.dropLast(2)) + [m, n],
      site)
  }

  public func truncate(
    _ x: FixedTensor, kind: TruncationKind, shift s: Int, outputBits m: Int, site: GateSite
  )
    async throws -> FixedTensor
  {
    let n = x.format.bits
    // The same constraints as `TruncationGate.gen`.
    switch kind {
    case .reduce:
      guard n >= 2, s >= 1, s < n, m == n - s else {
        throw MPCError.formatMismatch(
          site, "truncate-reduce needs 1 ≤ s < n, m = n − s (n \(n), s \(s), m \(m))")
      }
    case .slack:
      guard n >= 3, s >= 1, s <= n - 2, m >= 1, m <= n else {
        throw MPCError.formatMismatch(
          site, "TrWithSlack needs 1 ≤ s ≤ n − 2, m ≤ n (n \(n), s \(s), m \(m))")
      }
      let limit = Int64(1) << Int64(n - 2)
      var outside = 0
      for v in x.values where v >= limit || v < -limit { outside += 1 }
      recorder.violation(
        .slackHeadroom, at: site, format: x.format, count: outside,
        detail: "|x| ≥ 2^\(n - 2) before TrWithSlack")
    case .signExtend:
      guard s == 0, m > n, m <= 64 else {
        throw MPCError.formatMismatch(site, "sign extension needs s = 0 and \(n) < m ≤ 64 (m \(m))")
      }
    }
    guard x.format.scale >= s else {
      throw MPCError.formatMismatch(site, "cannot drop \(s) bits from scale \(x.format.scale)")
    }
    let format = WireFormat(bits: m, scale: x.format.scale - s)
    let floors = x.values.map { $0 &>> Int64(s) }
    // The output ring is the truncation's own reduction (e.g. to a table index), not an overflow.
    return emit(floors, format, x.shape, site, checkRing: false)
  }

  public func compare(_ x: FixedTensor, offsets: [Int64], site: GateSite) async throws -> BitTensor
  {
    let n = x.format.bits
    guard n >= 2, !offsets.isEmpty else {
      throw MPCError.formatMismatch(site, "DReLU needs n ≥ 2 and offsets")
    }
    let k = offsets.count
    var bits = [UInt8](repeating: 0, count: x.count * k)
    for (e, v) in x.values.enumerated() {
      for (i, c) in offsets.enumerated() { bits[e * k + i] = wrap(v &- c, bits: n) >= 0 ? 1 : 0 }
    }
    return BitTensor(shape: x.shape + [k], bits: bits)
  }

  public func select(_ bits: BitTensor, _ x: FixedTensor, site: GateSite) async throws
    -> FixedTensor
  {
    guard bits.shape == x.shape else {
      throw MPCError.badShape(site, bits.shape, "select bits for \(x.shape)")
    }
    return emit(zip(bits.bits, x.values).map { $0 == 0 ? 0 : $1 }, x.format, x.shape, site)
  }

  public func lookup(_ x: FixedTensor, table: LookupTable, site: GateSite) async throws
    -> FixedTensor
  {
    guard x.format.bits == table.inputBits else {
      throw MPCError.formatMismatch(
        site, "\(table.name) takes \(table.inputBits)-bit indices, not \(x.format.bits)")
    }
    let mask = UInt64(table.entries.count - 1)
    let entries = table.entries
    return emit(
      x.values.map { entries[Int(UInt64(bitPattern: $0) & mask)] }, table.output, x.shape, site)
  }

  public func sineSeries(
    _ x: FixedTensor, coefficients: [Double], outputScale: Int, site: GateSite
  ) async throws -> FixedTensor {
    let n = inputFormat.bits
    try SineSeries.validate(
      angleBits: x.format.bits, terms: coefficients.count, outputScale: outputScale, ringBits: n,
      site)
    let table = TurnTable(bits: x.format.bits)
    let values = x.values.map {
      SineSeries.rounded(
        UInt64(bitPattern: $0), coefficients: coefficients, table: table, scale: outputScale)
    }
    return emit(values, WireFormat(bits: n, scale: outputScale), x.shape, site)
  }

  // Batching and deferred openings change the protocol, not the integers.
  public func selectUnopened(_ bits: BitTensor, _ x: FixedTensor, site: GateSite) async throws
    -> FixedTensor
  {
    try await select(bits, x, site: site)
  }

  public func lookups(_ inputs: [FixedTensor], tables: [LookupTable], open: Bool, site: GateSite)
    async throws
    -> [FixedTensor]
  {
    guard inputs.count == tables.count else {
      throw MPCError.badShape(site, [inputs.count], "\(tables.count) tables")
    }
    var out: [FixedTensor] = []
    for (x, table) in zip(inputs, tables) {
      out.append(try await lookup(x, table: table, site: site))
    }
    return out
  }

  public func open(_ x: FixedTensor, site: GateSite) async throws -> FixedTensor { x }

  public func reveal(_ x: FixedTensor, site: GateSite) async throws -> [Int64] { x.values }

  public func assertRange(_ x: FixedTensor, _ range: ClosedRange<Int64>, site: GateSite)
    async throws
  {
    var outside = 0
    var peak: Int64 = 0
    for v in x.values {
      peak = max(peak, magnitude(v))
      if !range.contains(v) { outside += 1 }
    }
    recorder.record(site, format: x.format, maxMagnitude: peak, elements: x.count)
    recorder.violation(
      .recipeBound, at: site, format: x.format, count: outside, detail: "outside \(range)")
  }
}

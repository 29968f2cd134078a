// Masked wires (DESIGN §3): every wire of the secure run carries x̂ = x + r mod 2^n, public to
// P0 and P1, while the dealer holds the mask r. Both are tensors of ring elements of the same
// format and shape, so the dealer's and the parties' back ends share one type and every local
// operation: a linear map applies to x̂ and to r alike, and only public constants differ (they
// enter x̂, never r). This file holds that type and the local operations written once.
import VeilFSS
import VeilModels
import VeilRing

/// A tensor of ring elements in [0, 2^n): masked values at a party, masks at the dealer.
///
/// A gate may leave its output unopened (`opened == false`): each party then holds an additive
/// share of the masked value instead of the value itself. Two unopened values can be added or
/// subtracted (shares add) before one opening, which saves a round and the bytes of the second
/// opening; every other operation requires an opened wire. The dealer tracks the same flag, so
/// both sides refuse the same misuse.
public struct WireTensor: Sendable, Equatable {
  public let format: WireFormat
  public let shape: [Int]
  public let values: [UInt64]
  public let opened: Bool

  init(_ format: WireFormat, _ shape: [Int], _ values: [UInt64], opened: Bool = true) {
    self.format = format
    self.shape = shape
    self.values = values
    self.opened = opened
  }

  public var count: Int { values.count }
  var mask: UInt64 { ringMask(format.bits) }
}

/// A tensor of bits: masked bits at a party, bit masks at the dealer.
public struct WireBits: Sendable, Equatable {
  public let shape: [Int]
  public let bits: [UInt8]
}

/// Elementwise FSS gates (compare, select, truncate, lookup) key at most this many elements
/// per record: a gate over more ships several records, in order, and opens once.
let keyChunkElements = 1 << 16

/// The element ranges of a gate's key records (one empty range for an empty tensor, so that
/// every gate has at least one record).
func elementChunks(_ count: Int) -> [Range<Int>] {
  guard count > 0 else { return [0..<0] }
  return stride(from: 0, to: count, by: keyChunkElements).map {
    $0..<min($0 + keyChunkElements, count)
  }
}

/// 2^bits − 1.
@inline(__always) func ringMask(_ bits: Int) -> UInt64 {
  bits >= 64 ? .max : (1 << UInt64(bits)) - 1
}

/// A public signed integer as an element of Z_2^bits.
@inline(__always) func element(_ v: Int64, bits: Int) -> UInt64 {
  UInt64(bitPattern: v) & ringMask(bits)
}

/// The signed reading of an element of Z_2^bits.
@inline(__always) func signedValue(_ v: UInt64, bits: Int) -> Int64 {
  let s = Int64(64 - bits)
  return (Int64(bitPattern: v) &<< s) &>> s
}

/// A back end whose values are masked wires. `holdsMaskedValues` tells the two sides apart:
/// true at the parties (public constants are added in), false at the dealer (masks only).
protocol MaskedWireBackend: GateBackend where Value == WireTensor, Bits == WireBits {
  var holdsMaskedValues: Bool { get }
  /// Weights as wires carry them: Ŵ = W + r_W at a party, r_W at the dealer, so that adding a
  /// bias or reading embedding rows is local on both sides.
  var wireWeights: RunWeights { get }
  /// A select whose output the parties open or keep as shares (the same key either way).
  func select(_ bits: WireBits, _ x: WireTensor, opened: Bool, site: GateSite) async throws
    -> WireTensor
}

extension MaskedWireBackend {
  public func select(_ bits: WireBits, _ x: WireTensor, site: GateSite) async throws -> WireTensor {
    try await select(bits, x, opened: true, site: site)
  }

  public func selectUnopened(_ bits: WireBits, _ x: WireTensor, site: GateSite) async throws
    -> WireTensor
  {
    try await select(bits, x, opened: false, site: site)
  }

  public func lookup(_ x: WireTensor, table: LookupTable, site: GateSite) async throws -> WireTensor
  {
    try await lookups([x], tables: [table], open: true, site: site)[0]
  }

  public func shape(of value: WireTensor) -> [Int] { value.shape }
  public func format(of value: WireTensor) -> WireFormat { value.format }
  public func shape(of bits: WireBits) -> [Int] { bits.shape }

  private func checkSame(_ a: WireTensor, _ b: WireTensor, _ site: GateSite) throws(MPCError) {
    guard a.format == b.format else {
      throw .formatMismatch(site, "operands have formats \(a.format) and \(b.format)")
    }
    guard a.shape == b.shape else { throw .badShape(site, b.shape, "expected \(a.shape)") }
    guard a.opened == b.opened else {
      throw .formatMismatch(site, "an opened and an unopened operand")
    }
  }

  /// Refuses an unopened value where an operation needs the masked wire itself.
  func requireOpened(_ values: WireTensor..., site: GateSite) throws(MPCError) {
    guard values.allSatisfy(\.opened) else {
      throw .formatMismatch(site, "an unopened value needs `open` first")
    }
  }

  /// `format` with its scale grown by `extra` (the format of a product).
  func grown(_ format: WireFormat, by extra: Int, _ site: GateSite) throws(MPCError) -> WireFormat {
    guard format.scale + extra < 63 else {
      throw .formatMismatch(site, "scale \(format.scale) + \(extra) is too large")
    }
    return WireFormat(bits: format.bits, scale: format.scale + extra)
  }

  public func constant(_ values: [Int64], shape: [Int], format: WireFormat, site: GateSite)
    async throws -> WireTensor
  {
    guard shape.reduce(1, *) == values.count else {
      throw MPCError.badShape(site, shape, "\(values.count) values")
    }
    let bits = format.bits
    return WireTensor(
      format, shape,
      holdsMaskedValues
        ? values.map { element($0, bits: bits) } : [UInt64](repeating: 0, count: values.count))
  }

  public func add(_ a: WireTensor, _ b: WireTensor, site: GateSite) async throws -> WireTensor {
    try checkSame(a, b, site)
    let m = a.mask
    return WireTensor(
      a.format, a.shape, zip(a.values, b.values).map { ($0 &+ $1) & m }, opened: a.opened)
  }

  public func subtract(_ a: WireTensor, _ b: WireTensor, site: GateSite) async throws -> WireTensor
  {
    try checkSame(a, b, site)
    let m = a.mask
    return WireTensor(
      a.format, a.shape, zip(a.values, b.values).map { ($0 &- $1) & m }, opened: a.opened)
  }

  public func addConstant(_ x: WireTensor, _ constant: Int64, site: GateSite) async throws
    -> WireTensor
  {
    try requireOpened(x, site: site)
    guard holdsMaskedValues else { return x }
    let (m, c) = (x.mask, UInt64(bitPattern: constant))
    return WireTensor(x.format, x.shape, x.values.map { ($0 &+ c) & m })
  }

  public func multiplyConstant(
    _ x: WireTensor, _ constant: Int64, fractionalBits: Int, site: GateSite
  ) async throws
    -> WireTensor
  {
    try requireOpened(x, site: site)
    let format = try grown(x.format, by: fractionalBits, site)
    let (m, c) = (x.mask, UInt64(bitPattern: constant))
    return WireTensor(format, x.shape, x.values.map { ($0 &* c) & m })
  }

  public func multiplyConstants(
    _ x: WireTensor, _ constants: [Int64], fractionalBits: Int, site: GateSite
  )
    async throws -> WireTensor
  {
    try requireOpened(x, site: site)
    guard constants.count == x.count else {
      throw MPCError.badShape(site, x.shape, "\(constants.count) constants")
    }
    let format = try grown(x.format, by: fractionalBits, site)
    let m = x.mask
    return WireTensor(
      format, x.shape, zip(x.values, constants).map { ($0 &* UInt64(bitPattern: $1)) & m })
  }

  public func withScale(_ x: WireTensor, _ scale: Int, site: GateSite) async throws -> WireTensor {
    WireTensor(WireFormat(bits: x.format.bits, scale: scale), x.shape, x.values, opened: x.opened)
  }

  public func gather(_ x: WireTensor, indices: [Int], shape: [Int], site: GateSite) async throws
    -> WireTensor
  {
    try requireOpened(x, site: site)
    guard shape.reduce(1, *) == indices.count else {
      throw MPCError.badShape(site, shape, "\(indices.count) indices")
    }
    let count = x.count
    guard indices.allSatisfy({ $0 >= 0 && $0 < count }) else {
      throw MPCError.badShape(site, x.shape, "gather index out of range")
    }
    let v = x.values
    return WireTensor(x.format, shape, indices.map { v[$0] })
  }

  public func concatenate(_ parts: [WireTensor], axis: Int, site: GateSite) async throws
    -> WireTensor
  {
    guard let first = parts.first else {
      throw MPCError.badShape(site, [], "nothing to concatenate")
    }
    for part in parts { try requireOpened(part, site: site) }
    guard parts.allSatisfy({ $0.format == first.format }) else {
      throw MPCError.formatMismatch(site, "concatenated parts differ in format")
    }
    let joined = try Tensor.concatenate(
      try parts.map { try Tensor(shape: $0.shape, scalars: $0.values) }, axis: axis)
    return WireTensor(first.format, joined.shape, joined.scalars)
  }

  public func sumLastAxis(_ x: WireTensor, site: GateSite) async throws -> WireTensor {
    try requireOpened(x, site: site)
    guard let width = x.shape.last, width > 0 else {
      throw MPCError.badShape(site, x.shape, "nothing to sum")
    }
    let rows = x.count / width
    let m = x.mask
    var out = [UInt64](repeating: 0, count: rows)
    x.values.withUnsafeBufferPointer { v in
      for r in 0..<rows {
        var s: UInt64 = 0
        for j in 0..<width { s &+= v[r * width + j] }
        out[r] = s & m
      }
    }
    return WireTensor(x.format, Array(x.shape.dropLast()) + [1], out)
  }

  public func reduceRing(_ x: WireTensor, bits: Int, site: GateSite) async throws -> WireTensor {
    try requireOpened(x, site: site)
    guard bits >= 1, bits <= x.format.bits else {
      throw MPCError.formatMismatch(site, "cannot reduce \(x.format.bits) bits to \(bits)")
    }
    let m = ringMask(bits)
    return WireTensor(
      WireFormat(bits: bits, scale: x.format.scale), x.shape, x.values.map { $0 & m })
  }

  public func xor(_ a: WireBits, _ b: WireBits, site: GateSite) async throws -> WireBits {
    guard a.shape == b.shape else { throw MPCError.badShape(site, b.shape, "expected \(a.shape)") }
    return WireBits(shape: a.shape, bits: zip(a.bits, b.bits).map { $0 ^ $1 })
  }

  public func not(_ a: WireBits, site: GateSite) async throws -> WireBits {
    holdsMaskedValues ? WireBits(shape: a.shape, bits: a.bits.map { $0 ^ 1 }) : a
  }

  public func gather(bits: WireBits, indices: [Int], shape: [Int], site: GateSite) async throws
    -> WireBits
  {
    guard shape.reduce(1, *) == indices.count,
      indices.allSatisfy({ $0 >= 0 && $0 < bits.bits.count })
    else {
      throw MPCError.badShape(site, shape, "bad bit gather")
    }
    return WireBits(shape: shape, bits: indices.map { bits.bits[$0] })
  }

  public func assertRange(_ x: WireTensor, _ range: ClosedRange<Int64>, site: GateSite) async throws
  {}

  public func weightRows(_ table: WeightID, rows: [Int], site: GateSite) async throws -> WireTensor
  {
    let (values, d) = try wireWeights.rows(table, rows, site)
    return WireTensor(inputFormat, [rows.count, d], values)
  }

  public func addWeight(_ x: WireTensor, bias: WeightID, site: GateSite) async throws -> WireTensor
  {
    try requireOpened(x, site: site)
    let b = try wireWeights.plain(bias)
    guard x.format == inputFormat, let d = x.shape.last, d == b.count else {
      throw MPCError.badShape(site, x.shape, "bias '\(bias)' of \(b.count) at \(inputFormat)")
    }
    let m = x.mask
    return WireTensor(x.format, x.shape, x.values.enumerated().map { ($1 &+ b[$0 % d]) & m })
  }

  // MARK: Shape checks shared by the dealer and the parties (the clear back end's rules)

  /// (tokens, vocabulary, d, ring bits) of a token-embedding lookup in a [vocabulary, d] table.
  func embeddingShape(_ tokens: TokenInput, table: WeightID, _ site: GateSite) throws(MPCError) -> (
    t: Int, v: Int, d: Int, n: Int
  ) {
    let shape = try wireWeights.shape(table)
    guard shape.count == 2 else { throw .badShape(site, shape, "embedding table") }
    return (tokens.count, shape[0], shape[1], inputFormat.bits)
  }

  /// (rows, inner, outputs, output format) of x·Wᵀ for x [..., inner] and W [outputs, inner]
  /// (`transposed`), or of x·W for W [inner, outputs] (a table product).
  func linearShape(
    _ x: WireTensor, weight: WeightID, transposed: Bool = true, _ site: GateSite
  ) throws(MPCError) -> (rows: Int, inner: Int, outputs: Int, format: WireFormat) {
    try requireOpened(x, site: site)
    let shape = try wireWeights.shape(weight)
    guard x.format.bits == inputFormat.bits else {
      throw .formatMismatch(site, "input ring \(x.format.bits) bits, weights \(inputFormat.bits)")
    }
    guard shape.count == 2, let inner = x.shape.last, inner == shape[transposed ? 1 : 0] else {
      throw .badShape(site, x.shape, "weight has shape \(shape)")
    }
    return (
      x.count / max(inner, 1), inner, shape[transposed ? 0 : 1],
      try grown(x.format, by: inputFormat.scale, site)
    )
  }

  /// The format of x ⊙ w for a weight vector w over x's last axis.
  func weightProductFormat(_ x: WireTensor, weight: WeightID, _ site: GateSite) throws(MPCError)
    -> WireFormat
  {
    try requireOpened(x, site: site)
    let count = try wireWeights.shape(weight).reduce(1, *)
    guard x.format.bits == inputFormat.bits, let d = x.shape.last, d == count else {
      throw .badShape(site, x.shape, "weight '\(weight)' of \(count)")
    }
    return try grown(x.format, by: inputFormat.scale, site)
  }

  /// The format of a ⊙ b: one ring and shape, scales add.
  func productFormat(_ a: WireTensor, _ b: WireTensor, _ site: GateSite) throws(MPCError)
    -> WireFormat
  {
    try requireOpened(a, b, site: site)
    guard a.format.bits == b.format.bits, a.shape == b.shape else {
      throw .badShape(site, b.shape, "cannot multiply \(a.shape) at \(a.format) by \(b.format)")
    }
    return try grown(a.format, by: b.format.scale, site)
  }

  /// The format of a truncation by s into `outputBits`.
  func truncatedFormat(_ x: WireTensor, shift s: Int, outputBits: Int, _ site: GateSite)
    throws(MPCError) -> WireFormat
  {
    try requireOpened(x, site: site)
    guard x.format.scale >= s else {
      throw .formatMismatch(site, "cannot drop \(s) bits from scale \(x.format.scale)")
    }
    return WireFormat(bits: outputBits, scale: x.format.scale - s)
  }

  /// A select's bits must match x's shape.
  func checkSelect(_ bits: WireBits, _ x: WireTensor, _ site: GateSite) throws(MPCError) {
    try requireOpened(x, site: site)
    guard bits.shape == x.shape else {
      throw .badShape(site, bits.shape, "select bits for \(x.shape)")
    }
  }

  /// A batch of lookups: one table per input, each index of the table's width.
  func checkLookups(_ inputs: [WireTensor], _ tables: [LookupTable], _ site: GateSite)
    throws(MPCError)
  {
    guard !inputs.isEmpty, inputs.count == tables.count else {
      throw .badShape(site, [inputs.count], "\(tables.count) tables for the lookups")
    }
    for (x, table) in zip(inputs, tables) { try checkIndex(x, table, site) }
  }

  /// Refuses an index of another width than the table's.
  func checkIndex(_ x: WireTensor, _ table: LookupTable, _ site: GateSite) throws(MPCError) {
    try requireOpened(x, site: site)
    guard x.format.bits == table.inputBits else {
      throw .formatMismatch(
        site, "\(table.name) takes \(table.inputBits)-bit indices, not \(x.format.bits)")
    }
  }

  /// (batch, m, k, n, output shape and format) of a batched a·b or a·bᵀ.
  func matmulShape(_ a: WireTensor, _ b: WireTensor, transposeB: Bool, _ site: GateSite)
    throws(MPCError) -> (
      batch: Int, m: Int, k: Int, n: Int, shape: [Int], format: WireFormat
    )
  {
    try requireOpened(a, b, site: site)
    guard a.format.bits == b.format.bits else {
      throw .formatMismatch(
        site, "operands have rings of \(a.format.bits) and \(b.format.bits) bits")
    }
    let (ra, rb) = (a.shape.count, b.shape.count)
    guard ra >= 2, ra == rb, a.shape.dropLast(2) == b.shape.dropLast(2) else {
      throw .badShape(site, a.shape, "cannot multiply by \(b.shape)")
    }
    let (m, k) = (a.shape[ra - 2], a.shape[ra - 1])
    let (bk, n) =
      transposeB ? (b.shape[rb - 1], b.shape[rb - 2]) : (b.shape[rb - 2], b.shape[rb - 1])
    guard k == bk else {
      throw .badShape(site, a.shape, "cannot multiply by \(b.shape)\(transposeB ? "ᵀ" : "")")
    }
    return (
      a.shape.dropLast(2).reduce(1, *), m, k, n, Array(a.shape.dropLast(2)) + [m, n],
      try grown(a.format, by: b.format.scale, site)
    )
  }
}

// MARK: - Ring arithmetic on flat arrays

enum RingMath {
  /// C = A·B (or A·Bᵀ) mod 2^bits for a batch of row-major matrices.
  static func matmul(
    _ a: [UInt64], _ b: [UInt64], batch: Int, m: Int, k: Int, n: Int, transposeB: Bool, bits: Int
  ) -> [UInt64] {
    if transposeB && m <= 4 { return rowDots(a, b, batch: batch, m: m, k: k, n: n, bits: bits) }
    let right = transposeB ? Tensor.transposeMatrices(b, batch: batch, rows: n, columns: k) : b
    var out = [UInt64](repeating: 0, count: batch * m * n)
    let kernel = RingGEMMKernel.best(forBits: bits)
    a.withUnsafeBufferPointer { pa in
      right.withUnsafeBufferPointer { pb in
        out.withUnsafeMutableBufferPointer { pc in
          for s in 0..<batch {
            RingGEMM.multiply(
              kernel: kernel, m: m, n: n, k: k, a: pa, aOffset: s * m * k, b: pb,
              bOffset: s * k * n, c: pc,
              cOffset: s * m * n, mask: ringMask(bits))
          }
        }
      }
    }
    return out
  }

  /// A·Bᵀ for a few rows of A as dot products of rows (both contiguous): the LM head of one
  /// position against a tied [V, d] table would otherwise transpose the whole table per call.
  static func rowDots(
    _ a: [UInt64], _ b: [UInt64], batch: Int, m: Int, k: Int, n: Int, bits: Int
  ) -> [UInt64] {
    var out = [UInt64](repeating: 0, count: batch * m * n)
    guard k > 0, !out.isEmpty else { return out }
    let mask = ringMask(bits)
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        out.withUnsafeMutableBufferPointer { pc in
          for s in 0..<batch {
            for i in 0..<m {
              let row = pa.baseAddress! + (s * m + i) * k
              for j in 0..<n {
                let column = pb.baseAddress! + (s * n + j) * k
                var sum: UInt64 = 0
                for t in 0..<k { sum = sum &+ row[t] &* column[t] }
                pc[(s * m + i) * n + j] = sum & mask
              }
            }
          }
        }
      }
    }
    return out
  }

  /// Elementwise a ⊙ b, with b repeated along a's rows when it is shorter (a weight vector).
  static func hadamard(_ a: [UInt64], _ b: [UInt64], bits: Int) -> [UInt64] {
    let m = ringMask(bits)
    let d = b.count
    return a.indices.map { (a[$0] &* b[$0 % d]) & m }
  }

  static func add(_ a: [UInt64], _ b: [UInt64], bits: Int) -> [UInt64] {
    let m = ringMask(bits)
    return zip(a, b).map { ($0 &+ $1) & m }
  }

  static func negate(_ a: [UInt64], bits: Int) -> [UInt64] {
    let m = ringMask(bits)
    return a.map { (0 &- $0) & m }
  }

  static func subtract(_ a: [UInt64], _ b: [UInt64], bits: Int) -> [UInt64] {
    let m = ringMask(bits)
    return zip(a, b).map { ($0 &- $1) & m }
  }
}

// A back end that forwards to another and counts its gates: per op kind, how many calls of
// each gate, on how many elements, at which bit widths, and how many rounds they take when run
// one after another (as the recipe awaits them). It is the cost model the dealer and party
// engines will be measured against, and a check that the recipe needs nothing but the
// `GateBackend` protocol.
import Foundation
import VeilFSS
import VeilModels

/// The gate kinds of the back-end protocol that cost communication (local ones are free).
public enum GateKind: String, Sendable, Hashable, CaseIterable {
  case embedding, linear, multiplyWeight, multiply, matmul, truncate, compare, select, lookup,
    sine, reveal
  /// A secret input from the client (no round between the parties).
  case input
  /// A select whose output stays unopened, and the opening of an unopened value.
  case selectUnopened, open

  /// Rounds of one call on masked wires: one opening, except the two-round truncations
  /// (`TruncationGate`: bit, then output) and lookups (`LUTGate`: round 1, round 2), and the
  /// unopened select (none). A batch of lookups counts as one call.
  public var rounds: Int {
    switch self {
    case .truncate, .lookup: return 2
    case .selectUnopened, .input: return 0
    default: return 1
    }
  }
}

/// Counts of one gate kind within one op kind.
public struct GateCount: Sendable, Equatable {
  public var calls = 0
  public var elements = 0
  /// Elements per bit width (input ring of a truncation, compare or lookup; output ring else).
  public var elementsByBits: [Int: Int] = [:]
  /// DReLU evaluations (elements × offsets) for compares.
  public var evaluations = 0
}

/// A thread-safe tally of gates.
public final class GateTally: @unchecked Sendable {
  private let lock = NSLock()
  private var counts: [OpKind: [GateKind: GateCount]] = [:]

  public init() {}

  func add(
    _ kind: GateKind, _ site: GateSite, elements: Int, bits: Int, evaluations: Int = 0,
    calls: Int = 1
  ) {
    lock.lock()
    defer { lock.unlock() }
    var count = counts[site.op.kind, default: [:]][kind] ?? GateCount()
    count.calls += calls
    count.elements += elements
    count.elementsByBits[bits, default: 0] += elements
    count.evaluations += evaluations
    counts[site.op.kind, default: [:]][kind] = count
  }

  /// Counts per op kind and gate kind.
  public var snapshot: [OpKind: [GateKind: GateCount]] {
    lock.lock()
    defer { lock.unlock() }
    return counts
  }

  /// Rounds if every gate call is its own round trip (no batching of independent gates).
  public var sequentialRounds: Int {
    snapshot.values.reduce(0) { total, gates in
      total + gates.reduce(0) { $0 + $1.value.calls * $1.key.rounds }
    }
  }

  public func reset() {
    lock.lock()
    defer { lock.unlock() }
    counts = [:]
  }

  /// One line per (op kind, gate kind).
  public func report() -> String {
    var lines: [String] = []
    for (op, gates) in snapshot.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
      for (gate, count) in gates.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
        let widths = count.elementsByBits.sorted { $0.key < $1.key }.map {
          "\($0.value)@\($0.key)b"
        }
        .joined(separator: " ")
        let evaluations = gate == .compare ? " evaluations \(count.evaluations)" : ""
        lines.append(
          "\(op.rawValue)/\(gate.rawValue): \(count.calls) calls, \(count.elements) elements [\(widths)]\(evaluations)"
        )
      }
    }
    lines.append("sequential rounds: \(sequentialRounds)")
    return lines.joined(separator: "\n")
  }
}

/// Forwards every call to `inner` and tallies the gates.
public struct CensusBackend<Inner: GateBackend>: GateBackend {
  public typealias Value = Inner.Value
  public typealias Bits = Inner.Bits

  public let inner: Inner
  public let tally: GateTally

  public init(_ inner: Inner, tally: GateTally = GateTally()) {
    self.inner = inner
    self.tally = tally
  }

  private func count(_ value: Value) -> Int { inner.shape(of: value).reduce(1, *) }

  public func shape(of value: Value) -> [Int] { inner.shape(of: value) }
  public func format(of value: Value) -> WireFormat { inner.format(of: value) }
  public func shape(of bits: Bits) -> [Int] { inner.shape(of: bits) }
  public var inputFormat: WireFormat { inner.inputFormat }

  public func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: GateSite) async throws
    -> Value
  {
    let out = try await inner.tokenEmbedding(tokens, table: table, site: site)
    tally.add(.embedding, site, elements: count(out), bits: format(of: out).bits)
    return out
  }

  public func clientInput(_ values: [Int64]?, shape: [Int], format: WireFormat, site: GateSite)
    async throws -> Value
  {
    let out = try await inner.clientInput(values, shape: shape, format: format, site: site)
    tally.add(.input, site, elements: count(out), bits: format.bits)
    return out
  }

  public func weightRows(_ table: WeightID, rows: [Int], site: GateSite) async throws -> Value {
    try await inner.weightRows(table, rows: rows, site: site)
  }

  public func constant(_ values: [Int64], shape: [Int], format: WireFormat, site: GateSite)
    async throws -> Value
  {
    try await inner.constant(values, shape: shape, format: format, site: site)
  }

  public func add(_ a: Value, _ b: Value, site: GateSite) async throws -> Value {
    try await inner.add(a, b, site: site)
  }

  public func subtract(_ a: Value, _ b: Value, site: GateSite) async throws -> Value {
    try await inner.subtract(a, b, site: site)
  }

  public func addConstant(_ x: Value, _ constant: Int64, site: GateSite) async throws -> Value {
    try await inner.addConstant(x, constant, site: site)
  }

  public func multiplyConstant(_ x: Value, _ constant: Int64, fractionalBits: Int, site: GateSite)
    async throws
    -> Value
  {
    try await inner.multiplyConstant(x, constant, fractionalBits: fractionalBits, site: site)
  }

  public func multiplyConstants(
    _ x: Value, _ constants: [Int64], fractionalBits: Int, site: GateSite
  ) async throws
    -> Value
  {
    try await inner.multiplyConstants(x, constants, fractionalBits: fractionalBits, site: site)
  }

  public func withScale(_ x: Value, _ scale: Int, site: GateSite) async throws -> Value {
    try await inner.withScale(x, scale, site: site)
  }

  public func gather(_ x: Value, indices: [Int], shape: [Int], site: GateSite) async throws -> Value
  {
    try await inner.gather(x, indices: indices, shape: shape, site: site)
  }

  public func concatenate(_ parts: [Value], axis: Int, site: GateSite) async throws -> Value {
    try await inner.concatenate(parts, axis: axis, site: site)
  }

  public func sumLastAxis(_ x: Value, site: GateSite) async throws -> Value {
    try await inner.sumLastAxis(x, site: site)
  }

  public func reduceRing(_ x: Value, bits: Int, site: GateSite) async throws -> Value {
    try await inner.reduceRing(x, bits: bits, site: site)
  }

  public func addWeight(_ x: Value, bias: WeightID, site: GateSite) async throws -> Value {
    try await inner.addWeight(x, bias: bias, site: site)
  }

  public func xor(_ a: Bits, _ b: Bits, site: GateSite) async throws -> Bits {
    try await inner.xor(a, b, site: site)
  }

  public func not(_ a: Bits, site: GateSite) async throws -> Bits {
    try await inner.not(a, site: site)
  }

  public func gather(bits: Bits, indices: [Int], shape: [Int], site: GateSite) async throws -> Bits
  {
    try await inner.gather(bits: bits, indices: indices, shape: shape, site: site)
  }

  public func linear(_ x: Value, weight: WeightID, site: GateSite) async throws -> Value {
    let out = try await inner.linear(x, weight: weight, site: site)
    tally.add(.linear, site, elements: count(out), bits: format(of: out).bits)
    return out
  }

  public func tableProduct(_ x: Value, table: WeightID, site: GateSite) async throws -> Value {
    let out = try await inner.tableProduct(x, table: table, site: site)
    tally.add(.linear, site, elements: count(out), bits: format(of: out).bits)
    return out
  }

  public func multiplyWeight(_ x: Value, weight: WeightID, site: GateSite) async throws -> Value {
    let out = try await inner.multiplyWeight(x, weight: weight, site: site)
    tally.add(.multiplyWeight, site, elements: count(out), bits: format(of: out).bits)
    return out
  }

  public func multiply(_ a: Value, _ b: Value, site: GateSite) async throws -> Value {
    let out = try await inner.multiply(a, b, site: site)
    tally.add(.multiply, site, elements: count(out), bits: format(of: out).bits)
    return out
  }

  public func square(_ x: Value, site: GateSite) async throws -> Value {
    let out = try await inner.square(x, site: site)
    tally.add(.multiply, site, elements: count(out), bits: format(of: out).bits)
    return out
  }

  public func matmul(_ a: Value, _ b: Value, transposeB: Bool, site: GateSite) async throws -> Value
  {
    let out = try await inner.matmul(a, b, transposeB: transposeB, site: site)
    tally.add(.matmul, site, elements: count(out), bits: format(of: out).bits)
    return out
  }

  public func truncate(
    _ x: Value, kind: TruncationKind, shift: Int, outputBits: Int, site: GateSite
  ) async throws
    -> Value
  {
    let out = try await inner.truncate(
      x, kind: kind, shift: shift, outputBits: outputBits, site: site)
    tally.add(.truncate, site, elements: count(x), bits: format(of: x).bits)
    return out
  }

  public func compare(_ x: Value, offsets: [Int64], site: GateSite) async throws -> Bits {
    let out = try await inner.compare(x, offsets: offsets, site: site)
    tally.add(
      .compare, site, elements: count(x), bits: format(of: x).bits,
      evaluations: count(x) * offsets.count)
    return out
  }

  public func select(_ bits: Bits, _ x: Value, site: GateSite) async throws -> Value {
    let out = try await inner.select(bits, x, site: site)
    tally.add(.select, site, elements: count(x), bits: format(of: x).bits)
    return out
  }

  public func lookup(_ x: Value, table: LookupTable, site: GateSite) async throws -> Value {
    let out = try await inner.lookup(x, table: table, site: site)
    tally.add(.lookup, site, elements: count(x), bits: table.inputBits)
    return out
  }

  public func sineSeries(_ x: Value, coefficients: [Double], outputScale: Int, site: GateSite)
    async throws -> Value
  {
    let out = try await inner.sineSeries(
      x, coefficients: coefficients, outputScale: outputScale, site: site)
    tally.add(.sine, site, elements: count(x), bits: format(of: x).bits)
    return out
  }

  public func selectUnopened(_ bits: Bits, _ x: Value, site: GateSite) async throws -> Value {
    let out = try await inner.selectUnopened(bits, x, site: site)
    tally.add(.selectUnopened, site, elements: count(x), bits: format(of: x).bits)
    return out
  }

  public func lookups(_ inputs: [Value], tables: [LookupTable], open: Bool, site: GateSite)
    async throws -> [Value]
  {
    let out = try await inner.lookups(inputs, tables: tables, open: open, site: site)
    for (i, (x, table)) in zip(inputs, tables).enumerated() {
      tally.add(.lookup, site, elements: count(x), bits: table.inputBits, calls: i == 0 ? 1 : 0)
    }
    return out
  }

  public func open(_ x: Value, site: GateSite) async throws -> Value {
    let out = try await inner.open(x, site: site)
    tally.add(.open, site, elements: count(x), bits: format(of: x).bits)
    return out
  }

  public func reveal(_ x: Value, site: GateSite) async throws -> [Int64] {
    let out = try await inner.reveal(x, site: site)
    tally.add(.reveal, site, elements: count(x), bits: format(of: x).bits)
    return out
  }

  public func assertRange(_ x: Value, _ range: ClosedRange<Int64>, site: GateSite) async throws {
    try await inner.assertRange(x, range, site: site)
  }
}

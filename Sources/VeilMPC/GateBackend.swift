// The gate back end a recipe is written over (DESIGN.md §9 "Interfaces"). Every operation is
// either local (free on masked wires and on shares: each party applies it to its own value,
// the dealer to the masks) or maps 1:1 onto one gate of VeilFSS or one Beaver-style product:
//
// | back-end call            | secure implementation                                      |
// |--------------------------|------------------------------------------------------------|
// | add, subtract, addConstant, multiplyConstant(s), gather, concatenate, sumLastAxis,      |
// | reduceRing, withScale, addWeight, weightRows, constant, xor, not, gather/concat bits   |
// |                          | local (no key, no round)                                   |
// | tokenEmbedding           | one-hot × Ê with a client mask (DESIGN §3), one opening     |
// | clientInput              | x + r from the client, r in its key stream (no round)      |
// | linear, tableProduct,    | fixed weight mask r_W (DESIGN §3), one opening              |
// | multiplyWeight           |                                                            |
// | multiply, square, matmul | Beaver-style product of two masked wires, one opening       |
// | truncate                 | `TruncationGate` (kinds reduce / slack / signExtend)        |
// | compare                  | `DReLUGate` (one DPF key, several public offsets)           |
// | select                   | `SelectGate`                                               |
// | lookup                   | `LUTGate` (public table)                                   |
// | sineSeries               | dealer-shared β·cos(kr), β·sin(kr) (SecFormer), one opening |
// | selectUnopened, lookups, open | the same gates with openings deferred and merged      |
// | reveal                   | open to the client only                                    |
// | assertRange              | nothing (only the clear back end can see values)           |
//
// Values carry their ring width n and scale f (`WireFormat`); a gate refuses operands whose
// formats do not fit it, so the clear back end rejects exactly what the gates cannot do.
//
// A recipe awaits its calls one after another in an order that depends only on public data
// (shapes, parameters, the mask's valid length), so the dealer and both parties walk the same
// sequence of gates; `GateSite.gate` labels group statistics and need not be unique (key
// records add an ordinal). Independent gates share rounds only through the batched calls
// (`lookups`) and deferred openings (`selectUnopened` … `open`).
import VeilFSS
import VeilModels

/// The ring width and fixed-point scale of a wire.
public struct WireFormat: Sendable, Hashable, CustomStringConvertible {
  /// n: values live in Z_2^n (signed reading).
  public var bits: Int
  /// f: the value x stands for the real x / 2^f.
  public var scale: Int

  public init(bits: Int, scale: Int) {
    self.bits = bits
    self.scale = scale
  }

  public var description: String { "n=\(bits) f=\(scale)" }
}

/// Where a gate sits: the model op it belongs to and a stable label for the gate inside the
/// recipe (e.g. "gelu.clip"). Key records and value-range statistics are tagged with it.
public struct GateSite: Sendable, Hashable, CustomStringConvertible {
  public var op: OpSite
  public var gate: String

  public init(op: OpSite, gate: String) {
    self.op = op
    self.gate = gate
  }

  public var description: String { "\(op) \(gate)" }
}

/// A public lookup table: 2^inputBits signed entries, read at an unsigned index in
/// Z_2^inputBits; the output is a wire of format `output`.
public struct LookupTable: Sendable, Equatable, CustomStringConvertible {
  /// A stable name (it goes into graph digests and key-record labels).
  public let name: String
  public let inputBits: Int
  public let output: WireFormat
  /// Entry j is the signed integer output for index j, already in the output ring's range.
  public let entries: [Int64]

  public init(name: String, inputBits: Int, output: WireFormat, entries: [Int64]) throws(MPCError) {
    guard (1...24).contains(inputBits) else {
      throw .invalidParameters(
        "table \(name): lookup tables take 1…24 input bits, not \(inputBits)")
    }
    guard entries.count == 1 << inputBits else {
      throw .invalidParameters(
        "table \(name): needs \(1 << inputBits) entries, has \(entries.count)")
    }
    let half = output.bits == 64 ? Int64.max : Int64(1) << Int64(output.bits - 1)
    if output.bits < 64, let bad = entries.first(where: { $0 >= half || $0 < -half }) {
      throw .invalidParameters("table \(name): entry \(bad) does not fit \(output.bits) bits")
    }
    self.name = name
    self.inputBits = inputBits
    self.output = output
    self.entries = entries
  }

  public var description: String { "\(name) (\(inputBits) → \(output))" }
}

/// The operations a recipe is written over. A fixed-point in-the-clear back end computes them
/// on plain integers; the dealer and party back ends on masks and masked values. All of them
/// must give the same integers (the clear one defines what the secure run computes).
///
/// Semantics common to all back ends:
/// - A value of format (n, f) holds integers mod 2^n; "signed" means the reading in
///   [−2^(n−1), 2^(n−1)). Arithmetic wraps mod 2^n like the secure run does; only the clear
///   back end can notice a wrap, and it counts it.
/// - Shapes are public; bits tensors (`Bits`) hold masked 0/1 values.
public protocol GateBackend: Sendable {
  /// A wire: a tensor of ring elements with its format.
  associatedtype Value: Sendable
  /// A tensor of bits (comparison results).
  associatedtype Bits: Sendable

  func shape(of value: Value) -> [Int]
  func format(of value: Value) -> WireFormat
  func shape(of bits: Bits) -> [Int]
  /// The ring width and scale the back end encodes inputs and weights with.
  var inputFormat: WireFormat { get }

  // MARK: Inputs

  /// Rows of the embedding table for the client's tokens, [tokens, d], at `inputFormat`.
  /// Secure: one-hot × Ê with a client-side mask; the servers never see the ids.
  func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: GateSite) async throws -> Value

  /// A secret input of the client's (a hidden-length run's key mask, 1/count): the client
  /// sends x + r to both parties, r from its key stream, and the wire carries mask r. `values`
  /// (signed integers of `format`) are given only where they may be seen (the clear back end);
  /// the others ignore them.
  func clientInput(_ values: [Int64]?, shape: [Int], format: WireFormat, site: GateSite)
    async throws -> Value

  /// Rows of a (secret) weight at public indices, [rows.count, d]. Local.
  func weightRows(_ table: WeightID, rows: [Int], site: GateSite) async throws -> Value

  /// A public constant tensor (mask 0). `values` are signed integers of `format`.
  func constant(_ values: [Int64], shape: [Int], format: WireFormat, site: GateSite) async throws
    -> Value

  // MARK: Local operations

  /// a + b (same format and shape).
  func add(_ a: Value, _ b: Value, site: GateSite) async throws -> Value
  /// a − b (same format and shape).
  func subtract(_ a: Value, _ b: Value, site: GateSite) async throws -> Value
  /// x + c for a public integer c at x's scale.
  func addConstant(_ x: Value, _ constant: Int64, site: GateSite) async throws -> Value
  /// x · c for a public integer c standing for c / 2^fractionalBits: the scale grows by
  /// `fractionalBits`.
  func multiplyConstant(_ x: Value, _ constant: Int64, fractionalBits: Int, site: GateSite)
    async throws -> Value
  /// x ⊙ c for public integers c (one per element of x), scale grows by `fractionalBits`.
  func multiplyConstants(_ x: Value, _ constants: [Int64], fractionalBits: Int, site: GateSite)
    async throws
    -> Value
  /// The same integers read at another scale (no arithmetic).
  func withScale(_ x: Value, _ scale: Int, site: GateSite) async throws -> Value
  /// out[i] = x[indices[i]] (flat indices), with the given shape: reshape, transpose, slice
  /// and broadcast are all gathers.
  func gather(_ x: Value, indices: [Int], shape: [Int], site: GateSite) async throws -> Value
  /// Concatenation along `axis` (same format).
  func concatenate(_ parts: [Value], axis: Int, site: GateSite) async throws -> Value
  /// Sums the last axis: [..., k] → [..., 1].
  func sumLastAxis(_ x: Value, site: GateSite) async throws -> Value
  /// x mod 2^bits for bits ≤ n (drops the high bits; the scale stays).
  func reduceRing(_ x: Value, bits: Int, site: GateSite) async throws -> Value
  /// x + b for a bias weight b [d] broadcast over the rows of x [..., d] (same scale).
  func addWeight(_ x: Value, bias: WeightID, site: GateSite) async throws -> Value
  /// a ⊕ b.
  func xor(_ a: Bits, _ b: Bits, site: GateSite) async throws -> Bits
  /// ¬a.
  func not(_ a: Bits, site: GateSite) async throws -> Bits
  /// out[i] = bits[indices[i]].
  func gather(bits: Bits, indices: [Int], shape: [Int], site: GateSite) async throws -> Bits

  // MARK: Gates

  /// x·Wᵀ for x [T, in] and a weight W [out, in]; the scale grows by the weight scale.
  func linear(_ x: Value, weight: WeightID, site: GateSite) async throws -> Value
  /// x·W for x [..., rows] and a weight table W [rows, d] (a secret one-hot row times the
  /// embedding table: a generated token's embedding); the scale grows by the weight scale.
  func tableProduct(_ x: Value, table: WeightID, site: GateSite) async throws -> Value
  /// x ⊙ w for a weight vector w [d] broadcast over the rows of x [..., d]; the scale grows
  /// by the weight scale.
  func multiplyWeight(_ x: Value, weight: WeightID, site: GateSite) async throws -> Value
  /// a ⊙ b for two secret values of one ring and shape; scales add.
  func multiply(_ a: Value, _ b: Value, site: GateSite) async throws -> Value
  /// x ⊙ x; the scale doubles.
  func square(_ x: Value, site: GateSite) async throws -> Value
  /// Batched a·b (or a·bᵀ) over the last two axes, two secret operands; scales add.
  func matmul(_ a: Value, _ b: Value, transposeB: Bool, site: GateSite) async throws -> Value
  /// An exact truncation (`TruncationGate` semantics):
  /// - `.reduce`: ⌊x/2^s⌋ in Z_2^(n−s) (`outputBits` must be n − s), exact for every x;
  /// - `.slack`: ⌊x/2^s⌋ in Z_2^outputBits (outputBits ≤ n), exact when |x| < 2^(n−2);
  /// - `.signExtend` (s = 0): x read as signed n-bit, in the wider Z_2^outputBits.
  /// The scale drops by s.
  func truncate(_ x: Value, kind: TruncationKind, shift: Int, outputBits: Int, site: GateSite)
    async throws
    -> Value
  /// DReLU against public offsets: bit [x − c_i ≥ 0] (signed in Z_2^n) for each offset c_i.
  /// The result has x's shape with one more axis of offsets.count (element-major, as
  /// `DReLUGate` lays it out).
  func compare(_ x: Value, offsets: [Int64], site: GateSite) async throws -> Bits
  /// d · x (same shape); the format of x.
  func select(_ bits: Bits, _ x: Value, site: GateSite) async throws -> Value
  /// table[x mod 2^inputBits] for x in Z_2^table.inputBits; the format of the table output.
  func lookup(_ x: Value, table: LookupTable, site: GateSite) async throws -> Value
  /// Σ_k coefficients[k − 1]·sin(2πk·x/2^m) for x in Z_2^m (a whole turn is 2^m; x's scale is
  /// not read), at (inputFormat.bits, outputScale): SecFormer's secure sine with the mask
  /// uniform modulo the period (`SineSeries`), one opening. The clear back end returns the
  /// rounded series; the secure result is within (Σ_k |β_k| + K)·2^⌈S/2⌉ + K units of it at
  /// output scale S (products of rounded public sines and rounded shares).
  func sineSeries(_ x: Value, coefficients: [Double], outputScale: Int, site: GateSite)
    async throws -> Value

  // MARK: Batched and unopened gates (fewer rounds, fewer bytes; same integers)

  /// `select` whose output stays unopened at the parties (additive shares of the masked
  /// value): no round and no bytes. An unopened value can only be added to or subtracted
  /// from another unopened value, relabelled (`withScale`) or opened.
  func selectUnopened(_ bits: Bits, _ x: Value, site: GateSite) async throws -> Value
  /// Independent lookups, inputs[i] into tables[i], in the two rounds of one lookup; with
  /// `open` false the outputs stay unopened (one round).
  func lookups(_ inputs: [Value], tables: [LookupTable], open: Bool, site: GateSite) async throws
    -> [Value]
  /// Opens an unopened value (one round at the parties); an opened one is returned as it is.
  func open(_ x: Value, site: GateSite) async throws -> Value
  /// Opens x to the client (the signed integers).
  func reveal(_ x: Value, site: GateSite) async throws -> [Int64]

  /// A bound the recipe relies on: every signed element must lie in `range`. The clear back
  /// end counts violations (and records them under `site`); secure back ends cannot see
  /// values and do nothing.
  func assertRange(_ x: Value, _ range: ClosedRange<Int64>, site: GateSite) async throws
}

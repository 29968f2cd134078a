// The public shape of a run's graph (DESIGN §7): the model walked by the recipe on zero wires —
// no keys, no values, only the gate calls in order — so that every role can compute, before a
// run starts, what the dealer's streams will hold. Each call's kind, site, shapes, formats and
// gate parameters (truncation kind and shift, comparison offsets, table widths) go into a
// canonical digest that the stream headers and P0's and P1's agreement carry, and the walk
// counts the key records of each party's and the client's stream (their headers' op count).
// Two builds that would walk different graphs disagree here, before any key is used.
import Foundation
import VeilFSS
import VeilModels
import VeilNet

/// A run graph's digest and key-record counts.
public struct GraphCensus: Sendable, Equatable {
  /// H(every gate call in order), canonical and versioned.
  public let digest: [UInt8]
  /// Key records in each party's stream, and in the client's.
  public let partyRecords: Int
  public let clientRecords: Int

  /// The census of `model` (the graph of `manifest`'s setup) at `tokens` tokens, `valid` of
  /// them real; walked once per process and kept.
  static func of(
    _ model: any TransformerGraph, manifest: SetupManifest, tokens: Int, valid: Int,
    generation: GenerationPlan? = nil, hidesLength: Bool = false
  ) async throws -> GraphCensus {
    var key = CanonicalDigest("veil.census-key/2")
    key.bytes(manifest.modelDigest)
    key.int(tokens)
    key.int(valid)
    key.int(generation?.newTokens ?? 0)
    key.int(generation?.cache == false ? 0 : 1)
    key.int(hidesLength ? 1 : 0)
    let id = key.finish()
    if let known = cache.withLock({ $0[id] }) { return known }
    let parameters = manifest.parameters
    let census = try await walking(manifest) {
      try await ModelRun.walk(
        model, parameters, tokens: tokens, valid: valid, generation: generation,
        hidesLength: hidesLength, $0)
    }
    cache.withLock { known in
      if known.count >= 256 { known.removeAll() }
      known[id] = census
    }
    return census
  }

  /// The census of `body` walked over zero wires at `manifest`'s ring and weight shapes.
  static func walking(
    _ manifest: SetupManifest, _ body: (any MaskedWireBackend) async throws -> Void
  ) async throws -> GraphCensus {
    let walker = CensusWalker(manifest)
    try await body(walker)
    return walker.finish()
  }

  private static let cache = Locked<[[UInt8]: GraphCensus]>([:])
}

/// Walks the recipe like the dealer does, on zero masks, recording each gate call and counting
/// the records the dealer would ship (one per call; elementwise gates one per key chunk).
final class CensusWalker: MaskedWireBackend, @unchecked Sendable {
  // @unchecked: `state` is only touched under its lock; the recipe awaits gates one by one.
  let inputFormat: WireFormat
  let holdsMaskedValues = false
  let wireWeights: RunWeights
  private let state = Locked(
    (digest: CanonicalDigest("veil.graph-census/1"), party: 0, client: 0))

  /// A walker at `manifest`'s ring over zero weights of its shapes, each made only when a
  /// local op reads it (a bias, position rows).
  init(_ manifest: SetupManifest) {
    inputFormat = WireFormat(
      bits: manifest.parameters.ringBits, scale: manifest.parameters.fractionalBits)
    var zeros: [WeightID: DerivedWeight] = [:]
    for tensor in manifest.tensors {
      zeros[WeightID(tensor.name)] = DerivedWeight(
        count: tensor.count, chunkSeeds: Array(repeating: [], count: tensor.chunkCount),
        negated: false)
    }
    wireWeights = manifest.runWeights(values: [:], derived: zeros)
  }

  func finish() -> GraphCensus {
    state.withLock { s in
      var digest = s.digest
      digest.int(s.party)
      digest.int(s.client)
      return GraphCensus(digest: digest.finish(), partyRecords: s.party, clientRecords: s.client)
    }
  }

  /// Records one call: its kind, site, input shapes and formats, gate parameters; and the
  /// records it ships to each party (and to the client).
  private func record(
    _ kind: GateKind, _ site: GateSite, inputs: [WireTensor], numbers: [Int] = [],
    partyRecords: Int, clientRecords: Int = 0
  ) {
    // One little-endian word per number, hashed in one piece (a lookup table has thousands).
    var numbers = numbers
    for x in inputs.reversed() {
      numbers =
        [x.shape.count] + x.shape + [x.format.bits, x.format.scale, x.opened ? 1 : 0]
        + numbers
    }
    let words = ([site.op.layer, site.op.index, inputs.count] + numbers).map {
      UInt64(bitPattern: Int64($0)).littleEndian
    }
    state.withLock { s in
      s.digest.string(kind.rawValue)
      s.digest.string(site.op.kind.rawValue)
      s.digest.string(site.gate)
      s.digest.int(words.count)
      words.withUnsafeBytes { s.digest.raw($0) }
      s.party += partyRecords
      s.client += clientRecords
    }
  }

  private func zeros(_ format: WireFormat, _ shape: [Int], opened: Bool = true) -> WireTensor {
    WireTensor(format, shape, [UInt64](repeating: 0, count: shape.reduce(1, *)), opened: opened)
  }

  private func chunks(_ count: Int) -> Int { elementChunks(count).count }

  func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: GateSite) async throws
    -> WireTensor
  {
    let (t, v, d, _) = try embeddingShape(tokens, table: table, site)
    record(
      .embedding, site, inputs: [], numbers: [t, v, d], partyRecords: 1, clientRecords: 1)
    return zeros(inputFormat, [t, d])
  }

  func clientInput(_ values: [Int64]?, shape: [Int], format: WireFormat, site: GateSite)
    async throws -> WireTensor
  {
    record(
      .input, site, inputs: [], numbers: shape + [format.bits, format.scale], partyRecords: 0,
      clientRecords: 1)
    return zeros(format, shape)
  }

  func linear(_ x: WireTensor, weight: WeightID, site: GateSite) async throws -> WireTensor {
    let (_, _, outputs, format) = try linearShape(x, weight: weight, site)
    record(.linear, site, inputs: [x], numbers: [outputs], partyRecords: 1)
    return zeros(format, Array(x.shape.dropLast()) + [outputs])
  }

  func tableProduct(_ x: WireTensor, table: WeightID, site: GateSite) async throws -> WireTensor {
    let (_, _, outputs, format) = try linearShape(x, weight: table, transposed: false, site)
    record(.linear, site, inputs: [x], numbers: [outputs, 0], partyRecords: 1)
    return zeros(format, Array(x.shape.dropLast()) + [outputs])
  }

  func multiplyWeight(_ x: WireTensor, weight: WeightID, site: GateSite) async throws
    -> WireTensor
  {
    let format = try weightProductFormat(x, weight: weight, site)
    record(.multiplyWeight, site, inputs: [x], partyRecords: 1)
    return zeros(format, x.shape)
  }

  func multiply(_ a: WireTensor, _ b: WireTensor, site: GateSite) async throws -> WireTensor {
    let format = try productFormat(a, b, site)
    record(.multiply, site, inputs: [a, b], partyRecords: 1)
    return zeros(format, a.shape)
  }

  func square(_ x: WireTensor, site: GateSite) async throws -> WireTensor {
    let format = try productFormat(x, x, site)
    record(.multiply, site, inputs: [x], numbers: [2], partyRecords: 1)
    return zeros(format, x.shape)
  }

  func matmul(_ a: WireTensor, _ b: WireTensor, transposeB: Bool, site: GateSite) async throws
    -> WireTensor
  {
    let s = try matmulShape(a, b, transposeB: transposeB, site)
    record(.matmul, site, inputs: [a, b], numbers: [transposeB ? 1 : 0], partyRecords: 1)
    return zeros(s.format, s.shape)
  }

  func truncate(
    _ x: WireTensor, kind: TruncationKind, shift: Int, outputBits: Int, site: GateSite
  ) async throws -> WireTensor {
    let format = try truncatedFormat(x, shift: shift, outputBits: outputBits, site)
    record(
      .truncate, site, inputs: [x], numbers: [Int(kind.rawValue), shift, outputBits],
      partyRecords: chunks(x.count))
    return zeros(format, x.shape)
  }

  func compare(_ x: WireTensor, offsets: [Int64], site: GateSite) async throws -> WireBits {
    try requireOpened(x, site: site)
    guard x.format.bits >= 2, !offsets.isEmpty else {
      throw MPCError.formatMismatch(site, "DReLU needs n ≥ 2 and offsets")
    }
    record(
      .compare, site, inputs: [x], numbers: offsets.map { Int($0) },
      partyRecords: chunks(x.count))
    return WireBits(
      shape: x.shape + [offsets.count],
      bits: [UInt8](repeating: 0, count: x.count * offsets.count))
  }

  func select(_ bits: WireBits, _ x: WireTensor, opened: Bool, site: GateSite) async throws
    -> WireTensor
  {
    try checkSelect(bits, x, site)
    record(opened ? .select : .selectUnopened, site, inputs: [x], partyRecords: chunks(x.count))
    return zeros(x.format, x.shape, opened: opened)
  }

  func sineSeries(_ x: WireTensor, coefficients: [Double], outputScale: Int, site: GateSite)
    async throws -> WireTensor
  {
    try requireOpened(x, site: site)
    try SineSeries.validate(
      angleBits: x.format.bits, terms: coefficients.count, outputScale: outputScale,
      ringBits: inputFormat.bits, site)
    record(
      .sine, site, inputs: [x],
      numbers: [outputScale] + coefficients.map { Int(Int64(bitPattern: $0.bitPattern)) },
      partyRecords: chunks(x.count))
    return zeros(WireFormat(bits: inputFormat.bits, scale: outputScale), x.shape)
  }

  func lookups(_ inputs: [WireTensor], tables: [LookupTable], open: Bool, site: GateSite)
    async throws -> [WireTensor]
  {
    try checkLookups(inputs, tables, site)
    var outputs: [WireTensor] = []
    for (x, table) in zip(inputs, tables) {
      var numbers = [table.inputBits, table.output.bits, table.output.scale, open ? 1 : 0]
      numbers += table.entries.map { Int($0) }
      record(.lookup, site, inputs: [x], numbers: numbers, partyRecords: chunks(x.count))
      outputs.append(zeros(table.output, x.shape, opened: open))
    }
    return outputs
  }

  func open(_ x: WireTensor, site: GateSite) async throws -> WireTensor {
    record(.open, site, inputs: [x], partyRecords: 0)
    return WireTensor(x.format, x.shape, x.values)
  }

  func reveal(_ x: WireTensor, site: GateSite) async throws -> [Int64] {
    try requireOpened(x, site: site)
    record(.reveal, site, inputs: [x], partyRecords: 0, clientRecords: 1)
    return []
  }
}

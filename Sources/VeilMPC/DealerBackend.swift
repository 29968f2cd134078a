// The dealer's back end (DESIGN §4, engine 3): it walks the same graph as the parties, but its
// values are the wire masks r. For every gate it draws the output mask, generates both
// parties' keys (VeilFSS gates, or share bundles for the products of DESIGN §3) and appends
// them to their key streams; the client's stream gets the seeds of its embedding mask and the
// output mask. It never sees an input, a weight or a masked value.
import Foundation
import VeilFSS
import VeilModels
import VeilRing

public actor DealerBackend: MaskedWireBackend {
  public nonisolated let inputFormat: WireFormat
  nonisolated let holdsMaskedValues = false
  /// The weight masks r_W: what the dealer's wires carry where a weight enters.
  nonisolated let wireWeights: RunWeights
  private var weights: RunWeights { wireWeights }
  private let prg: TreePRG
  private var random: SecureRandom
  private let streams: DealerKeyStreams
  private let tally: CostTally
  private var op = 0
  private var clientOp = 0
  private let clock = ContinuousClock()

  /// Stream indices in `DealerKeyStreams`.
  static let clientStream = 2

  /// `masks` are the weight masks r_W reduced to the run's ring (kept across runs).
  init(
    masks: RunWeights, format: WireFormat, prg: TreePRG, streams: DealerKeyStreams, tally: CostTally
  ) throws {
    inputFormat = format
    wireWeights = masks
    self.prg = prg
    random = try SecureRandom()
    self.streams = streams
    self.tally = tally
  }

  // MARK: Emitting keys

  /// Times `make`, appends the parties' records (and the client's, if any) under the next op.
  private func gate<Output>(
    _ kind: GateKind, _ site: GateSite, elements: Int,
    _ make: (inout SecureRandom) throws -> (
      records: ([UInt8], [UInt8]), client: [UInt8]?, output: Output
    )
  ) async throws -> Output {
    let start = clock.now
    let made = try make(&random)
    var cost = GateCost()
    cost.calls = 1
    cost.elements = elements
    cost.seconds = (clock.now - start).seconds
    cost.keyBytes = made.records.0.count + made.records.1.count
    tally.add(kind, site, cost)
    var records = [
      (stream: 0, op: op, record: made.records.0), (stream: 1, op: op, record: made.records.1),
    ]
    if let client = made.client {
      records.append((Self.clientStream, clientOp, client))
      clientOp += 1
    }
    op += 1
    try await streams.append(records)
    return made.output
  }

  /// An elementwise FSS gate over `count` elements, one record pair per chunk of
  /// `elementChunks(count)`: `make` builds a chunk's two records from its element range.
  /// `makerThreads` chunks are made at once, each from its own fork of the dealer's generator
  /// (the parties wait while the dealer works, so its cores are free), and shipped in order
  /// (possibly waiting for a pipe) before the next are made, so no one holds the keys of a
  /// whole large gate at once. `make` is told which party's shares to give as a seed
  /// (`SeededSharing`): the record's op index alternates it, so both parties save alike and
  /// every run of a graph has the same key bytes.
  private func chunkedGate(
    _ kind: GateKind, _ site: GateSite, count: Int, elements: Int,
    _ make:
      @Sendable (Range<Int>, inout SecureRandom, _ seededParty: Int) throws -> (
        [UInt8], [UInt8]
      )
  ) async throws {
    var cost = GateCost()
    cost.calls = 1
    cost.elements = elements
    let chunks = elementChunks(count)
    for first in stride(from: 0, to: chunks.count, by: Self.makerThreads) {
      let batch = Array(chunks[first..<min(first + Self.makerThreads, chunks.count)])
      let start = clock.now
      let randoms = try batch.map { _ in try random.fork() }
      let firstOp = op
      let made = try concurrentMap(batch.count) { i in
        var childRandom = randoms[i]
        return try make(batch[i], &childRandom, (firstOp + i) & 1)
      }
      cost.seconds += (clock.now - start).seconds
      for records in made {
        cost.keyBytes += records.0.count + records.1.count
        try await streams.append([(0, op, records.0), (1, op, records.1)])
        op += 1
      }
    }
    tally.add(kind, site, cost)
  }

  /// Key chunks the dealer makes at once: one per core, at most 4 (each holds a chunk's keys).
  static let makerThreads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 4))

  private static func serialized(_ keys: (ShareBundle, ShareBundle)) -> ([UInt8], [UInt8]) {
    (keys.0.serialized(party: 0), keys.1.serialized(party: 1))
  }

  /// Finishes the streams (the final segments).
  func finish() async throws { try await streams.ship(final: true) }

  // MARK: Inputs

  public func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: GateSite) async throws
    -> WireTensor
  {
    let (t, v, d, n) = try embeddingShape(tokens, table: table, site)
    let e = try weights.plain(table)
    return try await gate(.embedding, site, elements: t * d) { random in
      let keys = Self.dealEmbedding(t: t, v: v, d: d, bits: n, table: e, random: &random)
      return (
        Self.serialized((keys.party0, keys.party1)), keys.client.serialized(party: 2),
        WireTensor(inputFormat, [t, d], keys.outputMask)
      )
    }
  }

  /// A client input's mask r goes to the client alone; the parties hold no key for it.
  public func clientInput(_ values: [Int64]?, shape: [Int], format: WireFormat, site: GateSite)
    async throws -> WireTensor
  {
    let count = shape.reduce(1, *)
    let start = clock.now
    let mask = random.elements(count, bits: format.bits)
    let record = ShareBundle(bits: format.bits, explicit: [mask]).serialized(party: 2)
    var cost = GateCost()
    cost.calls = 1
    cost.elements = count
    cost.seconds = (clock.now - start).seconds
    tally.add(.input, site, cost)
    try await streams.append([(Self.clientStream, clientOp, record)])
    clientOp += 1
    return WireTensor(format, shape, mask)
  }

  /// The secure embedding's keys (DESIGN §3): the client's mask a = G(s0) + G(s1) of its
  /// one-hot rows, c = a·r_E + r and its shares. The client gets s0 and s1; P_b gets s_b for
  /// [a]_b. P1's c_1 comes from a third seed that the client never sees: were it expanded from
  /// s1, the client and P0 together would know c, hence ê·E for their own ê, and recover E
  /// after ≈ V/T runs.
  static func dealEmbedding(
    t: Int, v: Int, d: Int, bits n: Int, table e: [UInt64], random: inout SecureRandom
  ) -> (party0: ShareBundle, party1: ShareBundle, client: ShareBundle, outputMask: [UInt64]) {
    let (s0, s1, sc) = (random.bytes(16), random.bytes(16), random.bytes(16))
    // Seeds come from the dealer's CSPRNG (16 bytes each), so expansion cannot fail.
    let expand = { (seed: [UInt8], length: Int) in
      (try? ShareBundle.expand(seed: seed, lengths: [length], bits: n)[0]) ?? []
    }
    let a = RingMath.add(expand(s0, t * v), expand(s1, t * v), bits: n)
    let r = random.elements(t * d, bits: n)
    let c = RingMath.add(
      RingMath.matmul(a, e, batch: 1, m: t, k: v, n: d, transposeB: false, bits: n), r, bits: n)
    let k0 = ShareBundle(
      bits: n, seed: s0, seededLengths: [t * v],
      explicit: [RingMath.subtract(c, expand(sc, t * d), bits: n)])
    let k1 = ShareBundle(
      bits: n,
      seeded: [SeededParts(seed: s1, lengths: [t * v]), SeededParts(seed: sc, lengths: [t * d])],
      explicit: [])
    let client = ShareBundle(bits: 64, explicit: [words(s0), words(s1)])
    return (k0, k1, client, r)
  }

  // MARK: Products

  public func linear(_ x: WireTensor, weight: WeightID, site: GateSite) async throws -> WireTensor {
    try await weightProduct(x, weight, transposed: true, site)
  }

  public func tableProduct(_ x: WireTensor, table: WeightID, site: GateSite) async throws
    -> WireTensor
  {
    try await weightProduct(x, table, transposed: false, site)
  }

  /// r_x·r_W' + r for the product x·W' with the fixed weight mask, W' = Wᵀ or W.
  private func weightProduct(
    _ x: WireTensor, _ weight: WeightID, transposed: Bool, _ site: GateSite
  ) async throws -> WireTensor {
    let (rows, inner, outputs, format) = try linearShape(
      x, weight: weight, transposed: transposed, site)
    let n = x.format.bits
    let mask = try weights.operand(weight, transposed: transposed)
    let shape = Array(x.shape.dropLast()) + [outputs]
    return try await gate(.linear, site, elements: rows * outputs) { random in
      let r = random.elements(rows * outputs, bits: n)
      let product = RingMath.matmul(
        x.values, mask.values, batch: 1, m: rows, k: inner, n: outputs,
        transposeB: mask.transposeB, bits: n)
      let c = RingMath.add(product, r, bits: n)
      return (
        Self.serialized(try ShareBundle.deal([x.values, c], bits: n, random: &random)), nil,
        WireTensor(format, shape, r)
      )
    }
  }

  public func multiplyWeight(_ x: WireTensor, weight: WeightID, site: GateSite) async throws
    -> WireTensor
  {
    let format = try weightProductFormat(x, weight: weight, site)
    let w = try weights.plain(weight)
    let n = x.format.bits
    return try await gate(.multiplyWeight, site, elements: x.count) { random in
      let r = random.elements(x.count, bits: n)
      let c = RingMath.add(RingMath.hadamard(x.values, w, bits: n), r, bits: n)
      return (
        Self.serialized(try ShareBundle.deal([x.values, c], bits: n, random: &random)), nil,
        WireTensor(format, x.shape, r)
      )
    }
  }

  public func multiply(_ a: WireTensor, _ b: WireTensor, site: GateSite) async throws -> WireTensor
  {
    let format = try productFormat(a, b, site)
    let n = a.format.bits
    return try await gate(.multiply, site, elements: a.count) { random in
      let r = random.elements(a.count, bits: n)
      let c = RingMath.add(RingMath.hadamard(a.values, b.values, bits: n), r, bits: n)
      return (
        Self.serialized(try ShareBundle.deal([a.values, b.values, c], bits: n, random: &random)),
        nil,
        WireTensor(format, a.shape, r)
      )
    }
  }

  public func square(_ x: WireTensor, site: GateSite) async throws -> WireTensor {
    let format = try productFormat(x, x, site)
    let n = x.format.bits
    return try await gate(.multiply, site, elements: x.count) { random in
      let r = random.elements(x.count, bits: n)
      let c = RingMath.add(RingMath.hadamard(x.values, x.values, bits: n), r, bits: n)
      return (
        Self.serialized(try ShareBundle.deal([x.values, c], bits: n, random: &random)), nil,
        WireTensor(format, x.shape, r)
      )
    }
  }

  public func matmul(_ a: WireTensor, _ b: WireTensor, transposeB: Bool, site: GateSite)
    async throws -> WireTensor
  {
    let s = try matmulShape(a, b, transposeB: transposeB, site)
    let n = a.format.bits
    return try await gate(.matmul, site, elements: s.batch * s.m * s.n) { random in
      let r = random.elements(s.batch * s.m * s.n, bits: n)
      let product = RingMath.matmul(
        a.values, b.values, batch: s.batch, m: s.m, k: s.k, n: s.n, transposeB: transposeB, bits: n)
      let c = RingMath.add(product, r, bits: n)
      return (
        Self.serialized(try ShareBundle.deal([a.values, b.values, c], bits: n, random: &random)),
        nil,
        WireTensor(s.format, s.shape, r)
      )
    }
  }

  // MARK: FSS gates

  public func truncate(
    _ x: WireTensor, kind: TruncationKind, shift s: Int, outputBits m: Int, site: GateSite
  ) async throws -> WireTensor {
    let format = try truncatedFormat(x, shift: s, outputBits: m, site)
    let r = random.elements(x.count, bits: m)
    try await chunkedGate(.truncate, site, count: x.count, elements: x.count) {
      [prg] range, random, seededParty in
      let keys = try TruncationGate.gen(
        kind: kind, inputBits: x.format.bits, shift: s, outputBits: m,
        inputMasks: Array(x.values[range]), outputMasks: Array(r[range]), prg: prg, random: &random,
        seededParty: seededParty)
      return (keys.0.serialized(party: 0), keys.1.serialized(party: 1))
    }
    return WireTensor(format, x.shape, r)
  }

  public func compare(_ x: WireTensor, offsets: [Int64], site: GateSite) async throws -> WireBits {
    let n = x.format.bits
    try requireOpened(x, site: site)
    guard n >= 2, !offsets.isEmpty else {
      throw MPCError.formatMismatch(site, "DReLU needs n ≥ 2 and offsets")
    }
    let ring = try Ring(bits: n)
    let k = offsets.count
    let r = random.bits(x.count * k)
    try await chunkedGate(.compare, site, count: x.count, elements: x.count * k) {
      [prg] range, random, _ in
      let keys = try DReLUGate.gen(
        ring: ring, offsets: offsets.map { element($0, bits: n) },
        inputMasks: Array(x.values[range]),
        outputMasks: Array(r[(range.lowerBound * k)..<(range.upperBound * k)]), prg: prg,
        random: &random)
      return (keys.0.serialized(party: 0), keys.1.serialized(party: 1))
    }
    return WireBits(shape: x.shape + [k], bits: r)
  }

  /// The same select key either way: only whether the parties open the output differs.
  func select(_ bits: WireBits, _ x: WireTensor, opened: Bool, site: GateSite)
    async throws -> WireTensor
  {
    try checkSelect(bits, x, site)
    let ring = try Ring(bits: x.format.bits)
    let r = random.elements(x.count, bits: ring.bits)
    try await chunkedGate(
      opened ? .select : .selectUnopened, site, count: x.count, elements: x.count
    ) {
      range, random, seededParty in
      let keys = try SelectGate.gen(
        ring: ring, bitMasks: Array(bits.bits[range]), valueMasks: Array(x.values[range]),
        outputMasks: Array(r[range]), random: &random, seededParty: seededParty)
      return (keys.0.serialized(party: 0), keys.1.serialized(party: 1))
    }
    return WireTensor(x.format, x.shape, r, opened: opened)
  }

  /// Per element: shares of β_k·cos(kr) and β_k·sin(kr) for the angle's mask r (uniform in
  /// the angle ring, so modulo the period) and of the output mask.
  public func sineSeries(
    _ x: WireTensor, coefficients: [Double], outputScale: Int, site: GateSite
  ) async throws -> WireTensor {
    try requireOpened(x, site: site)
    let (m, n) = (x.format.bits, inputFormat.bits)
    try SineSeries.validate(
      angleBits: m, terms: coefficients.count, outputScale: outputScale, ringBits: n, site)
    let table = TurnTable(bits: m)
    let secretScale = outputScale - SineSeries.publicScale(outputScale)
    let r = random.elements(x.count, bits: n)
    try await chunkedGate(.sine, site, count: x.count, elements: x.count) { range, random, _ in
      var cosines: [UInt64] = []
      var sines: [UInt64] = []
      cosines.reserveCapacity(range.count * coefficients.count)
      sines.reserveCapacity(range.count * coefficients.count)
      for i in range {
        SineSeries.maskTerms(
          x.values[i], coefficients: coefficients, table: table, scale: secretScale,
          cosines: &cosines, sines: &sines, bits: n)
      }
      return Self.serialized(
        try ShareBundle.deal([cosines, sines, Array(r[range])], bits: n, random: &random))
    }
    return WireTensor(WireFormat(bits: n, scale: outputScale), x.shape, r)
  }

  /// The records of each lookup in turn (chunked); the parties merge their openings.
  public func lookups(_ inputs: [WireTensor], tables: [LookupTable], open: Bool, site: GateSite)
    async throws -> [WireTensor]
  {
    try checkLookups(inputs, tables, site)
    var outputs: [WireTensor] = []
    for (x, table) in zip(inputs, tables) {
      let ring = try Ring(bits: table.output.bits)
      let r = random.elements(x.count, bits: ring.bits)
      try await chunkedGate(.lookup, site, count: x.count, elements: x.count) {
        [prg] range, random, seededParty in
        let keys = try LUTGate.gen(
          inputBits: table.inputBits, outputRing: ring, inputMasks: Array(x.values[range]),
          outputMasks: Array(r[range]), prg: prg, random: &random, seededParty: seededParty)
        return (keys.0.serialized(party: 0), keys.1.serialized(party: 1))
      }
      outputs.append(WireTensor(table.output, x.shape, r, opened: open))
    }
    return outputs
  }

  /// Opening changes nothing for the masks.
  public func open(_ x: WireTensor, site: GateSite) async throws -> WireTensor {
    WireTensor(x.format, x.shape, x.values)
  }

  /// The output mask goes to the client, who alone can unmask the opened value.
  public func reveal(_ x: WireTensor, site: GateSite) async throws -> [Int64] {
    try requireOpened(x, site: site)
    let start = clock.now
    let record = ShareBundle(bits: x.format.bits, explicit: [x.values]).serialized(party: 2)
    var cost = GateCost()
    cost.calls = 1
    cost.elements = x.count
    cost.seconds = (clock.now - start).seconds
    tally.add(.reveal, site, cost)
    try await streams.append([(Self.clientStream, clientOp, record)])
    clientOp += 1
    return []
  }
}

/// 16 seed bytes as two 64-bit words (little-endian), and back.
func words(_ seed: [UInt8]) -> [UInt64] {
  (0..<2).map { w in (0..<8).reduce(UInt64(0)) { $0 | UInt64(seed[8 * w + $1]) << UInt64(8 * $1) } }
}

func seedBytes(_ words: [UInt64]) -> [UInt8] {
  words.flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> UInt64(8 * $0)) } }
}

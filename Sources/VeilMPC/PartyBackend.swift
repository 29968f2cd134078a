// Party b's back end (DESIGN §4, engine 4): it walks the same graph as the dealer; its values
// are the public masked wires x̂ = x + r. Every gate reads its key record (checked for op,
// kind, width and size), computes this party's share of the masked output and opens it with
// the peer in one full-duplex exchange per round. Linear layers use the once-masked weights of
// DESIGN §3: z_b = x̂·W_b − [r_x]_b·Ŵ + c_b, where [r_x]_b·Ŵ does not depend on the input and
// is counted as offline work, as is re-deriving W_b from the mask seeds. The client's
// masked one-hot rows come in over the client channel, and the output goes back to it still
// masked.
import Foundation
import VeilFSS
import VeilModels
import VeilNet
import VeilRing

public actor PartyBackend: MaskedWireBackend {
  public nonisolated let inputFormat: WireFormat
  nonisolated let holdsMaskedValues = true
  public nonisolated let party: Int
  /// Ŵ = W + r_W, public to both parties: what masked wires carry where a weight enters.
  nonisolated let wireWeights: RunWeights
  private var masked: RunWeights { wireWeights }
  private let share: RunWeights
  private let prg: TreePRG
  private let peer: any Channel
  private let client: any Channel
  private let keys: KeySource
  private let tally: CostTally
  private var op = 0
  private var offlineSeconds = 0.0
  private var recordBytes = 0
  private let clock = ContinuousClock()

  /// `masked` and `share` are Ŵ and W_b reduced to the run's ring (kept across runs).
  init(
    party: Int, masked: RunWeights, share: RunWeights, format: WireFormat, prg: TreePRG,
    peer: any Channel,
    client: any Channel, keys: KeySource, tally: CostTally
  ) {
    inputFormat = format
    self.party = party
    wireWeights = masked
    self.share = share
    self.prg = prg
    self.peer = peer
    self.client = client
    self.keys = keys
    self.tally = tally
  }

  // MARK: Keys, openings, accounting

  /// Runs one gate, charging its time (less waits for the dealer and offline work), bytes and
  /// rounds to `kind` under the site's op kind.
  private func gate<Output>(
    _ kind: GateKind, _ site: GateSite, elements: Int, _ body: () async throws -> Output
  )
    async throws -> Output
  {
    let before = peer.counters
    let waitedBefore = await keys.waitSeconds
    let (offlineBefore, keyBytesBefore) = (offlineSeconds, recordBytes)
    let start = clock.now
    let output = try await body()
    let elapsed = (clock.now - start).seconds
    let waited = await keys.waitSeconds - waitedBefore
    let after = peer.counters
    var cost = GateCost()
    cost.calls = 1
    cost.elements = elements
    cost.offlineSeconds = offlineSeconds - offlineBefore
    cost.seconds = elapsed - waited - cost.offlineSeconds
    cost.bytesSent = after.bytesSent - before.bytesSent
    cost.bytesReceived = after.bytesReceived - before.bytesReceived
    cost.rounds = after.rounds - before.rounds
    cost.keyBytes = recordBytes - keyBytesBefore
    tally.add(kind, site, cost)
    return output
  }

  /// The next key record, which must be this gate's.
  private func record() async throws -> ArraySlice<UInt8> {
    defer { op += 1 }
    let bytes = try await keys.next(opIndex: op)
    recordBytes += bytes.count
    return bytes
  }

  /// Decodes a key record, naming the gate when it does not fit.
  private func key<K>(_ site: GateSite, _ decode: (ArraySlice<UInt8>) throws(FSSError) -> K)
    async throws -> K
  {
    let bytes = try await record()
    do { return try decode(bytes) } catch { throw MPCError.keyMismatch(site, error.description) }
  }

  /// The parts of a share bundle, which must have the given lengths.
  private func shares(_ site: GateSite, bits: Int, lengths: [Int]) async throws -> [[UInt64]] {
    let party = party
    // The declared lengths are compared with the gate's before anything is expanded.
    let bundle = try await key(site) { (bytes) throws(FSSError) in
      try ShareBundle(
        record: bytes, party: party, inputBits: bits, authenticated: true, expected: lengths)
    }
    do { return try bundle.parts() } catch { throw MPCError.keyMismatch(site, error.description) }
  }

  /// Input-independent work, timed apart from the online phase.
  private func offline<R>(_ body: () throws -> R) rethrows -> R {
    let start = clock.now
    defer { offlineSeconds += (clock.now - start).seconds }
    return try body()
  }

  /// Opens additive shares of Z_2^bits with the peer (one round).
  private func open(_ mine: [UInt64], bits: Int, _ site: GateSite) async throws -> [UInt64] {
    try await open([mine], bits: [bits], site)[0]
  }

  /// Opens several tensors of shares, each in its own ring, in one exchange.
  private func open(_ mine: [[UInt64]], bits: [Int], _ site: GateSite) async throws -> [[UInt64]] {
    let message = zip(mine, bits).flatMap { BitPacking.pack($0, bits: $1) }
    let received = try await peer.exchange(message)
    guard received.count == message.count else {
      throw MPCError.protocolViolation(
        "\(peer.peerDescription) sent \(received.count) bytes at \(site), expected \(message.count)"
      )
    }
    var offset = 0
    return zip(mine, bits).map { values, n in
      let length = BitPacking.packedByteCount(count: values.count, bits: n)
      defer { offset += length }
      return RingMath.add(
        values,
        BitPacking.unpack(
          Array(received[offset..<(offset + length)]), bits: n, count: values.count), bits: n)
    }
  }

  /// Opens XOR shares of bits with the peer (one round).
  private func openBits(_ mine: [UInt8], _ site: GateSite) async throws -> [UInt8] {
    let theirs = try await exchange(
      BitPacking.pack(mine.map { UInt64($0) }, bits: 1), count: mine.count, bits: 1, site)
    return zip(mine, theirs).map { $0 ^ UInt8($1) }
  }

  private func exchange(_ message: [UInt8], count: Int, bits: Int, _ site: GateSite) async throws
    -> [UInt64]
  {
    let received = try await peer.exchange(message)
    guard received.count == message.count else {
      throw MPCError.protocolViolation(
        "\(peer.peerDescription) sent \(received.count) bytes at \(site), expected \(message.count)"
      )
    }
    return BitPacking.unpack(received, bits: bits, count: count)
  }

  /// Seconds of input-independent products so far.
  var offlineTotal: Double { offlineSeconds }

  /// Checks that the stream has nothing left for this run (call after the graph).
  func finish() async throws { try await keys.finish(afterOp: op) }

  // MARK: Inputs

  public func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: GateSite) async throws
    -> WireTensor
  {
    let (t, v, d, n) = try embeddingShape(tokens, table: table, site)
    return try await gate(.embedding, site, elements: t * d) {
      let parts = try await shares(site, bits: n, lengths: [t * v, t * d])
      let hat = try masked.plain(table)
      let fixed = offline {
        RingMath.matmul(parts[0], hat, batch: 1, m: t, k: v, n: d, transposeB: false, bits: n)
      }
      let message = try await client.receive()
      guard message.count == BitPacking.packedByteCount(count: t * v, bits: n) else {
        throw MPCError.protocolViolation(
          "the client sent \(message.count) bytes for \(t) masked one-hot rows")
      }
      let oneHot = BitPacking.unpack(message, bits: n, count: t * v)
      let product = RingMath.matmul(
        oneHot, try offline { try share.plain(table) }, batch: 1, m: t, k: v, n: d,
        transposeB: false, bits: n)
      let mine = RingMath.add(RingMath.subtract(product, fixed, bits: n), parts[1], bits: n)
      return WireTensor(inputFormat, [t, d], try await open(mine, bits: n, site))
    }
  }

  /// The client's masked input x + r, the same message to both parties (already "open").
  public func clientInput(_ values: [Int64]?, shape: [Int], format: WireFormat, site: GateSite)
    async throws -> WireTensor
  {
    let count = shape.reduce(1, *)
    return try await gate(.input, site, elements: count) {
      let message = try await client.receive()
      guard message.count == BitPacking.packedByteCount(count: count, bits: format.bits) else {
        throw MPCError.protocolViolation(
          "the client sent \(message.count) bytes for \(count) masked inputs at \(site)")
      }
      return WireTensor(format, shape, BitPacking.unpack(message, bits: format.bits, count: count))
    }
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

  /// x̂·W'_b − [r_x]_b·Ŵ' + c_b for W' = Wᵀ (a linear layer) or W (a table product).
  private func weightProduct(
    _ x: WireTensor, _ weight: WeightID, transposed: Bool, _ site: GateSite
  ) async throws -> WireTensor {
    let (rows, inner, outputs, format) = try linearShape(
      x, weight: weight, transposed: transposed, site)
    let n = x.format.bits
    return try await gate(.linear, site, elements: rows * outputs) {
      let parts = try await shares(site, bits: n, lengths: [rows * inner, rows * outputs])
      let hat = try masked.operand(weight, transposed: transposed)
      let fixed = offline {
        RingMath.matmul(
          parts[0], hat.values, batch: 1, m: rows, k: inner, n: outputs,
          transposeB: hat.transposeB, bits: n)
      }
      let mineW = try offline { try share.operand(weight, transposed: transposed) }
      let product = RingMath.matmul(
        x.values, mineW.values, batch: 1, m: rows, k: inner, n: outputs,
        transposeB: mineW.transposeB, bits: n)
      let mine = RingMath.add(RingMath.subtract(product, fixed, bits: n), parts[1], bits: n)
      return WireTensor(
        format, Array(x.shape.dropLast()) + [outputs], try await open(mine, bits: n, site))
    }
  }

  public func multiplyWeight(_ x: WireTensor, weight: WeightID, site: GateSite) async throws
    -> WireTensor
  {
    let format = try weightProductFormat(x, weight: weight, site)
    let hat = try masked.plain(weight)
    let n = x.format.bits
    return try await gate(.multiplyWeight, site, elements: x.count) {
      let parts = try await shares(site, bits: n, lengths: [x.count, x.count])
      let fixed = offline { RingMath.hadamard(parts[0], hat, bits: n) }
      let product = RingMath.hadamard(x.values, try offline { try share.plain(weight) }, bits: n)
      let mine = RingMath.add(RingMath.subtract(product, fixed, bits: n), parts[1], bits: n)
      return WireTensor(format, x.shape, try await open(mine, bits: n, site))
    }
  }

  /// This party's share of a·b + r_z for masked a, b: â·b̂ (party 0 only) − â·[r_b] − [r_a]·b̂ + c.
  public func multiply(_ a: WireTensor, _ b: WireTensor, site: GateSite) async throws -> WireTensor
  {
    let format = try productFormat(a, b, site)
    let n = a.format.bits
    return try await gate(.multiply, site, elements: a.count) {
      let parts = try await shares(site, bits: n, lengths: [a.count, a.count, a.count])
      let right =
        party == 0
        ? RingMath.subtract(b.values, parts[1], bits: n) : RingMath.negate(parts[1], bits: n)
      let mine = RingMath.add(
        RingMath.subtract(
          RingMath.hadamard(a.values, right, bits: n),
          RingMath.hadamard(parts[0], b.values, bits: n), bits: n),
        parts[2], bits: n)
      return WireTensor(format, a.shape, try await open(mine, bits: n, site))
    }
  }

  /// x̂² (party 0 only) − 2·x̂·[r] + c.
  public func square(_ x: WireTensor, site: GateSite) async throws -> WireTensor {
    let format = try productFormat(x, x, site)
    let n = x.format.bits
    return try await gate(.multiply, site, elements: x.count) {
      let parts = try await shares(site, bits: n, lengths: [x.count, x.count])
      let m = ringMask(n)
      let isFirst = party == 0
      let mine = (0..<x.count).map { i -> UInt64 in
        let v = x.values[i]
        var z = parts[1][i] &- 2 &* v &* parts[0][i]
        if isFirst { z = z &+ v &* v }
        return z & m
      }
      return WireTensor(format, x.shape, try await open(mine, bits: n, site))
    }
  }

  public func matmul(_ a: WireTensor, _ b: WireTensor, transposeB: Bool, site: GateSite)
    async throws -> WireTensor
  {
    let s = try matmulShape(a, b, transposeB: transposeB, site)
    let n = a.format.bits
    return try await gate(.matmul, site, elements: s.batch * s.m * s.n) {
      let parts = try await shares(site, bits: n, lengths: [a.count, b.count, s.batch * s.m * s.n])
      let right =
        party == 0
        ? RingMath.subtract(b.values, parts[1], bits: n) : RingMath.negate(parts[1], bits: n)
      func product(_ x: [UInt64], _ y: [UInt64]) -> [UInt64] {
        RingMath.matmul(
          x, y, batch: s.batch, m: s.m, k: s.k, n: s.n, transposeB: transposeB, bits: n)
      }
      let mine = RingMath.add(
        RingMath.subtract(product(a.values, right), product(parts[0], b.values), bits: n), parts[2],
        bits: n)
      return WireTensor(s.format, s.shape, try await open(mine, bits: n, site))
    }
  }

  // MARK: FSS gates

  /// The keys of an elementwise gate, one record per chunk of `elementChunks(count)`, each
  /// checked to cover its chunk.
  private func chunkKeys<K>(
    _ site: GateSite, count: Int, _ decode: (ArraySlice<UInt8>) throws(FSSError) -> K,
    elements: (K) -> Int
  ) async throws -> [(range: Range<Int>, key: K)] {
    var keys: [(range: Range<Int>, key: K)] = []
    for range in elementChunks(count) {
      let k = try await key(site, decode)
      guard elements(k) == range.count else {
        throw MPCError.keyMismatch(
          site, "a key for \(elements(k)) elements where the chunk has \(range.count)")
      }
      keys.append((range, k))
    }
    return keys
  }

  public func truncate(
    _ x: WireTensor, kind: TruncationKind, shift s: Int, outputBits m: Int, site: GateSite
  ) async throws -> WireTensor {
    let format = try truncatedFormat(x, shift: s, outputBits: m, site)
    let n = x.format.bits
    return try await gate(.truncate, site, elements: x.count) {
      let party = party
      let keys = try await chunkKeys(
        site, count: x.count,
        { (bytes) throws(FSSError) in
          try TruncationKey(record: bytes, party: party, inputBits: n, authenticated: true)
        },
        elements: \.count)
      var mine: [UInt8] = []
      for (range, k) in keys {
        guard k.kind == kind, k.shift == s, k.outputBits == m else {
          throw MPCError.keyMismatch(
            site, "a \(k.kind) key by \(k.shift) into \(k.outputBits) bits")
        }
        mine += try TruncationGate.evalBits(
          party: party, key: k, maskedInputs: Array(x.values[range]), prg: prg)
      }
      let bits = try await openBits(mine, site)
      var output: [UInt64] = []
      output.reserveCapacity(x.count)
      for (range, k) in keys {
        output += try TruncationGate.evalOutput(
          party: party, key: k, maskedInputs: Array(x.values[range]), openedBits: Array(bits[range])
        )
      }
      return WireTensor(format, x.shape, try await open(output, bits: m, site))
    }
  }

  public func compare(_ x: WireTensor, offsets: [Int64], site: GateSite) async throws -> WireBits {
    try requireOpened(x, site: site)
    let n = x.format.bits
    let expected = offsets.map { element($0, bits: n) }
    return try await gate(.compare, site, elements: x.count * offsets.count) {
      let party = party
      var mine: [UInt8] = []
      mine.reserveCapacity(x.count * offsets.count)
      // One chunk's key at a time: the largest keys (DReLU) are never all held at once.
      for range in elementChunks(x.count) {
        let k = try await key(site) { (bytes) throws(FSSError) in
          try DReLUKey(record: bytes, party: party, inputBits: n, authenticated: true)
        }
        guard k.offsets == expected, k.count == range.count else {
          throw MPCError.keyMismatch(site, "a DReLU key for \(k.count) elements at other offsets")
        }
        mine += try DReLUGate.eval(
          party: party, key: k, maskedInputs: Array(x.values[range]), prg: prg)
      }
      return WireBits(shape: x.shape + [offsets.count], bits: try await openBits(mine, site))
    }
  }

  func select(_ bits: WireBits, _ x: WireTensor, opened: Bool, site: GateSite)
    async throws -> WireTensor
  {
    try checkSelect(bits, x, site)
    let n = x.format.bits
    return try await gate(opened ? .select : .selectUnopened, site, elements: x.count) {
      let party = party
      var mine: [UInt64] = []
      mine.reserveCapacity(x.count)
      for (range, k) in try await chunkKeys(
        site, count: x.count,
        { (bytes) throws(FSSError) in
          try SelectKey(record: bytes, party: party, inputBits: n, authenticated: true)
        },
        elements: \.count)
      {
        mine += try SelectGate.eval(
          party: party, key: k, maskedBits: Array(bits.bits[range]),
          maskedValues: Array(x.values[range]))
      }
      guard opened else { return WireTensor(x.format, x.shape, mine, opened: false) }
      return WireTensor(x.format, x.shape, try await open(mine, bits: n, site))
    }
  }

  /// Σ_k sin(kφ̂)·[β_k cos(kr)] − cos(kφ̂)·[β_k sin(kr)] + [r_out], opened.
  public func sineSeries(
    _ x: WireTensor, coefficients: [Double], outputScale: Int, site: GateSite
  ) async throws -> WireTensor {
    try requireOpened(x, site: site)
    let (m, n, terms) = (x.format.bits, inputFormat.bits, coefficients.count)
    try SineSeries.validate(
      angleBits: m, terms: terms, outputScale: outputScale, ringBits: n, site)
    return try await gate(.sine, site, elements: x.count) {
      let party = party
      let table = TurnTable(bits: m)
      let publicScale = SineSeries.publicScale(outputScale)
      var mine: [UInt64] = []
      mine.reserveCapacity(x.count)
      let keys = try await chunkKeys(
        site, count: x.count,
        { (bytes) throws(FSSError) in
          try ShareBundle(record: bytes, party: party, inputBits: n, authenticated: true).parts()
        },
        elements: { $0.count == 3 && $0[0].count == $0[2].count * terms ? $0[2].count : -1 })
      for (range, parts) in keys {
        guard parts[1].count == parts[0].count else {
          throw MPCError.keyMismatch(site, "sine terms of unequal lengths")
        }
        for (j, i) in range.enumerated() {
          mine.append(
            SineSeries.share(
              x.values[i], cosines: parts[0][(j * terms)..<((j + 1) * terms)],
              sines: parts[1][(j * terms)..<((j + 1) * terms)], outputMask: parts[2][j],
              table: table, publicScale: publicScale, bits: n))
        }
      }
      return WireTensor(
        WireFormat(bits: n, scale: outputScale), x.shape, try await open(mine, bits: n, site))
    }
  }

  /// Every lookup's round 1 (sign bits and signed values) goes in one exchange, and every
  /// output in a second one (or none, unopened).
  public func lookups(_ inputs: [WireTensor], tables: [LookupTable], open: Bool, site: GateSite)
    async throws -> [WireTensor]
  {
    try checkLookups(inputs, tables, site)
    return try await gate(.lookup, site, elements: inputs.reduce(0) { $0 + $1.count }) {
      let party = party
      var keys: [[(range: Range<Int>, key: LUTKey)]] = []
      var firsts: [LUTRound1] = []
      var message: [UInt8] = []
      for (x, table) in zip(inputs, tables) {
        let n = table.output.bits
        let chunks = try await chunkKeys(
          site, count: x.count,
          { (bytes) throws(FSSError) in
            try LUTKey(record: bytes, party: party, inputBits: table.inputBits, authenticated: true)
          }, elements: \.count)
        let entries = table.entries.map { element($0, bits: n) }
        var first = LUTRound1(signBits: [], values: [])
        for (range, k) in chunks {
          guard k.outputRing.bits == n else {
            throw MPCError.keyMismatch(site, "a lookup key into \(k.outputRing.bits) bits")
          }
          let part = try LUTGate.evalRound1(
            party: party, key: k, maskedInputs: Array(x.values[range]), table: entries, prg: prg)
          first.signBits += part.signBits
          first.values += part.values
        }
        message +=
          BitPacking.pack(first.signBits.map { UInt64($0) }, bits: 1)
          + BitPacking.pack(first.values, bits: n)
        keys.append(chunks)
        firsts.append(first)
      }
      let received = try await peer.exchange(message)
      guard received.count == message.count else {
        throw MPCError.protocolViolation(
          "\(peer.peerDescription) sent \(received.count) bytes at \(site)")
      }
      var offset = 0
      var shares: [[UInt64]] = []
      for ((x, table), (chunks, first)) in zip(zip(inputs, tables), zip(keys, firsts)) {
        let n = table.output.bits
        let bitBytes = BitPacking.packedByteCount(count: x.count, bits: 1)
        let valueBytes = BitPacking.packedByteCount(count: x.count, bits: n)
        let theirBits = BitPacking.unpack(
          Array(received[offset..<(offset + bitBytes)]), bits: 1, count: x.count)
        let theirValues = BitPacking.unpack(
          Array(received[(offset + bitBytes)..<(offset + bitBytes + valueBytes)]), bits: n,
          count: x.count)
        offset += bitBytes + valueBytes
        let signBits = zip(first.signBits, theirBits).map { $0 ^ UInt8($1) }
        let values = RingMath.add(first.values, theirValues, bits: n)
        var share: [UInt64] = []
        share.reserveCapacity(x.count)
        for (range, k) in chunks {
          share += try LUTGate.evalRound2(
            party: party, key: k,
            opened: LUTRound1(signBits: Array(signBits[range]), values: Array(values[range])))
        }
        shares.append(share)
      }
      let formats = tables.map(\.output)
      guard open else {
        return zip(inputs, zip(formats, shares)).map {
          WireTensor($1.0, $0.shape, $1.1, opened: false)
        }
      }
      let values = try await self.open(shares, bits: formats.map(\.bits), site)
      return zip(inputs, zip(formats, values)).map { WireTensor($1.0, $0.shape, $1.1) }
    }
  }

  public func open(_ x: WireTensor, site: GateSite) async throws -> WireTensor {
    if x.opened { return x }
    return try await gate(.open, site, elements: x.count) {
      WireTensor(x.format, x.shape, try await open(x.values, bits: x.format.bits, site))
    }
  }

  /// Sends the masked output to the client, who holds its mask.
  public func reveal(_ x: WireTensor, site: GateSite) async throws -> [Int64] {
    try requireOpened(x, site: site)
    return try await gate(.reveal, site, elements: x.count) {
      try await client.send(BitPacking.pack(x.values, bits: x.format.bits))
      return []
    }
  }
}

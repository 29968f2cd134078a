// One secure inference with every role in one process (the embedded default of DESIGN §1):
// the dealer, P0, P1 and the client run as concurrent tasks, talk over in-memory channels
// (which count the bytes and rounds TCP would carry) and pass keys through bounded key-stream
// pipes. `SecureModel` is a model after the one-time weight setup (DESIGN §3); each
// `sentenceEmbedding` is a fresh run with fresh masks and keys, refused by the parties' run ledgers if replayed.
import CVeilKernels
import Crypto
import Foundation
import VeilFSS
import VeilModels
import VeilNet
import VeilRing

/// How a run streams its keys and reaches the peer.
public struct RunOptions: Sendable {
  /// The dealer waits once a pipe holds this many bytes, until its reader has drained it.
  public var pipeCapacity = 256 << 20
  /// Records are sealed into MAC'd segments of about this size.
  public var segmentBytes = 4 << 20
  /// After shipping a segment the dealer waits until both parties have used every key and
  /// wait for more: key generation and online work alternate instead of sharing the cores, so
  /// that with every role on one machine their times are measured apart (DESIGN §9).
  public var alternate = true
  /// Makes the P0↔P1 channel pair of a run (e.g. TCP or TLS over loopback); nil: in memory.
  public var peerChannels: (@Sendable () async throws -> (any Channel, any Channel))?

  public init() {}
}

/// What one secure run cost.
public struct RunCosts: Sendable {
  /// Online seconds: the slower party's time less its waits for keys and its offline products.
  public var onlineSeconds = 0.0
  /// Dealer key generation plus the slower party's input-independent products.
  public var offlineSeconds = 0.0
  /// Bytes between P0 and P1 in both directions (framing included), and rounds.
  public var onlineBytes = 0
  public var rounds = 0
  /// The client's upload and download.
  public var clientBytes = 0
  /// Key-stream bytes shipped to P0, P1 and the client.
  public var keyBytes: [Int] = []
  /// The most key bytes a pipe held at once.
  public var peakPipeBytes = 0
  /// Per layer type and gate kind: the dealer's, and P0's and P1's.
  public var dealer: [OpKind: [GateKind: GateCost]] = [:]
  public var parties: [[OpKind: [GateKind: GateCost]]] = []
}

/// What one secure run produced and cost.
public struct SecureRunReport: Sendable {
  /// The output the client unmasked (signed integers at `format`).
  public let output: [Int64]
  public let format: WireFormat
  public let costs: RunCosts

  /// The output as real numbers.
  public var decoded: [Double] {
    let scale = Double(sign: .plus, exponent: format.scale, significand: 1)
    return output.map { Double($0) / scale }
  }
}

/// A model whose weights went through the one-time masking setup.
public final class SecureModel: Sendable {
  public let model: any TransformerGraph
  public let parameters: RecipeParameters
  let setupID: [UInt8]
  /// The parties' Ŵ at the run's ring (public to both, so one process keeps one copy: the only
  /// kept copy of the model); the dealer's r_W and each party's W_b, derived from mask seeds.
  let dealerMasks: RunWeights
  let partyMasked: RunWeights
  let partyShares: [RunWeights]
  /// Each party's durable record of consumed run ids (in memory here: one process).
  let ledgers: [RunLedger]
  let modelDigest: [UInt8]
  /// Bytes P0 and P1 exchanged to open Ŵ (both directions), and the setup's seconds.
  public let setupBytes: Int
  public let setupSeconds: Double

  /// Encodes the weights at (n, f), shares them as the owner, masks them as the dealer and
  /// opens Ŵ between the parties — one weight at a time, so the setup's peak memory is the
  /// kept weights plus one weight's intermediates.
  public init(model: any TransformerGraph, weights: Float64Weights, parameters: RecipeParameters)
    async throws
  {
    try parameters.validate()
    _ = Self.mallocTuned
    let clock = ContinuousClock()
    let start = clock.now
    let format = try FixedPointFormat(
      bits: parameters.ringBits, fractionalBits: parameters.fractionalBits)
    var random = try SecureRandom()
    let setupID = random.bytes(16)
    let (c0, c1) = InMemoryChannel.makePair(.p0, .p1)
    let ids = weights.tensors.keys.sorted { $0.name < $1.name }
    var shapes: [WeightID: [Int]] = [:]
    var maskedValues: [WeightID: [UInt64]] = [:]
    var dealerMaskSeeds: [WeightID: DerivedWeight] = [:]
    var shareSeeds: [[WeightID: DerivedWeight]] = [[:], [:]]
    // The matrices that feed `linear` (x·Wᵀ) are kept transposed; embedding tables are read
    // by rows.
    let tables = Set(model.embeddingTables)
    var transposed = Set<WeightID>()
    for id in ids {
      guard let tensor = weights.tensors[id] else { continue }
      let shape = tensor.shape
      let transpose = shape.count == 2 && !tables.contains(id)
      if transpose { transposed.insert(id) }
      let kept = try await WeightSetup.setUp(
        id, tensor, format: format, transpose: transpose, random: &random, peers: (c0, c1))
      shapes[id] = shape
      maskedValues[id] = kept.masked
      dealerMaskSeeds[id] = DerivedWeight(
        count: tensor.count, chunkSeeds: kept.chunkSeeds, negated: false)
      // Both parties derive their share the same way, so neither waits for the other's work.
      shareSeeds[0][id] = DerivedWeight(
        count: tensor.count, chunkSeeds: kept.chunkSeeds.map { [$0[0]] }, negated: true,
        base: kept.masked)
      shareSeeds[1][id] = DerivedWeight(
        count: tensor.count, chunkSeeds: kept.chunkSeeds.map { [$0[1]] }, negated: true)
    }
    let bits = parameters.ringBits
    dealerMasks = RunWeights(
      shapes: shapes, values: [:], derived: dealerMaskSeeds, transposed: transposed, bits: bits)
    partyMasked = RunWeights(
      shapes: shapes, values: maskedValues, transposed: transposed, bits: bits)
    partyShares = shareSeeds.map {
      RunWeights(shapes: shapes, values: [:], derived: $0, transposed: transposed, bits: bits)
    }
    self.setupID = setupID
    setupBytes = c0.counters.bytesSent + c0.counters.bytesReceived
    await c0.close()
    await c1.close()
    self.model = model
    self.parameters = parameters
    ledgers = [RunLedger(), RunLedger()]
    // Model digest = H(setup id ‖ config ‖ shapes ‖ n ‖ f ‖ recipe) (DESIGN §7): public facts only.
    var hasher = SHA256()
    hasher.update(data: setupID)
    hasher.update(data: Data("\(model.config)|\(parameters)".utf8))
    for id in ids { hasher.update(data: Data("\(id.name)\(shapes[id] ?? [])".utf8)) }
    modelDigest = Array(hasher.finalize())
    setupSeconds = (clock.now - start).seconds
  }

  var format: WireFormat { WireFormat(bits: parameters.ringBits, scale: parameters.fractionalBits) }

  /// A secure run allocates and frees key records, shares and products of many megabytes per
  /// gate. glibc returns every block above its mmap threshold to the kernel at once, so each
  /// new one comes back as fresh zeroed pages: page faults and page clearing took a third of a
  /// MiniLM run. Keeping freed blocks in the heap (once per process) removes that.
  private static let mallocTuned = veil_keep_freed_memory() == 1

  /// The model's output for `ids` (the first `validTokens` real, the rest padding) on secret
  /// shares — BERT's sentence embedding, GPT-2's last hidden state; only the client task sees
  /// the ids and the result.
  public func infer(
    ids: [Int], validTokens: Int? = nil, options: RunOptions = RunOptions()
  )
    async throws -> SecureRunReport
  {
    let model = model
    let parameters = parameters
    let t = ids.count
    let valid = try model.config.check(TokenInput(ids: ids), validTokens: validTokens)
    let hidden = TokenInput(hiddenCount: t)
    let vocabulary = model.config.vocabularySize
    let bits = parameters.ringBits
    let revealSite = GateSite(
      op: OpSite(layer: model.config.layers, kind: .normalize, index: 1), gate: "reveal")
    let (output, report) = try await run(
      sequenceLength: t, graph: "\(model.config.architecture)|\(t)|\(valid)", options: options,
      dealer: { dealer in
        let engine = try RecipeEngine(backend: dealer, parameters: parameters)
        _ = try await dealer.reveal(
          try await model.output(hidden, validTokens: valid, engine: engine), site: revealSite)
      },
      party: { party in
        let engine = try RecipeEngine(backend: party, parameters: parameters)
        _ = try await party.reveal(
          try await model.output(hidden, validTokens: valid, engine: engine), site: revealSite)
      },
      client: { keys, parties in
        try await SecureClient.run(
          ids: ids, vocabulary: vocabulary, bits: bits, keys: keys, parties: parties)
      })
    return SecureRunReport(output: output, format: format, costs: report)
  }

  /// Runs the dealer, both parties and the client of one fresh run as concurrent tasks: each
  /// back end walks its body (the same gates in the same order), then the streams are closed
  /// and checked to the end. `graph` names the public graph for the streams' graph digest.
  func run(
    sequenceLength t: Int, graph: String, options: RunOptions,
    dealer dealerBody: @escaping @Sendable (DealerBackend) async throws -> Void,
    party partyBody: @escaping @Sendable (PartyBackend) async throws -> Void,
    client clientBody: @escaping @Sendable (KeySource, [any Channel]) async throws -> [Int64]
  ) async throws -> ([Int64], RunCosts) {
    var random = try SecureRandom()
    let runID = random.bytes(16)
    let prg = try TreePRG(runKey: random.bytes(16))
    let macKeys = (0..<3).map { _ in SymmetricKey(data: random.bytes(32)) }
    let graphDigest = Array(SHA256.hash(data: Data(modelDigest + Array(graph.utf8))))
    let parameters = parameters
    func header(_ kind: KeyStreamKind, _ party: Int) -> KeyStreamHeader {
      KeyStreamHeader(
        kind: kind, party: party, runID: runID, modelSetupID: setupID, modelDigest: modelDigest,
        graphDigest: graphDigest, recipe: parameters.recipeName, recipeVersion: 1,
        ringBits: parameters.ringBits,
        fractionalBits: parameters.fractionalBits, sequenceLength: t, batch: 1, opCount: 0,
        prgKeyID: prg.keyID)
    }
    let headers = [header(.inference, 0), header(.inference, 1), header(.client, 2)]
    let pipes = (0..<3).map { _ in KeyPipe(capacity: options.pipeCapacity) }
    let streams = DealerKeyStreams(
      headers: headers, macKeys: macKeys, pipes: pipes, segmentBytes: options.segmentBytes,
      alternating: options.alternate ? [0, 1] : [])
    let sources = (0..<3).map { i in
      KeySource(
        pipe: pipes[i], expected: headers[i], macKey: macKeys[i],
        ledger: i < 2 ? ledgers[i] : RunLedger())
    }
    let (p0, p1): (any Channel, any Channel) =
      try await options.peerChannels?() ?? InMemoryChannel.makePair(.p0, .p1)
    let (client0, party0Client) = InMemoryChannel.makePair(.client, .p0)
    let (client1, party1Client) = InMemoryChannel.makePair(.client, .p1)
    let channels: [any Channel] = [p0, p1, client0, party0Client, client1, party1Client]
    let tallies = (0..<3).map { _ in CostTally() }
    let dealer = try DealerBackend(
      masks: dealerMasks, format: format, prg: prg, streams: streams, tally: tallies[2])
    let peers = [p0, p1]
    let clients = [party0Client, party1Client]
    let parties = (0..<2).map { b in
      PartyBackend(
        party: b, masked: partyMasked, share: partyShares[b], format: format, prg: prg,
        peer: peers[b],
        client: clients[b], keys: sources[b], tally: tallies[b])
    }

    enum RoleResult: Sendable {
      case dealer(seconds: Double)
      case party(seconds: Double, offline: Double)
      case client([Int64])
    }
    let clock = ContinuousClock()
    let results = try await withThrowingTaskGroup(of: RoleResult.self) { group in
      group.addTask {
        let start = clock.now
        try await dealerBody(dealer)
        try await dealer.finish()
        return .dealer(seconds: (clock.now - start).seconds - (await streams.waitSeconds))
      }
      for (b, party) in parties.enumerated() {
        group.addTask {
          let start = clock.now
          try await partyBody(party)
          try await party.finish()
          let wall = (clock.now - start).seconds
          let offline = await party.offlineTotal
          return .party(seconds: wall - (await sources[b].waitSeconds) - offline, offline: offline)
        }
      }
      group.addTask { .client(try await clientBody(sources[2], [client0, client1])) }
      var collected: [RoleResult] = []
      do {
        for try await result in group { collected.append(result) }
      } catch {
        // The first role to fail ends the run for all: the others may wait on a key, a peer
        // or the client, which cancelling the pipes and closing the channels wakes (the
        // group waits for every task before it returns).
        for pipe in pipes { await pipe.cancel() }
        for channel in channels { await channel.close() }
        throw error
      }
      return collected
    }
    var output: [Int64] = []
    var costs = RunCosts()
    var partyOffline = 0.0
    for result in results {
      switch result {
      case .dealer(let seconds): costs.offlineSeconds += seconds
      case .party(let seconds, let offline):
        costs.onlineSeconds = max(costs.onlineSeconds, seconds)
        partyOffline = max(partyOffline, offline)
      case .client(let values): output = values
      }
    }
    costs.offlineSeconds += partyOffline
    costs.onlineBytes = p0.counters.bytesSent + p0.counters.bytesReceived
    costs.rounds = p0.counters.rounds
    costs.clientBytes = [client0, client1].reduce(0) {
      $0 + $1.counters.bytesSent + $1.counters.bytesReceived
    }
    costs.keyBytes = await streams.streamBytes
    for pipe in pipes { costs.peakPipeBytes = max(costs.peakPipeBytes, await pipe.peakBytes) }
    costs.dealer = tallies[2].snapshot
    costs.parties = [tallies[0].snapshot, tallies[1].snapshot]
    for channel in channels { await channel.close() }
    return (output, costs)
  }
}

/// The client's part of a run: it masks its one-hot rows with the dealer's seeds, sends them to
/// both parties, and unmasks the output they send back.
enum SecureClient {
  static func run(ids: [Int], vocabulary: Int, bits: Int, keys: KeySource, parties: [any Channel])
    async throws
    -> [Int64]
  {
    let seeds: [[UInt64]]
    do {
      seeds = try ShareBundle(record: try await keys.next(opIndex: 0), party: 2, inputBits: 64)
        .parts()
    } catch {
      throw MPCError.protocolViolation("client key record: \(error)")
    }
    guard seeds.count == 2, seeds.allSatisfy({ $0.count == 2 }) else {
      throw MPCError.protocolViolation("the client's key record holds no embedding seeds")
    }
    let t = ids.count
    let a0 = try ShareBundle.expand(
      seed: seedBytes(seeds[0]), lengths: [t * vocabulary], bits: bits)[0]
    let a1 = try ShareBundle.expand(
      seed: seedBytes(seeds[1]), lengths: [t * vocabulary], bits: bits)[0]
    var masked = RingMath.add(a0, a1, bits: bits)
    let m = ringMask(bits)
    for (i, id) in ids.enumerated() {
      masked[i * vocabulary + id] = (masked[i * vocabulary + id] &+ 1) & m
    }
    let message = BitPacking.pack(masked, bits: bits)
    for party in parties { try await party.send(message) }
    let mask: [UInt64]
    do {
      mask =
        try ShareBundle(record: try await keys.next(opIndex: 1), party: 2, inputBits: bits).parts()
        .first ?? []
    } catch { throw MPCError.protocolViolation("client key record: \(error)") }
    var opened: [[UInt64]] = []
    for party in parties {
      let bytes = try await party.receive()
      guard bytes.count == BitPacking.packedByteCount(count: mask.count, bits: bits) else {
        throw MPCError.protocolViolation(
          "\(party.peerDescription) sent \(bytes.count) bytes as the output")
      }
      opened.append(BitPacking.unpack(bytes, bits: bits, count: mask.count))
    }
    guard opened[0] == opened[1] else {
      throw MPCError.protocolViolation("the parties sent different outputs")
    }
    try await keys.finish(afterOp: 2)
    return zip(opened[0], mask).map { signedValue(($0 &- $1) & m, bits: bits) }
  }
}

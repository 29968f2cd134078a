// Secure inference with every role in one process (the embedded default of DESIGN §1, §10):
// the owner, the dealer, P0, P1 and the client run their halves (Roles/) as concurrent tasks,
// talk over in-memory channels (which count the bytes and rounds TCP would carry) and pass keys
// through bounded key-stream pipes. `SecureModel` is a model after the one-time weight setup
// (DESIGN §3); each `infer` is a fresh run with fresh masks and keys, refused by the parties'
// run ledgers if replayed.
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
  /// The larger of P0's and P1's key-stream bytes.
  public var keyBytesPerParty: Int { keyBytes.prefix(2).max() ?? 0 }
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

/// A model whose weights went through the one-time masking setup, with every role in this
/// process (DESIGN §10): the owner, the dealer and both servers run their setup halves over
/// in-memory channels, and each run wires the dealer's, both parties' and the client's run
/// halves the same way. A deployment runs the same halves over TLS.
public final class SecureModel: Sendable {
  public let model: any TransformerGraph
  public let parameters: RecipeParameters
  public let manifest: SetupManifest
  /// The dealer's r_W, and each party's Ŵ (one copy, read by both) and W_b, derived from the
  /// mask seeds when a gate needs them.
  let dealerMasks: RunWeights
  let partyMasked: RunWeights
  let partyShares: [RunWeights]
  /// Each party's record of consumed run ids (in memory here: one process).
  let ledgers: [RunLedger]
  /// Bytes P0 and P1 exchanged to open Ŵ (both directions), and the setup's seconds.
  public let setupBytes: Int
  public let setupSeconds: Double

  var setupID: [UInt8] { manifest.setupIDBytes }
  var modelDigest: [UInt8] { manifest.modelDigest }

  /// Runs the setup's four halves at once: the owner encodes and shares one chunk at a time,
  /// so the setup's peak memory is the kept weights plus a few chunks' intermediates.
  public init(model: any TransformerGraph, weights: Float64Weights, parameters: RecipeParameters)
    async throws
  {
    try parameters.validate()
    let clock = ContinuousClock()
    let start = clock.now
    var shapes: [WeightID: [Int]] = [:]
    for (id, tensor) in weights.tensors { shapes[id] = tensor.shape }
    let manifest = SetupManifest(model: model, shapes: shapes, parameters: parameters)
    let secrets = try DealerSetupSecrets(manifest: manifest)
    let (ownerDealer, dealerOwner) = InMemoryChannel.makePair(.owner, .dealer)
    let owners = [InMemoryChannel.makePair(.owner, .p0), InMemoryChannel.makePair(.owner, .p1)]
    let dealers = [InMemoryChannel.makePair(.dealer, .p0), InMemoryChannel.makePair(.dealer, .p1)]
    let (c0, c1) = InMemoryChannel.makePair(.p0, .p1)
    let channels: [any Channel] =
      [ownerDealer, dealerOwner, c0, c1]
      + (owners + dealers).flatMap { [$0.0, $0.1] as [any Channel] }
    let servers: [ServerSetupState]
    do {
      servers = try await withThrowingTaskGroup(of: ServerSetupState?.self) { group in
        group.addTask {
          _ = try await SetupRoles.owner(
            manifest: manifest, weights: weights, graph: model, dealer: ownerDealer,
            servers: [owners[0].0, owners[1].0])
          return nil
        }
        group.addTask {
          guard case .setup = try await dealerOwner.receiveMessage() else {
            throw MPCError.protocolViolation("the owner did not announce the setup")
          }
          try await dealerOwner.send(.setupDone(maskedDigest: ""))
          for b in 0..<2 {
            guard case .setupSeeds = try await dealers[b].0.receiveMessage() else {
              throw MPCError.protocolViolation("p\(b) did not ask for its seeds")
            }
            try await SetupRoles.dealerSendSeeds(secrets, party: b, to: dealers[b].0)
          }
          return nil
        }
        for b in 0..<2 {
          group.addTask {
            guard case .setup(let announced) = try await owners[b].1.receiveMessage() else {
              throw MPCError.protocolViolation("the owner did not announce the setup")
            }
            let (state, _) = try await SetupRoles.server(
              party: b, manifest: announced, graph: model, owner: owners[b].1, dealer: dealers[b].1,
              peer: b == 0 ? c0 : c1)
            try await owners[b].1.send(.setupDone(maskedDigest: hex(state.maskedDigest)))
            return state
          }
        }
        var states: [ServerSetupState] = []
        for try await state in group { if let state { states.append(state) } }
        return states.sorted { $0.party < $1.party }
      }
    } catch {
      for channel in channels { await channel.close() }
      throw error
    }
    setupBytes = c0.counters.bytesSent + c0.counters.bytesReceived
    for channel in channels { await channel.close() }
    let p0 = servers[0].runWeights()
    dealerMasks = secrets.runWeights()
    partyMasked = p0.masked
    partyShares = [p0.share, try servers[1].sharingMasked(with: servers[0]).runWeights().share]
    self.manifest = manifest
    self.model = model
    self.parameters = parameters
    ledgers = [RunLedger(), RunLedger()]
    setupSeconds = (clock.now - start).seconds
  }

  var format: WireFormat { WireFormat(bits: parameters.ringBits, scale: parameters.fractionalBits) }

  /// A secure run allocates and frees key records, shares and products of many megabytes per
  /// gate. glibc returns every block above its mmap threshold to the kernel at once, so each
  /// new one comes back as fresh zeroed pages: page faults and page clearing took a third of a
  /// MiniLM run. `tuneAllocator()` keeps freed blocks in the heap for the whole process — an
  /// explicit opt-in (the CLI makes it), since it changes how the process uses memory.
  public static func tuneAllocator() { _ = mallocTuned }
  private static let mallocTuned = veil_keep_freed_memory() == 1

  /// The model's output for `ids` (the first `validTokens` real, the rest padding) on secret
  /// shares — BERT's sentence embedding, GPT-2's last hidden state; only the client task sees
  /// the ids and the result. With `hidingLength` (BERT embeddings) `ids` are padded to a
  /// bucket and only the client knows that the first `hidingLength` are real.
  public func infer(
    ids: [Int], validTokens: Int? = nil, hidingLength real: Int? = nil,
    options: RunOptions = RunOptions()
  )
    async throws -> SecureRunReport
  {
    let model = model
    let parameters = parameters
    let t = ids.count
    let hidden = real != nil
    let valid = try model.config.check(
      real.map { TokenInput(ids: ids, hidingLength: $0) } ?? TokenInput(ids: ids),
      validTokens: validTokens)
    let inputs = real.map {
      HiddenLengthInputs.values(real: $0, count: t, fractionalBits: parameters.fractionalBits)
    }
    let vocabulary = model.config.vocabularySize
    let bits = parameters.ringBits
    let (output, report) = try await run(
      tokens: t, valid: valid, hidesLength: hidden, options: options,
      dealer: {
        try await ModelRun.walk(model, parameters, tokens: t, valid: valid, hidesLength: hidden, $0)
      },
      party: {
        try await ModelRun.walk(model, parameters, tokens: t, valid: valid, hidesLength: hidden, $0)
      },
      client: { keys, parties, _ in
        try await SecureClient.run(
          ids: ids, inputs: inputs ?? [], vocabulary: vocabulary, bits: bits, keys: keys,
          parties: parties, reveals: 1
        ) { _, _ in }
      })
    return SecureRunReport(output: output, format: format, costs: report)
  }

  /// Greedy generation of `newTokens` tokens after the prompt `ids` on secret shares, in one
  /// run: the prompt in one pass, then one position per token over the KV cache (or the whole
  /// prefix again without `cache`). Each token is chosen by the secure argmax, enters the next
  /// step as a secret one-hot row and is opened to the client only, which hands it to
  /// `onToken` as it arrives. The servers learn the prompt's length and `newTokens`, nothing
  /// else: the run always produces `newTokens` tokens, an end-of-text token included.
  public func generate(
    ids: [Int], newTokens: Int, cache: Bool = true, options: RunOptions = RunOptions(),
    onToken: @escaping @Sendable (GenerationStep) async -> Void = { _ in }
  ) async throws -> GenerationReport {
    let plan = GenerationPlan(promptTokens: ids.count, newTokens: newTokens, cache: cache)
    try plan.check(model, maximumNewTokens: Int.max)
    _ = try model.config.check(TokenInput(ids: ids), validTokens: nil)
    let model = model
    let parameters = parameters
    let vocabulary = model.config.vocabularySize
    let bits = parameters.ringBits
    let clock = ContinuousClock()
    let (tokens, costs) = try await run(
      tokens: ids.count, valid: ids.count, generation: plan, options: options,
      dealer: {
        try await ModelRun.walk(
          model, parameters, tokens: ids.count, valid: ids.count, generation: plan, $0)
      },
      party: {
        try await ModelRun.walk(
          model, parameters, tokens: ids.count, valid: ids.count, generation: plan, $0)
      },
      client: { keys, parties, meter in
        var last = (clock.now, meter.counters)
        let outputs = try await SecureClient.run(
          ids: ids, vocabulary: vocabulary, bits: bits, keys: keys, parties: parties,
          reveals: newTokens
        ) { index, values in
          let now = (clock.now, meter.counters)
          let step = GenerationStep(
            index: index, token: Int(values.first ?? -1), seconds: (now.0 - last.0).seconds,
            onlineBytes: now.1.bytesSent + now.1.bytesReceived - last.1.bytesSent
              - last.1.bytesReceived,
            rounds: now.1.rounds - last.1.rounds)
          last = now
          await onToken(step)
        }
        return outputs
      })
    return GenerationReport(tokens: tokens.map { Int($0) }, costs: costs)
  }

  /// Runs the dealer, both parties and the client of one fresh run as concurrent tasks over
  /// in-memory pipes and channels: each back end walks its body (the same gates in the same
  /// order), then the streams are closed and checked to the end. The streams' headers carry
  /// the census of the model's graph at `t` tokens, `valid` of them real, or of `census` (a
  /// body other than the model's, as the gate tests run) walked on zero wires.
  func run(
    tokens t: Int, valid: Int, generation: GenerationPlan? = nil, hidesLength: Bool = false,
    census censusBody: ((any MaskedWireBackend) async throws -> Void)? = nil,
    options: RunOptions,
    dealer dealerBody: @escaping @Sendable (DealerBackend) async throws -> Void,
    party partyBody: @escaping @Sendable (PartyBackend) async throws -> Void,
    client clientBody:
      @escaping @Sendable (_ keys: KeySource, _ parties: [any Channel], _ meter: any Channel)
      async throws -> [Int64]
  ) async throws -> ([Int64], RunCosts) {
    var random = try SecureRandom()
    var census: GraphCensus?
    if let censusBody { census = try await GraphCensus.walking(manifest, censusBody) }
    let context = try await RunContext.make(
      runID: random.bytes(16), manifest: manifest, model: model, tokens: t, valid: valid,
      generation: generation, hidesLength: hidesLength, census: census)
    let pipes = (0..<3).map { _ in KeyPipe(capacity: options.pipeCapacity) }
    let (p0, p1): (any Channel, any Channel) =
      try await options.peerChannels?() ?? InMemoryChannel.makePair(.p0, .p1)
    let (client0, party0Client) = InMemoryChannel.makePair(.client, .p0)
    let (client1, party1Client) = InMemoryChannel.makePair(.client, .p1)
    let channels: [any Channel] = [p0, p1, client0, party0Client, client1, party1Client]
    let peers = [p0, p1]
    let clients = [party0Client, party1Client]
    let (dealerMasks, partyMasked, partyShares, ledgers) = (
      self.dealerMasks, self.partyMasked, self.partyShares, self.ledgers
    )

    enum RoleResult: Sendable {
      case dealer(DealerRun.Result)
      case party(Int, PartyRun.Result)
      case client([Int64])
    }
    let results = try await withThrowingTaskGroup(of: RoleResult.self) { group in
      group.addTask {
        .dealer(
          try await DealerRun.run(
            context, masks: dealerMasks, sinks: pipes, segmentBytes: options.segmentBytes,
            alternating: options.alternate ? [0, 1] : [], body: dealerBody))
      }
      for b in 0..<2 {
        group.addTask {
          .party(
            b,
            try await PartyRun.run(
              context, party: b, masked: partyMasked, share: partyShares[b], peer: peers[b],
              client: clients[b], segments: pipes[b], ledger: ledgers[b], body: partyBody))
        }
      }
      group.addTask {
        let (keys, _) = try await PartyRun.openStream(
          context, kind: .client, party: 2, segments: pipes[2], ledger: RunLedger())
        return .client(try await clientBody(keys, [client0, client1], p0))
      }
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
    costs.parties = [[:], [:]]
    for result in results {
      switch result {
      case .dealer(let dealer):
        costs.offlineSeconds += dealer.seconds
        costs.keyBytes = dealer.streamBytes
        costs.dealer = dealer.costs
      case .party(let b, let party):
        costs.onlineSeconds = max(costs.onlineSeconds, party.onlineSeconds)
        partyOffline = max(partyOffline, party.offlineSeconds)
        costs.parties[b] = party.costs
      case .client(let values): output = values
      }
    }
    costs.offlineSeconds += partyOffline
    costs.onlineBytes = p0.counters.bytesSent + p0.counters.bytesReceived
    costs.rounds = p0.counters.rounds
    costs.clientBytes = [client0, client1].reduce(0) {
      $0 + $1.counters.bytesSent + $1.counters.bytesReceived
    }
    for pipe in pipes { costs.peakPipeBytes = max(costs.peakPipeBytes, await pipe.peakBytes) }
    for channel in channels { await channel.close() }
    return (output, costs)
  }
}

/// The model's graph as each back end walks it in a run: the output, then its reveal to the
/// client.
public enum ModelRun {
  static func revealSite(_ model: any TransformerGraph) -> GateSite {
    GateSite(op: OpSite(layer: model.config.layers, kind: .normalize, index: 1), gate: "reveal")
  }

  public static func dealer(
    _ model: any TransformerGraph, _ parameters: RecipeParameters, tokens t: Int, valid: Int,
    _ dealer: DealerBackend
  ) async throws { try await walk(model, parameters, tokens: t, valid: valid, dealer) }

  public static func party(
    _ model: any TransformerGraph, _ parameters: RecipeParameters, tokens t: Int, valid: Int,
    _ party: PartyBackend
  ) async throws { try await walk(model, parameters, tokens: t, valid: valid, party) }

  /// The graph of a run at `t` tokens (`valid` real): the model's output revealed to the
  /// client, or with `generation` a decoder's generation revealing each token.
  static func walk<Backend: GateBackend>(
    _ model: any TransformerGraph, _ parameters: RecipeParameters, tokens t: Int, valid: Int,
    generation: GenerationPlan? = nil, hidesLength: Bool = false, _ backend: Backend
  ) async throws {
    if let generation {
      guard let decoder = model as? any DecoderGraph else {
        throw MPCError.protocolViolation("a generation run of a model that is not a decoder")
      }
      return try await ModelRun.generation(decoder, parameters, generation, backend)
    }
    let engine = try RecipeEngine(backend: backend, parameters: parameters)
    _ = try await backend.reveal(
      try await model.output(
        TokenInput(hiddenCount: t, hidesLength: hidesLength), validTokens: valid, engine: engine),
      site: revealSite(model))
  }
}

extension ModelRun {
  /// A generation run's graph as each back end walks it: `Generation.greedy` with every
  /// step's secret token revealed to the client.
  public static func generation<Backend: GateBackend>(
    _ model: any DecoderGraph, _ parameters: RecipeParameters, _ plan: GenerationPlan,
    _ backend: Backend
  ) async throws {
    let engine = try RecipeEngine(backend: backend, parameters: parameters)
    try await Generation.greedy(
      model, prompt: TokenInput(hiddenCount: plan.promptTokens), newTokens: plan.newTokens,
      cache: plan.cache, engine: engine
    ) { step in _ = try await backend.reveal(step.index, site: revealSite(model)) }
  }
}

/// The public shape of a generation run, which the servers and the dealer know.
public struct GenerationPlan: Sendable, Equatable, Codable {
  public var promptTokens: Int
  public var newTokens: Int
  public var cache: Bool

  public init(promptTokens: Int, newTokens: Int, cache: Bool = true) {
    self.promptTokens = promptTokens
    self.newTokens = newTokens
    self.cache = cache
  }

  /// Refuses a plan `model` cannot run: not a decoder, no new token or more than
  /// `maximumNewTokens`, or past the model's positions.
  public func check(_ model: any TransformerGraph, maximumNewTokens: Int) throws(MPCError) {
    guard model is any DecoderGraph else {
      throw .invalidParameters(
        "generation needs a decoder; this is a \(model.config.architecture.rawValue) model")
    }
    guard (1...maximumNewTokens).contains(newTokens) else {
      throw .invalidParameters(
        "\(newTokens) new tokens; this server generates 1…\(maximumNewTokens)")
    }
    let limit = model.config.maxPositions
    guard promptTokens >= 1, promptTokens + newTokens - 1 <= limit else {
      throw .invalidParameters(
        "a prompt of \(promptTokens) tokens and \(newTokens) new exceed the model's \(limit) positions"
      )
    }
  }
}

/// One generated token as the client saw it arrive, with what the step cost since the last.
public struct GenerationStep: Sendable, Equatable {
  /// 0 for the token after the prompt.
  public var index: Int
  public var token: Int
  /// Wall seconds since the previous token (the first: since the run began, prompt included).
  public var seconds: Double
  /// P0↔P1 bytes and rounds since the previous token.
  public var onlineBytes: Int
  public var rounds: Int
}

/// What a secure generation produced and cost.
public struct GenerationReport: Sendable {
  public let tokens: [Int]
  public let costs: RunCosts
}

/// The client's part of a run: it masks its secret inputs (a hidden-length run's key mask and
/// 1/count) with the dealer's masks and its one-hot rows with the dealer's seeds, sends them to
/// both parties, and unmasks the output they send back.
public enum SecureClient {
  /// The client of a run with one output (an embedding, a hidden state).
  static func run(
    ids: [Int], inputs: [[Int64]] = [], vocabulary: Int, bits: Int, keys: KeySource,
    parties: [any Channel]
  ) async throws -> [Int64] {
    try await run(
      ids: ids, inputs: inputs, vocabulary: vocabulary, bits: bits, keys: keys, parties: parties,
      reveals: 1
    ) { _, _ in }
  }

  /// The client of a run whose graph takes `inputs` from it first (each masked with its key
  /// record's mask), then its tokens, and opens `reveals` outputs to it, one after another (a
  /// generated token each): each is unmasked with its key record's mask, in the ring the record
  /// names, and handed to `received` as it arrives; the results are concatenated.
  static func run(
    ids: [Int], inputs: [[Int64]] = [], vocabulary: Int, bits: Int, keys: KeySource,
    parties: [any Channel], reveals: Int, received: (Int, [Int64]) async throws -> Void
  ) async throws -> [Int64] {
    if let bad = ids.first(where: { !(0..<vocabulary).contains($0) }) {
      throw MPCError.protocolViolation("token id \(bad) is outside the vocabulary of \(vocabulary)")
    }
    for (index, values) in inputs.enumerated() {
      let bundle: ShareBundle
      let mask: [UInt64]
      do {
        bundle = try ShareBundle(record: try await keys.next(opIndex: index), party: 2)
        mask = try bundle.parts().first ?? []
      } catch { throw MPCError.protocolViolation("client key record: \(error)") }
      guard mask.count == values.count else {
        throw MPCError.protocolViolation(
          "the client's input \(index) has \(values.count) values, its mask \(mask.count)")
      }
      let ring = ringMask(bundle.bits)
      let masked = zip(values, mask).map { (UInt64(bitPattern: $0) &+ $1) & ring }
      let message = BitPacking.pack(masked, bits: bundle.bits)
      for party in parties { try await party.send(message) }
    }
    let first = inputs.count
    let seeds: [[UInt64]]
    do {
      seeds = try ShareBundle(record: try await keys.next(opIndex: first), party: 2, inputBits: 64)
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
    var outputs: [Int64] = []
    for reveal in 0..<reveals {
      let bundle: ShareBundle
      let mask: [UInt64]
      do {
        bundle = try ShareBundle(
          record: try await keys.next(opIndex: first + 1 + reveal), party: 2)
        mask = try bundle.parts().first ?? []
      } catch { throw MPCError.protocolViolation("client key record: \(error)") }
      let ring = bundle.bits
      var opened: [[UInt64]] = []
      for party in parties {
        let bytes = try await party.receive()
        guard bytes.count == BitPacking.packedByteCount(count: mask.count, bits: ring) else {
          throw MPCError.protocolViolation(
            "\(party.peerDescription) sent \(bytes.count) bytes as output \(reveal)")
        }
        opened.append(BitPacking.unpack(bytes, bits: ring, count: mask.count))
      }
      guard opened[0] == opened[1] else {
        throw MPCError.protocolViolation("the parties sent different outputs")
      }
      let values = zip(opened[0], mask).map {
        signedValue(($0 &- $1) & ringMask(ring), bits: ring)
      }
      try await received(reveal, values)
      outputs += values
    }
    try await keys.finish(afterOp: first + 1 + reveals)
    return outputs
  }
}

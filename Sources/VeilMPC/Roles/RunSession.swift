// One run's halves, side by side (DESIGN §4, §7, §10): what the dealer, party b and the client
// each do between the moment they agree on a run and its end, over whatever carries their key
// segments and messages. The one-process wiring (`SecureModel`) feeds them in-memory pipes and
// channels; a deployment feeds them TLS channels. Nothing here knows which.
import Crypto
import Foundation
import VeilFSS
import VeilModels
import VeilNet
import VeilRing

/// The public facts of one run, which every role must agree on before it starts.
public struct RunContext: Sendable, Equatable {
  /// 16 random bytes, drawn by whoever starts the run (P0, or the one-process wiring).
  public let runID: [UInt8]
  public let setupID: [UInt8]
  public let modelDigest: [UInt8]
  public let parameters: RecipeParameters
  public let sequenceLength: Int
  /// The public graph: architecture, tokens, valid tokens ("bert|12|12").
  public let graph: String
  /// Every gate call of the run's graph, and the key records each stream holds.
  public let census: GraphCensus

  public init(
    runID: [UInt8], setupID: [UInt8], modelDigest: [UInt8], parameters: RecipeParameters,
    sequenceLength: Int, graph: String, census: GraphCensus
  ) {
    self.runID = runID
    self.setupID = setupID
    self.modelDigest = modelDigest
    self.parameters = parameters
    self.sequenceLength = sequenceLength
    self.graph = graph
    self.census = census
  }

  /// The context of a run of `manifest`'s model at `tokens` tokens (`valid` real); its census
  /// is the model's graph walked (once per process and length) unless given.
  static func make(
    runID: [UInt8], manifest: SetupManifest, model: any TransformerGraph, tokens: Int, valid: Int,
    generation: GenerationPlan? = nil, hidesLength: Bool = false, census given: GraphCensus? = nil
  ) async throws -> RunContext {
    let census: GraphCensus
    if let given {
      census = given
    } else {
      census = try await GraphCensus.of(
        model, manifest: manifest, tokens: tokens, valid: valid, generation: generation,
        hidesLength: hidesLength)
    }
    return RunContext(
      runID: runID, setupID: manifest.setupIDBytes, modelDigest: manifest.modelDigest,
      parameters: manifest.parameters, sequenceLength: tokens,
      graph: graph(
        manifest.config, tokens: tokens, valid: valid, generation: generation,
        hidesLength: hidesLength),
      census: census)
  }

  /// The graph description of a model's output at `tokens` tokens, `valid` of them real, or of
  /// a generation after them.
  public static func graph(
    _ config: ModelConfig, tokens: Int, valid: Int, generation: GenerationPlan? = nil,
    hidesLength: Bool = false
  ) -> String {
    let base =
      "\(config.architecture.rawValue)|\(tokens)|\(valid)" + (hidesLength ? "|hidden length" : "")
    guard let generation else { return base }
    return base + "|generate \(generation.newTokens)" + (generation.cache ? " cached" : "")
  }

  var format: WireFormat { WireFormat(bits: parameters.ringBits, scale: parameters.fractionalBits) }

  /// H(model digest ‖ graph ‖ length ‖ recipe ‖ gate census), canonical and versioned.
  var graphDigest: [UInt8] {
    var d = CanonicalDigest("veil.graph-digest/2")
    d.bytes(modelDigest)
    d.string(graph)
    d.int(sequenceLength)
    d.parameters(parameters)
    d.bytes(census.digest)
    return d.finish()
  }

  func header(_ kind: KeyStreamKind, party: Int, prgKeyID: [UInt8]) -> KeyStreamHeader {
    KeyStreamHeader(
      kind: kind, party: party, runID: runID, modelSetupID: setupID, modelDigest: modelDigest,
      graphDigest: graphDigest, recipe: parameters.recipeName, recipeVersion: 1,
      ringBits: parameters.ringBits, fractionalBits: parameters.fractionalBits,
      sequenceLength: sequenceLength, batch: 1,
      opCount: kind == .client ? census.clientRecords : census.partyRecords, prgKeyID: prgKeyID)
  }

  /// What P0 and P1 compare before their first message: every field of their stream headers
  /// but the party (DESIGN §7).
  func agreementDigest(prgKeyID: [UInt8]) -> [UInt8] {
    var d = CanonicalDigest("veil.run-agreement/1")
    d.bytes(runID)
    d.bytes(setupID)
    d.bytes(graphDigest)
    d.bytes(prgKeyID)
    return d.finish()
  }
}

/// The dealer's first chunk on every stream: that stream's MAC key and the run's tree-PRG key
/// (public to both parties; the fixed-key hash needs it random, not secret). It travels only
/// inside the channel to its recipient.
struct StreamPreamble: CustomStringConvertible {
  static let magic = Array("VKP1".utf8)
  static let byteCount = 4 + 32 + 16
  let macKey: [UInt8]
  let prgRunKey: [UInt8]

  init(macKey: [UInt8], prgRunKey: [UInt8]) {
    self.macKey = macKey
    self.prgRunKey = prgRunKey
  }

  init(decoding bytes: [UInt8]) throws(MPCError) {
    guard bytes.count == Self.byteCount, Array(bytes.prefix(4)) == Self.magic else {
      throw .protocolViolation("the key stream does not start with the dealer's preamble")
    }
    macKey = Array(bytes[4..<36])
    prgRunKey = Array(bytes[36..<52])
  }

  var encoded: [UInt8] { Self.magic + macKey + prgRunKey }
  var description: String { "StreamPreamble(redacted)" }
}

/// The dealer's half of a run.
public enum DealerRun {
  public struct Result: Sendable {
    /// Key generation, less waits for recipients to drain their streams.
    public var seconds: Double
    /// Bytes shipped per stream (P0, P1, client).
    public var streamBytes: [Int]
    public var costs: [OpKind: [GateKind: GateCost]]
  }

  /// Opens P0's, P1's and the client's streams on `sinks`, walks `body` (the graph) and ends the
  /// streams. With `alternating` streams the dealer waits after each shipment until their
  /// readers are idle (one machine: keygen and online work measured apart).
  static func run(
    _ context: RunContext, masks: RunWeights, sinks: [any KeySegmentSink], segmentBytes: Int,
    alternating: [Int], body: @Sendable (DealerBackend) async throws -> Void
  ) async throws -> Result {
    precondition(sinks.count == 3, "a run has three key streams")
    var random = try SecureRandom()
    let runKey = random.bytes(16)
    let prg = try TreePRG(runKey: runKey)
    let macKeys = (0..<3).map { _ in random.bytes(32) }
    for (sink, macKey) in zip(sinks, macKeys) {
      try await sink.push(StreamPreamble(macKey: macKey, prgRunKey: runKey).encoded)
    }
    let headers = [
      context.header(.inference, party: 0, prgKeyID: prg.keyID),
      context.header(.inference, party: 1, prgKeyID: prg.keyID),
      context.header(.client, party: 2, prgKeyID: prg.keyID),
    ]
    let streams = DealerKeyStreams(
      headers: headers, macKeys: macKeys.map { SymmetricKey(data: $0) }, pipes: sinks,
      segmentBytes: segmentBytes, alternating: alternating)
    let tally = CostTally()
    let dealer = try DealerBackend(
      masks: masks, format: context.format, prg: prg, streams: streams, tally: tally)
    let clock = ContinuousClock()
    let start = clock.now
    try await body(dealer)
    try await dealer.finish()
    let seconds = (clock.now - start).seconds - (await streams.waitSeconds)
    return Result(
      seconds: seconds,
      streamBytes: await streams.streamBytes.map { $0 + StreamPreamble.byteCount },
      costs: tally.snapshot)
  }
}

/// Party b's half of a run.
public enum PartyRun {
  public struct Result: Sendable {
    /// Wall time less waits for keys and input-independent products.
    public var onlineSeconds: Double
    public var offlineSeconds: Double
    public var costs: [OpKind: [GateKind: GateCost]]
  }

  /// Opens the key stream of `kind` for `party` (2: the client) on `segments`: the dealer's
  /// preamble, then a reader that checks every header field against `context`, burns the run
  /// id in `ledger` before the first key is used, and verifies each segment's MAC.
  static func openStream(
    _ context: RunContext, kind: KeyStreamKind, party: Int, segments: any KeySegmentSource,
    ledger: RunLedger
  ) async throws -> (KeySource, TreePRG) {
    guard let first = try await segments.pop() else { throw KeyStreamError.truncated }
    if first.count != StreamPreamble.byteCount,
      let message = try? JSONDecoder().decode(RoleMessage.self, from: Data(first)),
      case .failure(let reason) = message
    {
      throw RoleError.peerFailed(peer: "the dealer", reason: reason)
    }
    let preamble = try StreamPreamble(decoding: first)
    let prg = try TreePRG(runKey: preamble.prgRunKey)
    let source = KeySource(
      pipe: segments, expected: context.header(kind, party: party, prgKeyID: prg.keyID),
      macKey: SymmetricKey(data: preamble.macKey), ledger: ledger)
    return (source, prg)
  }

  /// Compares the run with the peer, walks `body` (the graph) on masked wires, and checks the
  /// key stream to its end.
  static func run(
    _ context: RunContext, party b: Int, masked: RunWeights, share: RunWeights,
    peer: any Channel, client: any Channel, segments: any KeySegmentSource, ledger: RunLedger,
    body: @Sendable (PartyBackend) async throws -> Void
  ) async throws -> Result {
    let (keys, prg) = try await openStream(
      context, kind: .inference, party: b, segments: segments, ledger: ledger)
    let clock = ContinuousClock()
    let start = clock.now
    try await keys.start()
    let mine = context.agreementDigest(prgKeyID: prg.keyID)
    guard try await peer.exchange(mine) == mine else {
      throw MPCError.protocolViolation(
        "\(peer.peerDescription) is in another run, model or graph (their header hashes differ)")
    }
    let tally = CostTally()
    let party = PartyBackend(
      party: b, masked: masked, share: share, format: context.format, prg: prg, peer: peer,
      client: client, keys: keys, tally: tally)
    try await body(party)
    try await party.finish()
    let wall = (clock.now - start).seconds
    let offline = await party.offlineTotal
    return Result(
      onlineSeconds: wall - (await keys.waitSeconds) - offline, offlineSeconds: offline,
      costs: tally.snapshot)
  }
}

// MARK: The halves over channels (a deployment)

extension DealerSetupSecrets {
  /// Deals a run of this setup over channels to P0, P1 and the client (one key stream each,
  /// flow-controlled by the channels).
  public func deal(
    _ context: RunContext, to recipients: [any Channel],
    body: @Sendable (DealerBackend) async throws -> Void
  ) async throws -> DealerRun.Result {
    try await DealerRun.run(
      context, masks: runWeights(), sinks: recipients.map { ChannelKeySink(channel: $0) },
      segmentBytes: RunOptions().segmentBytes, alternating: [], body: body)
  }
}

extension ServerRoleState {
  /// Runs party b's half with its key stream arriving on `dealer`.
  public func run(
    _ context: RunContext, party: Int, peer: any Channel, client: any Channel,
    dealer: any Channel, body: @Sendable (PartyBackend) async throws -> Void
  ) async throws -> PartyRun.Result {
    try await PartyRun.run(
      context, party: party, masked: masked, share: share, peer: peer, client: client,
      segments: ChannelKeySource(channel: dealer), ledger: ledger, body: body)
  }
}

extension SecureClient {
  /// The client's half over channels: its key stream from `dealer` (its run id burnt in the
  /// client's durable `ledger`), its masked one-hot rows to both servers, the output unmasked.
  public static func run(
    _ context: RunContext, ids: [Int], inputs: [[Int64]] = [], vocabulary: Int,
    dealer: any Channel, servers: [any Channel], ledger: RunLedger, reveals: Int = 1,
    received: (Int, [Int64]) async throws -> Void = { _, _ in }
  ) async throws -> [Int64] {
    let (keys, _) = try await PartyRun.openStream(
      context, kind: .client, party: 2, segments: ChannelKeySource(channel: dealer),
      ledger: ledger)
    try await keys.start()
    return try await run(
      ids: ids, inputs: inputs, vocabulary: vocabulary, bits: context.parameters.ringBits,
      keys: keys, parties: servers, reveals: reveals, received: received)
  }
}

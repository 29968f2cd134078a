// The client of a deployment (`veil embed --remote`, and the library's `VeilClient`): it reads
// the public model card from P0, tokenizes locally, asks P0 for a run per text, joins P1 and
// the dealer, sends its masked one-hot rows and unmasks the embedding. The text and the token
// ids never leave this process; the client keeps a durable ledger of the key streams it used.
import Foundation
import VeilFSS
import VeilMPC
import VeilModels
import VeilNet

/// What a remote embedding cost, as the client sees it.
public struct RemoteRunCosts: Sendable {
  public var seconds: Double
  public var tokens: Int
  public var clientBytes: Int
  public var keyBytes: Int
}

public final class VeilClient: Sendable {
  let servers: [Endpoint]
  let dealer: Endpoint
  let deployment: Deployment
  let ledger: RunLedger
  private let card = Locked<Model?>(nil)
  private let decoderCard = Locked<Decoder?>(nil)

  /// `servers` are P0's and P1's addresses; `ledgerDirectory` keeps the client's consumed runs.
  public init(
    servers: [Endpoint], dealer: Endpoint, deployment: Deployment, ledgerDirectory: String
  )
    throws
  {
    guard servers.count == 2 else { throw RoleError.state("give two servers, P0's and P1's") }
    self.servers = servers
    self.dealer = dealer
    self.deployment = deployment
    ledger = try RunLedger(directory: ledgerDirectory)
  }

  /// A client with the certificates `veil certs` wrote in `certificates` (role client), its
  /// ledger under `ledgerDirectory` (default ${VEIL_CACHE:-~/.cache/veil}/client/ledger).
  public convenience init(
    servers: [String], dealer: String, certificates: String, ledgerDirectory: String? = nil
  ) throws {
    let parsed = servers.compactMap(Endpoint.init)
    guard parsed.count == servers.count, let dealerEndpoint = Endpoint(dealer) else {
      throw RoleError.state("addresses must be HOST:PORT")
    }
    let cache =
      ProcessInfo.processInfo.environment["VEIL_CACHE"] ?? (NSHomeDirectory() + "/.cache/veil")
    try self.init(
      servers: parsed, dealer: dealerEndpoint,
      deployment: try Deployment(role: .client, certificates: certificates, insecure: false),
      ledgerDirectory: ledgerDirectory ?? cache + "/client/ledger")
  }

  /// The sentence embedding of `text` (truncated to the model's limit), on secret shares; the
  /// model card is fetched once.
  public func embed(_ text: String) async throws -> [Double] {
    let model = try await cachedModel()
    let tokens = try SentenceEmbedder.tokenize(
      text, config: model.config, tokenizer: model.tokenizer)
    return try await embed(ids: tokens.ids, model: model).0
  }

  /// The model card, read from P0 once and kept.
  func cachedModel() async throws -> Model {
    if let cached = card.withLock({ $0 }) { return cached }
    let model = try await self.model()
    card.withLock { $0 = model }
    return model
  }

  /// The decoder card, read from P0 once and kept.
  func cachedDecoder() async throws -> Decoder {
    if let cached = decoderCard.withLock({ $0 }) { return cached }
    let decoder = try await self.decoder()
    decoderCard.withLock { $0 = decoder }
    return decoder
  }

  func forgetModel() {
    card.withLock { $0 = nil }
    decoderCard.withLock { $0 = nil }
  }

  /// The public model P0 serves: its manifest and a tokenizer read from its public files.
  public struct Model: Sendable {
    public let manifest: SetupManifest
    public let config: ModelConfig
    public let tokenizer: WordPieceTokenizer
  }

  public func model() async throws -> Model {
    try await withCard { manifest, directory in
      let config = try ModelConfig(modelDirectory: directory)
      guard config.architecture == .bert else {
        throw RoleError.state(
          "the deployment serves a \(config.architecture.rawValue) model; embeddings need BERT")
      }
      return Model(
        manifest: manifest, config: config,
        tokenizer: try WordPieceTokenizer(modelDirectory: directory))
    }
  }

  /// The public decoder P0 serves: its manifest, config and text side.
  public struct Decoder: Sendable {
    public let manifest: SetupManifest
    public let config: ModelConfig
    public let text: DecoderText
  }

  public func decoder() async throws -> Decoder {
    try await withCard { manifest, directory in
      let config = try ModelConfig(modelDirectory: directory)
      _ = try DecoderFolder.graph(config, directory: directory)
      return Decoder(
        manifest: manifest, config: config, text: try DecoderText(modelDirectory: directory))
    }
  }

  /// P0's model card with its public files in a temporary folder, read by `read`.
  private func withCard<T>(_ read: (SetupManifest, String) throws -> T) async throws -> T {
    let p0 = try await deployment.connect(to: servers[0], as: .p0, id: RunID.random())
    defer { Task { await p0.close() } }
    try await p0.send(.modelCardRequest)
    guard case .modelCard(let card) = try await p0.receiveReply(), card.files.count <= 64 else {
      throw RoleError.unexpected(peer: p0.peerDescription, message: "no model card")
    }
    try card.manifest.validate()
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-card-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    for name in card.files {
      let data = try await p0.receive()
      guard !name.contains("/"), !name.hasPrefix("."), !name.isEmpty else {
        throw RoleError.unexpected(peer: p0.peerDescription, message: "a file name with a path")
      }
      FileManager.default.createFile(atPath: directory + "/" + name, contents: Data(data))
    }
    return try read(card.manifest, directory)
  }

  /// The sentence embedding of `ids` (tokenized with `model`), on secret shares. With
  /// `padTo`, the ids are padded to the next multiple of it (capped at the model's limit) and
  /// the real length stays in this process: the servers and the dealer see only the bucket.
  public func embed(ids: [Int], model: Model, padTo: Int? = nil) async throws
    -> ([Double], RemoteRunCosts)
  {
    let (output, costs): ([Int64], RemoteRunCosts)
    if let padTo {
      let padded = try HiddenLengthInputs.pad(
        ids, to: padTo, limit: model.config.tokenLimit,
        padID: Int(model.tokenizer.padId))
      let inputs = HiddenLengthInputs.values(
        real: ids.count, count: padded.count,
        fractionalBits: model.manifest.parameters.fractionalBits)
      (output, costs) = try await run(
        ids: padded, inputs: inputs, manifest: model.manifest, generation: nil)
    } else {
      (output, costs) = try await run(ids: ids, manifest: model.manifest, generation: nil)
    }
    let scale = Double(
      sign: .plus, exponent: model.manifest.parameters.fractionalBits, significand: 1)
    return (output.map { Double($0) / scale }, costs)
  }

  /// Greedy generation of `newTokens` tokens after the prompt `ids` on secret shares: each
  /// token reaches `onToken` as the client unmasks it; the servers see no token.
  public func generate(
    ids: [Int], newTokens: Int, cache: Bool = true, decoder: Decoder,
    onToken: (Int, Int) async throws -> Void = { _, _ in }
  ) async throws -> ([Int], RemoteRunCosts) {
    let plan = GenerationPlan(promptTokens: ids.count, newTokens: newTokens, cache: cache)
    let (output, costs) = try await run(
      ids: ids, manifest: decoder.manifest, generation: plan
    ) { index, values in try await onToken(index, Int(values.first ?? -1)) }
    return (output.map { Int($0) }, costs)
  }

  /// One run against the deployment: P0 orders it, the client joins P1 and the dealer, sends
  /// its masked rows and unmasks what is revealed to it.
  private func run(
    ids: [Int], inputs: [[Int64]] = [], manifest: SetupManifest, generation: GenerationPlan?,
    received: (Int, [Int64]) async throws -> Void = { _, _ in }
  ) async throws -> ([Int64], RemoteRunCosts) {
    let hidesLength = !inputs.isEmpty
    let clock = ContinuousClock()
    let start = clock.now
    let p0 = try await deployment.connect(to: servers[0], as: .p0, id: RunID.random())
    var open: [TCPChannel] = [p0]
    defer { for channel in open { Task { await channel.close() } } }
    try await p0.send(
      .embed(
        EmbedRequest(
          tokens: ids.count, validTokens: ids.count, setupID: manifest.setupID,
          generation: generation, hidesLength: hidesLength)))
    guard case .accepted(let order) = try await p0.receiveReply() else {
      throw RoleError.unexpected(peer: p0.peerDescription, message: "another reply to a request")
    }
    guard order.tokens == ids.count, order.validTokens == ids.count,
      order.generation == generation, order.hidesLength == hidesLength
    else {
      throw RoleError.unexpected(peer: p0.peerDescription, message: "a run of another shape")
    }
    let context = try await order.context(manifest)
    let runID = try RunID(order: order)
    let p1 = try await deployment.connect(to: servers[1], as: .p1, id: runID)
    open.append(p1)
    try await p1.send(.join(order))
    let dealerChannel = try await deployment.connect(to: dealer, as: .dealer, id: runID)
    open.append(dealerChannel)
    try await dealerChannel.send(.run(order))
    let output: [Int64]
    do {
      output = try await SecureClient.run(
        context, ids: ids, inputs: inputs, vocabulary: manifest.config.vocabularySize,
        dealer: dealerChannel,
        servers: [p0, p1], ledger: ledger, reveals: generation?.newTokens ?? 1,
        received: received)
    } catch {
      // A server that failed says why before it closes; prefer its word to a closed channel.
      throw await Self.explain(error, from: [p0, p1, dealerChannel])
    }
    let costs = RemoteRunCosts(
      seconds: (clock.now - start).seconds, tokens: ids.count,
      clientBytes: [p0, p1].reduce(0) { $0 + $1.counters.bytesSent + $1.counters.bytesReceived },
      keyBytes: dealerChannel.counters.bytesReceived)
    return (output, costs)
  }

  /// What the roles of a failed run say about it: each channel's failure message, if one
  /// arrives within a moment (data still in flight before it is skipped), servers first — the
  /// dealer often only saw a server hang up, while the server names the role that was lost.
  /// `error` itself when nobody says anything.
  static func explain(_ error: any Error, from channels: [TCPChannel]) async -> any Error {
    var reasons: [(peer: String, reason: String)] = []
    for channel in channels {
      // A server may first close the run's other sessions: give it a moment longer.
      let wait: Duration = channel.peerRole == .dealer ? .milliseconds(300) : .seconds(2)
      let reason = try? await withTimeout(wait) { () async throws -> String? in
        for _ in 0..<64 {
          if let reason = RoleMessage.failureReason(in: try await channel.receive()) {
            return reason
          }
        }
        return nil
      }
      if let reason = reason ?? nil { reasons.append((channel.peerDescription, reason)) }
    }
    guard let first = reasons.first else { return error }
    let others = reasons.dropFirst().map { "\($0.peer) reports: \($0.reason)" } + ["\(error)"]
    return RoleError.peerFailed(
      peer: first.peer, reason: ([first.reason] + others).joined(separator: "; "))
  }
}

/// `body`'s result, or nil if it takes longer than `timeout`.
func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T)
  async throws -> T?
{
  try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: timeout)
      return nil
    }
    let first = try await group.next() ?? nil
    group.cancelAll()
    return first
  }
}

extension Duration {
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// The owner's one-time setup over a deployment (`veil share-model`).
public enum ModelOwnerUpload {
  /// The public files a server hands clients: config and tokenizer, never the weights.
  static let publicFileNames = [
    "config.json", "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
  ]

  /// Shares the model in `directory` with the servers, the dealer drawing the masks. Returns
  /// the setup id and H(Ŵ).
  public static func share(
    modelDirectory directory: String, parameters: RecipeParameters, servers: [Endpoint],
    dealer: Endpoint, deployment: Deployment
  ) async throws -> (setupID: String, maskedDigest: [UInt8]) {
    let config = try ModelConfig(modelDirectory: directory)
    let graph: any TransformerGraph
    let weights: Float64Weights
    if config.architecture == .bert {
      let embedder = try SentenceEmbedder(modelDirectory: directory)
      (graph, weights) = (embedder.bert, try embedder.float64Weights())
    } else {
      let folder = try DecoderFolder(modelDirectory: directory)
      (graph, weights) = (folder.model, try folder.float64Weights())
    }
    var shapes: [WeightID: [Int]] = [:]
    for (id, tensor) in weights.tensors { shapes[id] = tensor.shape }
    let manifest = SetupManifest(model: graph, shapes: shapes, parameters: parameters)
    var files: [String: [UInt8]] = [:]
    for name in publicFileNames {
      if let data = FileManager.default.contents(atPath: directory + "/" + name) {
        files[name] = [UInt8](data)
      }
    }
    guard let id = RunID(bytes: manifest.setupIDBytes) else { throw RoleError.state("setup id") }
    let dealerChannel = try await deployment.connect(to: dealer, as: .dealer, id: id)
    var channels: [TCPChannel] = [dealerChannel]
    defer { for channel in channels { Task { await channel.close() } } }
    for (b, server) in servers.enumerated() {
      channels.append(try await deployment.connect(to: server, as: b == 0 ? .p0 : .p1, id: id))
    }
    let digest = try await SetupRoles.owner(
      manifest: manifest, weights: weights, publicFiles: files, dealer: dealerChannel,
      servers: Array(channels[1...]))
    return (manifest.setupID, digest)
  }
}

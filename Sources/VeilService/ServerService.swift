// `veil serve --party b`: a long-running server (DESIGN §10). It accepts the owner's one setup,
// hands clients the public model card, and runs requests: P0 leads each (draws the run id,
// orders P1 and the dealer), P1 follows; both run the same party half as the one-process
// wiring, over TLS. Each request is its own session; at most `slots.limit` run at once, beyond
// that the answer is `busy`. Any failure ends that run in every role and leaves the server up.
import Foundation
import Logging
import Metrics
import VeilFSS
import VeilMPC
import VeilModels
import VeilNet

public final class ServerService: Sendable {
  public let party: Int
  let deployment: Deployment
  let stateDirectory: String
  /// P1's address (P0 connects to it); unused by P1.
  let peer: Endpoint?
  let dealer: Endpoint
  let slots: Slots
  let rendezvous = Rendezvous()
  let logger: Logger
  let metrics: ServiceMetrics
  private let state: Locked<ServerRoleState?>
  private let setupInProgress = Locked(false)
  /// How long a run waits for the other roles to join it.
  let joinTimeout: Duration = .seconds(10)
  /// The most tokens one generation request may ask for (its keys are dealt for all of them).
  static let maximumNewTokens = 256

  public init(
    party: Int, deployment: Deployment, stateDirectory: String, peer: Endpoint?, dealer: Endpoint,
    maxConcurrent: Int?, logger: Logger
  ) throws {
    self.party = party
    self.deployment = deployment
    self.stateDirectory = stateDirectory
    self.peer = peer
    self.dealer = dealer
    slots = Slots(limit: maxConcurrent ?? Slots.defaultLimit)
    self.logger = logger
    metrics = ServiceMetrics(role: "p\(party)")
    state = Locked(
      ServerRoleState.exists(in: stateDirectory)
        ? try ServerRoleState.load(from: stateDirectory, party: party) : nil)
    if party == 0 && peer == nil { throw RoleError.state("P0 needs --peer (P1's address)") }
  }

  /// Whether a setup is loaded, and which.
  public var setupID: String? { state.withLock { $0?.setup.manifest.setupID } }
  public var concurrencyLimit: Int { slots.limit }

  /// Serves until the listener is closed.
  public func serve(_ listener: TCPListener) async {
    await acceptSessions(listener, name: "p\(party)", logger: logger, metrics: metrics) {
      try await self.handle($0, first: $1, logger: $2)
    }
  }

  private func handle(_ channel: TCPChannel, first: RoleMessage, logger: Logger) async throws
    -> SessionDisposition
  {
    switch (channel.peerRole, first) {
    case (.owner, .setup(let manifest)):
      try await setUp(manifest, owner: channel, logger: logger)
    case (.p0, .setup), (.client, .join):
      // The second connection of a setup or a run: its task takes it from here.
      await rendezvous.deliver(Arrival(channel: channel, message: first))
      return .handedOn
    case (.p0, .run(let order)) where party == 1:
      try await follow(order, leader: channel, logger: logger)
    case (.client, .modelCardRequest):
      try await sendCard(to: channel)
    case (.client, .embed(let request)) where party == 0:
      try await lead(request, client: channel, logger: logger)
    default:
      throw RoleError.unexpected(peer: channel.peerDescription, message: "'\(first.kind)'")
    }
    return .finished
  }

  private func loaded() throws -> ServerRoleState {
    guard let state = state.withLock({ $0 }) else {
      throw RoleError.state("p\(party) holds no model yet: run `veil share-model` first")
    }
    return state
  }

  // MARK: Setup

  private func setUp(_ manifest: SetupManifest, owner: TCPChannel, logger: Logger) async throws {
    if let held = setupID {
      throw RoleError.state("p\(party) already holds setup \(held); a server serves one setup")
    }
    let busy = setupInProgress.withLock { busy in
      defer { busy = true }
      return busy
    }
    guard !busy else { throw RoleError.state("p\(party) is already running a setup") }
    defer { setupInProgress.withLock { $0 = false } }
    try manifest.validate()
    guard let id = RunID(bytes: manifest.setupIDBytes) else { throw RoleError.state("setup id") }
    logger.info(
      "setup \(manifest.setupID.prefix(12)) of a \(manifest.config.architecture.rawValue) model")
    let dealerChannel = try await deployment.connect(to: dealer, as: .dealer, id: id)
    let peerChannel: TCPChannel
    if party == 0, let peer {
      peerChannel = try await deployment.connect(to: peer, as: .p1, id: id)
      try await peerChannel.send(.setup(manifest))
    } else {
      guard let arrival = await rendezvous.take(id, .p0, timeout: .seconds(30)),
        arrival.message == .setup(manifest)
      else { throw RoleError.state("p0 did not join the setup within 30 s") }
      peerChannel = arrival.channel
    }
    defer {
      Task {
        await dealerChannel.close()
        await peerChannel.close()
      }
    }
    let (setup, files) = try await SetupRoles.server(
      party: party, manifest: manifest, owner: owner, dealer: dealerChannel, peer: peerChannel)
    let saved = try ServerRoleState.save(setup, publicFiles: files, to: stateDirectory)
    state.withLock { $0 = saved }
    try await owner.send(.setupDone(maskedDigest: hex(setup.maskedDigest)))
    logger.info("setup \(manifest.setupID.prefix(12)) stored")
  }

  private func sendCard(to client: TCPChannel) async throws {
    let state = try loaded()
    let names = state.publicFiles.keys.sorted()
    try await client.send(.modelCard(ModelCard(manifest: state.setup.manifest, files: names)))
    for name in names { try await client.send(state.publicFiles[name] ?? []) }
  }

  // MARK: Runs

  /// P0: orders the run and runs party 0.
  private func lead(_ request: EmbedRequest, client: TCPChannel, logger: Logger) async throws {
    let state = try loaded()
    let manifest = state.setup.manifest
    if let wanted = request.setupID, wanted != manifest.setupID {
      throw RoleError.state("this deployment serves setup \(manifest.setupID), not \(wanted)")
    }
    guard slots.tryAcquire() else {
      try await client.send(.busy("p0 runs \(slots.limit) requests already"))
      return
    }
    defer { slots.release() }
    if let generation = request.generation {
      try generation.check(try manifest.graph(), maximumNewTokens: Self.maximumNewTokens)
    }
    let runID = RunID.random()
    let order = RunOrder(
      runID: runID.description, setupID: manifest.setupID, modelDigest: hex(manifest.modelDigest),
      tokens: request.tokens, validTokens: request.validTokens, generation: request.generation,
      hidesLength: request.hidesLength)
    let context = try await order.context(manifest)
    var logger = logger
    logger[metadataKey: "run"] = "\(runID.description.prefix(12))"
    guard let peer else { throw RoleError.state("P0 needs --peer") }
    let p1 = try await deployment.connect(to: peer, as: .p1, id: runID)
    let dealerChannel: TCPChannel
    do {
      try await p1.send(.run(order))
      guard case .accepted = try await p1.receiveReply() else {
        throw RoleError.unexpected(peer: p1.peerDescription, message: "another reply to a run")
      }
      dealerChannel = try await deployment.connect(to: dealer, as: .dealer, id: runID)
    } catch {
      await p1.close()
      throw error
    }
    try await client.send(.accepted(order))
    try await runParty(
      context, order: order, state: state, peer: p1, client: client, dealer: dealerChannel,
      logger: logger)
  }

  /// P1: joins the run P0 ordered and runs party 1.
  private func follow(_ order: RunOrder, leader: TCPChannel, logger: Logger) async throws {
    let state = try loaded()
    let context = try await order.context(state.setup.manifest)
    guard slots.tryAcquire() else {
      try await leader.send(.busy("p1 runs \(slots.limit) requests already"))
      return
    }
    defer { slots.release() }
    let runID = try RunID(order: order)
    var logger = logger
    logger[metadataKey: "run"] = "\(runID.description.prefix(12))"
    let dealerChannel = try await deployment.connect(to: dealer, as: .dealer, id: runID)
    let joined: Arrival
    do {
      try await leader.send(.accepted(order))
      guard let arrival = await rendezvous.take(runID, .client, timeout: joinTimeout) else {
        throw RoleError.state("the client did not join run \(order.runID.prefix(12)) within 10 s")
      }
      guard arrival.message == .join(order) else {
        await arrival.channel.close()
        throw RoleError.unexpected(
          peer: arrival.channel.peerDescription, message: "a join of another run")
      }
      joined = arrival
    } catch {
      await dealerChannel.close()
      throw error
    }
    try await runParty(
      context, order: order, state: state, peer: leader, client: joined.channel,
      dealer: dealerChannel, logger: logger)
  }

  private func runParty(
    _ context: RunContext, order: RunOrder, state: ServerRoleState, peer: TCPChannel,
    client: TCPChannel, dealer dealerChannel: TCPChannel, logger: Logger
  ) async throws {
    let party = party
    metrics.requests.increment()
    do {
      try await dealerChannel.send(.run(order))
      let graph = try state.setup.manifest.graph()
      let parameters = state.setup.manifest.parameters
      let result = try await state.run(
        context, party: party, peer: peer, client: client, dealer: dealerChannel
      ) { backend in
        try await order.walk(graph, parameters, backend)
      }
      metrics.onlineSeconds.increment(by: result.onlineSeconds)
      metrics.onlineBytes.increment(
        by: Int64(peer.counters.bytesSent + peer.counters.bytesReceived))
      metrics.rounds.increment(by: Int64(peer.counters.rounds))
      metrics.keyBytes.increment(by: Int64(dealerChannel.counters.bytesReceived))
      logger.info(
        "run done: \(order.tokens) tokens\(order.hidesLength ? " (length hidden)" : ""), online \(String(format: "%.3f", result.onlineSeconds)) s, \(peer.counters.bytesSent + peer.counters.bytesReceived) B, \(peer.counters.rounds) rounds"
      )
    } catch {
      // Closing the other sessions ends the run for their roles too; the run id stays burnt.
      // The session this request came on (P0's: the client's; P1's: P0's) stays open for the
      // session loop to send the reason.
      await dealerChannel.close()
      await (party == 0 ? peer : client).close()
      throw error
    }
    await peer.close()
    await dealerChannel.close()
    if party == 1 { await client.close() }
  }
}

// `veil serve --party b`: a long-running server (DESIGN §10). It accepts the owner's one setup,
// hands clients the public model card, and runs requests: P0 leads each (draws the run id,
// orders P1 and the dealer), P1 follows; both run the same party half as the one-process
// wiring, over TLS. Each request is its own session; at most `slots.limit` run at once, beyond
// that the answer is `busy`. Any failure ends that run in every role and leaves the server up.
// With a key pool (`--key-pool`), P0 keeps it filled while idle (`KeyPoolFilling.swift`) and a
// request of a pooled shape runs on pooled streams, with no key from the dealer.
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
  /// The disk pool of key streams dealt ahead, if the operator gave one.
  let pool: ServerKeyPool?
  /// P0: the dealer's pool targets as last asked, and when.
  let poolPlan = Locked<(targets: [PoolTarget], at: ContinuousClock.Instant)?>(nil)
  let state: Locked<ServerRoleState?>
  private let setupInProgress = Locked(false)
  /// How long a run waits for the other roles to join it.
  let joinTimeout: Duration = .seconds(10)
  /// The most tokens one generation request may ask for (its keys are dealt for all of them).
  static let maximumNewTokens = 256

  public init(
    party: Int, deployment: Deployment, stateDirectory: String, peer: Endpoint?, dealer: Endpoint,
    maxConcurrent: Int?, keyPool: (directory: String, limitBytes: Int)? = nil, logger: Logger
  ) throws {
    self.party = party
    self.deployment = deployment
    self.stateDirectory = stateDirectory
    self.peer = peer
    self.dealer = dealer
    slots = Slots(limit: maxConcurrent ?? Slots.defaultLimit)
    self.logger = logger
    metrics = ServiceMetrics(role: "p\(party)")
    let loaded =
      ServerRoleState.exists(in: stateDirectory)
      ? try ServerRoleState.load(from: stateDirectory, party: party) : nil
    state = Locked(loaded)
    if party == 0 && peer == nil { throw RoleError.state("P0 needs --peer (P1's address)") }
    pool = try keyPool.map {
      try ServerKeyPool(
        directory: $0.directory, limitBytes: $0.limitBytes, party: party,
        setupID: loaded?.setup.manifest.setupID,
        ledger: try RunLedger(directory: stateDirectory + "/ledger"))
    }
  }

  /// Whether a setup is loaded, and which.
  public var setupID: String? { state.withLock { $0?.setup.manifest.setupID } }
  public var concurrencyLimit: Int { slots.limit }

  /// Serves until the listener is closed (P0 with a pool keeps it filled meanwhile).
  public func serve(_ listener: TCPListener) async {
    if let pool {
      for reason in pool.dropped { logger.warning("key pool: dropped \(reason)") }
      logger.info("key pool at \(pool.directory): \(pool.summary)")
    }
    let filler = party == 0 && pool != nil ? Task { await self.keepPoolFilled() } : nil
    defer { filler?.cancel() }
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
    case (.p0, .poolFill(let fill)) where party == 1:
      try await storePooled(fill, leader: channel, logger: logger)
    case (.client, .modelCardRequest):
      try await sendCard(to: channel)
    case (.client, .embed(let request)) where party == 0:
      try await lead(request, client: channel, logger: logger)
    default:
      throw RoleError.unexpected(peer: channel.peerDescription, message: "'\(first.kind)'")
    }
    return .finished
  }

  func loaded() throws -> ServerRoleState {
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

  /// P0: orders the run (on pooled keys when the pool holds its shape) and runs party 0.
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
    guard let peer else { throw RoleError.state("P0 needs --peer") }
    var logger = logger
    if let pool, let shape = PoolShape(request: request), let entry = pool.take(shape) {
      logger[metadataKey: "run"] = "\(entry.order.runID.prefix(12))"
      let p1: TCPChannel
      do {
        p1 = try await orderP1(entry.order, at: peer)
      } catch {
        pool.finish(entry)
        // P1 lacks the stream (lost, or dropped at a restart): ours is burnt, deal on demand.
        guard case RoleError.peerFailed = error else { throw error }
        logger.warning("key pool: p1 refused the pooled run (\(error)); keys on demand")
        return try await lead(request, state: state, peer: peer, client: client, logger: logger)
      }
      let context: RunContext
      do {
        context = try await entry.order.context(manifest)
        try await client.send(.accepted(entry.order))
      } catch {
        pool.finish(entry)
        await p1.close()
        throw error
      }
      // runParty ends the pooled stream however the run ends.
      try await runParty(
        context, order: entry.order, state: state, peer: p1, client: client,
        keys: .pooled(entry, pool), logger: logger)
      return
    }
    try await lead(request, state: state, peer: peer, client: client, logger: logger)
  }

  /// P0: a run with keys on demand.
  private func lead(
    _ request: EmbedRequest, state: ServerRoleState, peer: Endpoint, client: TCPChannel,
    logger: Logger
  ) async throws {
    let manifest = state.setup.manifest
    var logger = logger
    let runID = RunID.random()
    let order = RunOrder(
      runID: runID.description, setupID: manifest.setupID, modelDigest: hex(manifest.modelDigest),
      tokens: request.tokens, validTokens: request.validTokens, generation: request.generation,
      hidesLength: request.hidesLength)
    let context = try await order.context(manifest)
    logger[metadataKey: "run"] = "\(runID.description.prefix(12))"
    let p1 = try await orderP1(order, at: peer)
    let dealerChannel: TCPChannel
    do {
      dealerChannel = try await deployment.connect(to: dealer, as: .dealer, id: runID)
    } catch {
      await p1.close()
      throw error
    }
    do { try await client.send(.accepted(order)) } catch {
      await dealerChannel.close()
      await p1.close()
      throw error
    }
    try await runParty(
      context, order: order, state: state, peer: p1, client: client, keys: .dealer(dealerChannel),
      logger: logger)
  }

  /// P0: orders P1 into `order`; P1's channel once it accepted.
  private func orderP1(_ order: RunOrder, at peer: Endpoint) async throws -> TCPChannel {
    let p1 = try await deployment.connect(to: peer, as: .p1, id: try RunID(order: order))
    do {
      try await p1.send(.run(order))
      guard case .accepted = try await p1.receiveReply() else {
        throw RoleError.unexpected(peer: p1.peerDescription, message: "another reply to a run")
      }
      return p1
    } catch {
      await p1.close()
      throw error
    }
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
    let keys: KeyDelivery
    if order.pooled == true {
      guard let pool, let entry = pool.take(runID: order.runID) else {
        throw RoleError.state("p1 holds no pooled stream for run \(order.runID.prefix(12))")
      }
      keys = .pooled(entry, pool)
    } else {
      keys = .dealer(try await deployment.connect(to: dealer, as: .dealer, id: runID))
    }
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
      await keys.release()
      throw error
    }
    try await runParty(
      context, order: order, state: state, peer: leader, client: joined.channel, keys: keys,
      logger: logger)
  }

  /// Where a run's keys come from.
  enum KeyDelivery {
    case dealer(TCPChannel)
    case pooled(ServerKeyPool.Entry, ServerKeyPool)

    /// Ends the keys' source: the dealer's session closed, the pooled stream deleted.
    func release() async {
      switch self {
      case .dealer(let channel): await channel.close()
      case .pooled(let entry, let pool): pool.finish(entry)
      }
    }
  }

  private func runParty(
    _ context: RunContext, order: RunOrder, state: ServerRoleState, peer: TCPChannel,
    client: TCPChannel, keys: KeyDelivery, logger: Logger
  ) async throws {
    let party = party
    metrics.requests.increment()
    do {
      let graph = try state.setup.manifest.graph()
      let parameters = state.setup.manifest.parameters
      let walk: @Sendable (PartyBackend) async throws -> Void = { backend in
        try await order.walk(graph, parameters, backend)
      }
      let result: PartyRun.Result
      var keyBytes = 0
      switch keys {
      case .dealer(let dealerChannel):
        try await dealerChannel.send(.run(order))
        result = try await state.run(
          context, party: party, peer: peer, client: client, dealer: dealerChannel, body: walk)
        keyBytes = dealerChannel.counters.bytesReceived
      case .pooled(let entry, let pool):
        result = try await state.run(
          context, party: party, peer: peer, client: client, pooled: entry, from: pool, body: walk)
        metrics.pooledRequests.increment()
      }
      metrics.onlineSeconds.increment(by: result.onlineSeconds)
      metrics.onlineBytes.increment(
        by: Int64(peer.counters.bytesSent + peer.counters.bytesReceived))
      metrics.rounds.increment(by: Int64(peer.counters.rounds))
      metrics.keyBytes.increment(by: Int64(keyBytes))
      let pooled = if case .pooled = keys { true } else { false }
      logger.info(
        "run done: \(order.tokens) tokens\(order.hidesLength ? " (length hidden)" : ""), keys \(pooled ? "pooled" : "from the dealer: \(keyBytes) B"), online \(String(format: "%.3f", result.onlineSeconds)) s, \(peer.counters.bytesSent + peer.counters.bytesReceived) B, \(peer.counters.rounds) rounds"
      )
    } catch {
      // Closing the other sessions ends the run for their roles too; the run id stays burnt.
      // The session this request came on (P0's: the client's; P1's: P0's) stays open for the
      // session loop to send the reason.
      await keys.release()
      await (party == 0 ? peer : client).close()
      throw error
    }
    await peer.close()
    await keys.release()
    if party == 1 { await client.close() }
  }
}

// `veil dealer`: the long-running dealer (DESIGN §10). It stores each setup's mask seeds sealed
// under the operator's key, hands each server its own seeds, and deals every run once: when
// P0, P1 and the client have all reached it with the same order, it streams one fresh,
// single-use key stream to each (the run id burnt in its ledger first). It never sees an
// input, a weight or a masked value. With pool targets (`--pool`) it also deals runs ahead when
// P0 asks (`KeyPoolFilling.swift`): the servers' streams sealed to their pool keys, the
// client's kept here sealed and handed over, once, when the client of that run comes for it.
import Foundation
import Logging
import Metrics
import VeilMPC
import VeilNet

public final class DealerService: Sendable {
  let deployment: Deployment
  let store: DealerStateStore
  let rendezvous = Rendezvous()
  let logger: Logger
  let metrics = ServiceMetrics(role: "dealer")
  private let opened = Locked<[String: DealerSetupSecrets]>([:])
  /// The shapes the operator keeps in the servers' pools (`--pool`).
  let poolTargets: [PoolTarget]
  /// How long a run waits for P1 and the client to reach the dealer.
  let joinTimeout: Duration = .seconds(10)

  public init(
    deployment: Deployment, store: DealerStateStore, poolTargets: [PoolTarget] = [], logger: Logger
  ) {
    self.poolTargets = poolTargets
    self.deployment = deployment
    self.store = store
    self.logger = logger
  }

  public func serve(_ listener: TCPListener) async {
    await acceptSessions(listener, name: "dealer", logger: logger, metrics: metrics) {
      try await self.handle($0, first: $1, logger: $2)
    }
  }

  private func secrets(_ setupID: String) throws -> DealerSetupSecrets {
    if let cached = opened.withLock({ $0[setupID] }) { return cached }
    let loaded = try store.load(setupID: setupID)
    opened.withLock { $0[setupID] = loaded }
    return loaded
  }

  private func handle(_ channel: TCPChannel, first: RoleMessage, logger: Logger) async throws
    -> SessionDisposition
  {
    switch (channel.peerRole, first) {
    case (.owner, .setup(let manifest)):
      let created = try store.create(manifest)
      opened.withLock { $0[manifest.setupID] = created }
      try await channel.send(.setupDone(maskedDigest: ""))
      logger.info("setup \(manifest.setupID.prefix(12)): mask seeds drawn and sealed")
    case (.p0, .setupSeeds(let setupID, let party)), (.p1, .setupSeeds(let setupID, let party)):
      guard party == Int(channel.peerRole.rawValue) else {
        throw RoleError.unexpected(
          peer: channel.peerDescription, message: "a request for p\(party)'s seeds")
      }
      try await SetupRoles.dealerSendSeeds(try secrets(setupID), party: party, to: channel)
    case (.p0, .run(let order)):
      try await deal(order, p0: channel, logger: logger)
    case (.client, .run(let order)) where order.pooled == true:
      try await store.sendPooledClientStream(order, to: channel)
      var logger = logger
      logger[metadataKey: "run"] = "\(order.runID.prefix(12))"
      logger.info("handed the client its stream of a pooled run")
    case (.p0, .poolPlanRequest(let setupID, let keep)):
      try await sendPoolPlan(setupID: setupID, keep: keep, to: channel)
    case (.p0, .poolFill(let fill)):
      try await dealPooled(fill, p0: channel, logger: logger)
    case (.p1, .run), (.client, .run), (.p1, .poolFill):
      await rendezvous.deliver(Arrival(channel: channel, message: first))
      return .handedOn
    default:
      throw RoleError.unexpected(peer: channel.peerDescription, message: "'\(first.kind)'")
    }
    return .finished
  }

  private func deal(_ order: RunOrder, p0: TCPChannel, logger: Logger) async throws {
    let setup = try secrets(order.setupID)
    let context = try await order.context(setup.manifest)
    var joined: [TCPChannel] = []
    defer { for channel in joined { Task { await channel.close() } } }
    do {
      try await deal(order, context: context, setup: setup, p0: p0, joined: &joined, logger: logger)
    } catch {
      // P0 hears why from the session loop; P1 and the client, in the middle of their
      // streams, hear it here (their readers recognise the message).
      for channel in joined { try? await channel.send(.failure("dealer: \(error)")) }
      throw error
    }
  }

  private func deal(
    _ order: RunOrder, context: RunContext, setup: DealerSetupSecrets, p0: TCPChannel,
    joined: inout [TCPChannel], logger: Logger
  ) async throws {
    let runID = try RunID(order: order)
    for role in [PartyRole.p1, .client] {
      guard let arrival = await rendezvous.take(runID, role, timeout: joinTimeout) else {
        throw RoleError.state(
          "\(role) did not reach the dealer for run \(order.runID.prefix(12)) within 10 s")
      }
      joined.append(arrival.channel)
      guard arrival.message == .run(order) else {
        throw RoleError.unexpected(
          peer: arrival.channel.peerDescription, message: "another run's order")
      }
    }
    metrics.requests.increment()
    // A run is dealt once, whoever asks again.
    try store.ledger.consume(runID: runID.bytes)
    let graph = try setup.manifest.graph()
    let parameters = setup.manifest.parameters
    let result = try await setup.deal(context, to: [p0] + joined) { dealer in
      try await order.walk(graph, parameters, dealer)
    }
    metrics.keyBytes.increment(by: Int64(result.streamBytes.reduce(0, +)))
    var logger = logger
    logger[metadataKey: "run"] = "\(order.runID.prefix(12))"
    logger.info(
      "dealt \(order.tokens) tokens: \(result.streamBytes.map { String($0) }.joined(separator: "/")) key bytes, \(String(format: "%.3f", result.seconds)) s"
    )
  }

  // MARK: Pools

  /// The operator's targets that `setupID`'s model can run; first drops the client streams of
  /// runs P0 no longer holds.
  private func sendPoolPlan(setupID: String, keep: [String], to p0: TCPChannel) async throws {
    let manifest = try secrets(setupID).manifest
    try store.keepPooledClientStreams(setupID: setupID, only: Set(keep))
    var runnable: [PoolTarget] = []
    for target in poolTargets {
      do {
        try await target.shape.check(manifest)
        runnable.append(target)
      } catch {
        logger.warning(
          "pool shape \(target.shape) does not fit setup \(setupID.prefix(12)): \(error)")
      }
    }
    try await p0.send(.poolPlan(runnable))
  }

  /// Deals the pooled run P0 ordered once P1 has come for its half.
  private func dealPooled(_ fill: PoolFill, p0: TCPChannel, logger: Logger) async throws {
    let setup = try secrets(fill.order.setupID)
    let context = try await fill.order.context(setup.manifest)
    let runID = try RunID(order: fill.order)
    guard let arrival = await rendezvous.take(runID, .p1, timeout: joinTimeout) else {
      throw RoleError.state(
        "p1 did not reach the dealer for pooled run \(fill.order.runID.prefix(12)) within 10 s")
    }
    let p1 = arrival.channel
    defer { Task { await p1.close() } }
    do {
      guard case .poolFill(let p1Fill) = arrival.message, p1Fill.order == fill.order else {
        throw RoleError.unexpected(peer: p1.peerDescription, message: "another run's order")
      }
      try store.ledger.consume(runID: runID.bytes)
      let graph = try setup.manifest.graph()
      let parameters = setup.manifest.parameters
      let result = try await store.dealPooled(
        fill.order, context: context, setup: setup, channels: [p0, p1],
        recipients: [fill.recipientKey, p1Fill.recipientKey]
      ) { dealer in try await fill.order.walk(graph, parameters, dealer) }
      metrics.keyBytes.increment(by: Int64(result.streamBytes.reduce(0, +)))
      var logger = logger
      logger[metadataKey: "run"] = "\(fill.order.runID.prefix(12))"
      logger.info(
        "dealt a pooled run ahead (\(PoolShape(request: fill.order.request).map { "\($0)" } ?? "?")): \(result.streamBytes.map { String($0) }.joined(separator: "/")) key bytes, \(String(format: "%.3f", result.seconds)) s"
      )
    } catch {
      try? await p1.send(.failure("dealer: \(error)"))
      throw error
    }
  }
}

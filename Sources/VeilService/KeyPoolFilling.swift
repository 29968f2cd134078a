// Keys delivered ahead (issue 18, DESIGN §10): P0 keeps the servers' pools filled while it is
// idle. It asks the dealer which shapes the operator pools (`veil dealer --pool`), picks the
// shape furthest below its count that fits the pool's room, draws a run id and orders P1 and
// the dealer to deal that run ahead: each server receives its stream sealed to its own pool
// key and stores it; the dealer keeps the client's. P0 adds its stream to the pool only once
// P1 has stored its half, so every stream P0 offers has a partner.
import Foundation
import Logging
import VeilMPC
import VeilNet

extension ServerService {
  /// How long P0 waits between looks at an idle, full pool, and after a failed fill.
  static let poolIdleWait: Duration = .seconds(1)
  static let poolFailureWait: Duration = .seconds(15)

  /// How long P0 trusts the dealer's plan before asking again.
  static let planLifetime: Duration = .seconds(60)

  /// The target furthest below its count whose stream fits the pool's room, if any.
  static func wanted(_ targets: [PoolTarget], in pool: ServerKeyPool) -> PoolShape? {
    let counts = pool.counts
    let room = pool.limitBytes - pool.usedBytes
    let fill = { (t: PoolTarget) in Double(counts[t.shape] ?? 0) / Double(t.count) }
    return targets.filter { fill($0) < 1 && (pool.estimate($0.shape) ?? 0) < room }
      .min { fill($0) < fill($1) }?.shape
  }

  /// P0's background loop: fills the pool while the server is idle, until cancelled.
  func keepPoolFilled() async {
    var lastFailure = ""
    while !Task.isCancelled {
      var wait = Self.poolIdleWait
      do {
        if try await fillPoolOnce() { continue }
        lastFailure = ""
      } catch {
        // Once per distinct reason: a dealer that is down should not flood the log.
        if "\(error)" != lastFailure { logger.warning("key pool: fill failed: \(error)") }
        lastFailure = "\(error)"
        wait = Self.poolFailureWait
      }
      try? await Task.sleep(for: wait)
    }
  }

  /// Deals one pooled run ahead if the server is idle and the dealer's plan names a shape the
  /// pool lacks and has room for; whether it stored one.
  func fillPoolOnce() async throws -> Bool {
    guard party == 0, let pool, let peer, slots.isIdle, let state = state.withLock({ $0 }) else {
      return false
    }
    let manifest = state.setup.manifest
    // The plan as last asked, while fresh: an idle, full pool costs no connection.
    if let cached = poolPlan.withLock({ $0 }), cached.at.duration(to: .now) < Self.planLifetime,
      Self.wanted(cached.targets, in: pool) == nil
    {
      return false
    }
    let planChannel = try await deployment.connect(to: dealer, as: .dealer, id: RunID.random())
    defer { Task { await planChannel.close() } }
    try await planChannel.send(.poolPlanRequest(setupID: manifest.setupID, keep: pool.runIDs))
    guard case .poolPlan(let targets) = try await planChannel.receiveReply() else {
      throw RoleError.unexpected(peer: planChannel.peerDescription, message: "another reply")
    }
    poolPlan.withLock { $0 = (targets, .now) }
    guard let shape = Self.wanted(targets, in: pool) else { return false }

    let runID = RunID.random()
    let order = shape.order(runID: runID, manifest: manifest)
    var logger = logger
    logger[metadataKey: "run"] = "\(runID.description.prefix(12))"
    let p1 = try await deployment.connect(to: peer, as: .p1, id: runID)
    defer { Task { await p1.close() } }
    try await p1.send(.poolFill(PoolFill(order: order, recipientKey: "", keep: pool.runIDs)))
    guard case .accepted = try await p1.receiveReply() else {
      throw RoleError.unexpected(peer: p1.peerDescription, message: "another reply to a pool fill")
    }
    let clock = ContinuousClock()
    let start = clock.now
    let pending = try await receivePooled(order, into: pool)
    do {
      guard case .poolStored(let stored) = try await p1.receiveReply(), stored == order.runID else {
        throw RoleError.unexpected(
          peer: p1.peerDescription, message: "another reply to a pool fill")
      }
      try pending.commit()
    } catch {
      pending.abandon()
      throw error
    }
    metrics.poolStreams.increment()
    logger.info(
      "key pool: stored a \(shape) stream, \(pending.bytes) B in \(String(format: "%.1f", (clock.now - start).seconds)) s; pool \(pool.summary)"
    )
    return true
  }

  /// P1: stores its half of a pooled run P0 ordered, after dropping the streams P0 no longer
  /// holds.
  func storePooled(_ fill: PoolFill, leader: TCPChannel, logger: Logger) async throws {
    guard let pool else {
      throw RoleError.state("p1 keeps no key pool (start it with --key-pool DIR)")
    }
    let state = try loaded()
    _ = try await fill.order.context(state.setup.manifest)
    guard let shape = PoolShape(request: fill.order.request) else {
      throw RoleError.state("not a pooled run order")
    }
    pool.keepOnly(Set(fill.keep))
    try await leader.send(.accepted(fill.order))
    let pending = try await receivePooled(fill.order, into: pool)
    try pending.commit()
    try await leader.send(.poolStored(runID: fill.order.runID))
    var logger = logger
    logger[metadataKey: "run"] = "\(fill.order.runID.prefix(12))"
    logger.info("key pool: stored a \(shape) stream, \(pending.bytes) B; pool \(pool.summary)")
  }

  /// Asks the dealer for this server's sealed stream of pooled run `order` and receives it into
  /// a pending file of `pool`.
  private func receivePooled(_ order: RunOrder, into pool: ServerKeyPool) async throws
    -> PendingPoolStream
  {
    let dealerChannel = try await deployment.connect(
      to: dealer, as: .dealer, id: try RunID(order: order))
    defer { Task { await dealerChannel.close() } }
    try await dealerChannel.send(
      .poolFill(PoolFill(order: order, recipientKey: pool.key.publicKey, keep: [])))
    return try await pool.receive(order, from: dealerChannel)
  }
}

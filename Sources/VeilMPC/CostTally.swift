// Per layer type and gate kind: what the secure run spent (time, bytes, rounds, key bytes).
// The dealer and each party keep one; benchmarks print them per layer type (issue 6, 7).
import Foundation
import VeilModels

/// Costs of one gate kind within one op kind, at one role.
public struct GateCost: Sendable, Equatable {
  public var calls = 0
  public var elements = 0
  /// Online compute and waiting for the peer (parties), or key generation (dealer).
  public var seconds = 0.0
  /// Input-independent work a party does ahead of the input ([r_x]_b·Ŵ products).
  public var offlineSeconds = 0.0
  public var bytesSent = 0
  public var bytesReceived = 0
  public var rounds = 0
  /// Key-record bytes (per party at the dealer: P0's and P1's summed).
  public var keyBytes = 0

  public init() {}

  public static func + (a: GateCost, b: GateCost) -> GateCost {
    var c = a
    c.calls += b.calls
    c.elements += b.elements
    c.seconds += b.seconds
    c.offlineSeconds += b.offlineSeconds
    c.bytesSent += b.bytesSent
    c.bytesReceived += b.bytesReceived
    c.rounds += b.rounds
    c.keyBytes += b.keyBytes
    return c
  }
}

/// A thread-safe tally of gate costs by op kind and gate kind.
public final class CostTally: @unchecked Sendable {
  // @unchecked: every access goes through `lock`.
  private let lock = NSLock()
  private var costs: [OpKind: [GateKind: GateCost]] = [:]

  public init() {}

  func add(_ kind: GateKind, _ site: GateSite, _ cost: GateCost) {
    lock.lock()
    defer { lock.unlock() }
    costs[site.op.kind, default: [:]][kind] = (costs[site.op.kind]?[kind] ?? GateCost()) + cost
  }

  public var snapshot: [OpKind: [GateKind: GateCost]] {
    lock.lock()
    defer { lock.unlock() }
    return costs
  }

  /// Everything summed.
  public var total: GateCost { snapshot.values.flatMap(\.values).reduce(GateCost(), +) }

  /// Per op kind, summed over gate kinds.
  public var byOpKind: [OpKind: GateCost] { snapshot.mapValues { $0.values.reduce(GateCost(), +) } }
}

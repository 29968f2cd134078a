// Where a role's sessions meet (DESIGN §10): a run's second and third connections (the client
// joining P1, P1 and the client reaching the dealer) arrive on the listener in any order; the
// task that runs the run takes them from here by run id and role. An arrival nobody takes is
// closed after a while, and a take that waits too long fails naming the role that never came.
import Foundation
import VeilMPC
import VeilNet

/// A connection that arrived with its first control message.
public struct Arrival: Sendable {
  public let channel: TCPChannel
  public let message: RoleMessage
}

actor Rendezvous {
  struct Key: Hashable {
    let id: RunID
    let role: PartyRole
  }
  private var arrived: [Key: Arrival] = [:]
  private var waiting: [Key: CheckedContinuation<Arrival?, Never>] = [:]
  /// How long an arrival waits to be taken before it is closed.
  let holdTimeout: Duration

  init(holdTimeout: Duration = .seconds(30)) { self.holdTimeout = holdTimeout }

  /// Hands an arrival to whoever waits for it, or keeps it for a while. A second arrival
  /// under the same key is refused (closed).
  func deliver(_ arrival: Arrival) async {
    let key = Key(id: arrival.channel.runID, role: arrival.channel.peerRole)
    if let waiter = waiting.removeValue(forKey: key) {
      waiter.resume(returning: arrival)
      return
    }
    guard arrived[key] == nil else {
      try? await arrival.channel.send(.failure("a second \(key.role) connection for one run"))
      await arrival.channel.close()
      return
    }
    arrived[key] = arrival
    let hold = holdTimeout
    Task {
      try? await Task.sleep(for: hold)
      await self.expire(key)
    }
  }

  private func expire(_ key: Key) async {
    guard let stale = arrived.removeValue(forKey: key) else { return }
    await stale.channel.close()
  }

  /// The arrival of `role` for run `id`, waiting at most `timeout`; nil if none came.
  func take(_ id: RunID, _ role: PartyRole, timeout: Duration) async -> Arrival? {
    let key = Key(id: id, role: role)
    if let ready = arrived.removeValue(forKey: key) { return ready }
    guard waiting[key] == nil else { return nil }
    return await withCheckedContinuation { continuation in
      waiting[key] = continuation
      Task {
        try? await Task.sleep(for: timeout)
        self.timeOut(key)
      }
    }
  }

  private func timeOut(_ key: Key) {
    waiting.removeValue(forKey: key)?.resume(returning: nil)
  }
}

/// A bound on the requests a role runs at once: beyond it the answer is `busy`, not a queue.
final class Slots: @unchecked Sendable {
  // @unchecked: `count` is only touched under `lock`.
  private let lock = NSLock()
  private var count = 0
  let limit: Int

  init(limit: Int) { self.limit = max(1, limit) }

  func tryAcquire() -> Bool {
    lock.lock()
    defer { lock.unlock() }
    guard count < limit else { return false }
    count += 1
    return true
  }

  /// No request runs now.
  var isIdle: Bool {
    lock.lock()
    defer { lock.unlock() }
    return count == 0
  }

  func release() {
    lock.lock()
    defer { lock.unlock() }
    count -= 1
  }

  /// Requests one per 4 GiB of memory, 1…8.
  static var defaultLimit: Int {
    max(1, min(8, Int(ProcessInfo.processInfo.physicalMemory >> 32)))
  }
}

// A value behind a lock, for the little state that both a protocol task and an event-loop
// thread touch (counters, a channel's sticky failure). Foundation's NSLock keeps this portable
// (Synchronization.Mutex would need macOS 15; the package supports macOS 14).
import Foundation

/// A mutable value guarded by a lock. Critical sections must be short and never suspend.
public final class Locked<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var value: Value

  public init(_ value: Value) { self.value = value }

  @inline(__always)
  public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
    lock.lock()
    defer { lock.unlock() }
    return try body(&value)
  }
}

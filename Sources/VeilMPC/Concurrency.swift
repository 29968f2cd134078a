// Running independent pieces of the dealer's work on all cores at once: while the dealer
// makes keys the parties wait (DESIGN §9), so each of its chunks of keys can take a core.
// Blocking a thread here is fine for the same reason.
import Foundation

/// `body(i)` for every i in 0..<count, concurrently (one thread each, as the system allows):
/// the results in index order, or the error of the lowest failing index.
func concurrentMap<T>(_ count: Int, _ body: @Sendable (Int) throws -> T) throws -> [T] {
  let slots = UnsafeMutableBufferPointer<Result<T, any Error>?>.allocate(capacity: count)
  slots.initialize(repeating: nil)
  defer {
    _ = slots.deinitialize()
    slots.deallocate()
  }
  nonisolated(unsafe) let out = slots  // each iteration writes its own slot only
  DispatchQueue.concurrentPerform(iterations: count) { i in out[i] = Result { try body(i) } }
  return try slots.map { try $0!.get() }
}

// The in-memory channel pair: both parties in one process (the embedded default and tests).
// Messages move by reference (arrays are copy-on-write, so a sender that later mutates its
// array copies it then, never the receiver), through a bounded buffer per direction: a sender
// that gets ahead by more than `bufferBytes` waits for the receiver (backpressure). Counters
// charge the framing that the TCP channel would send, so byte counts agree across transports.

/// One end of a connected in-memory pair.
public final class InMemoryChannel: Channel {
  /// The role of the party holding the other end.
  public let peerRole: PartyRole
  /// "p1 (in memory)".
  public let peerDescription: String
  private let limits: ChannelLimits
  /// This end → the peer.
  private let outbound: MessagePipe
  /// The peer → this end.
  private let inbound: MessagePipe
  private let accounting = ChannelAccounting()
  /// Message bytes per frame the TCP channel would use, for the framing charge.
  private let chunk: Int

  private init(peerRole: PartyRole, limits: ChannelLimits, outbound: MessagePipe, inbound: MessagePipe) {
    self.peerRole = peerRole
    self.peerDescription = "\(peerRole) (in memory)"
    self.limits = limits
    self.outbound = outbound
    self.inbound = inbound
    self.chunk = FrameFormat.chunkBytes(sender: limits.chunkBytes, receiverMaximumFrame: limits.maximumFrameBytes)
  }

  /// Two connected channels: the first is held by `first` and talks to `second`, and back.
  /// - Parameters:
  ///   - first: the role of the party that holds the first channel.
  ///   - second: the role of the party that holds the second channel.
  ///   - limits: buffer size, message limit and idle timeout, shared by both ends.
  public static func makePair(
    _ first: PartyRole = .p0, _ second: PartyRole = .p1, limits: ChannelLimits = ChannelLimits()
  ) -> (InMemoryChannel, InMemoryChannel) {
    let (firstName, secondName) = ("\(first) (in memory)", "\(second) (in memory)")
    let forward = MessagePipe(capacity: limits.bufferBytes, sender: firstName, receiver: secondName)
    let backward = MessagePipe(capacity: limits.bufferBytes, sender: secondName, receiver: firstName)
    return (
      InMemoryChannel(peerRole: second, limits: limits, outbound: forward, inbound: backward),
      InMemoryChannel(peerRole: first, limits: limits, outbound: backward, inbound: forward)
    )
  }

  public var counters: ChannelCounters { accounting.counters }

  public func send(_ message: [UInt8]) async throws(NetError) {
    let round = accounting.recordSend(
      payload: message.count, wire: FrameFormat.wireBytes(payload: message.count, chunk: chunk))
    do throws(NetError) {
      try await outbound.send(PipeMessage(bytes: message, round: round), timeout: limits.idleTimeout)
    } catch {
      fail()
      throw error
    }
  }

  public func receive() async throws(NetError) -> [UInt8] {
    let message: PipeMessage
    do throws(NetError) {
      message = try await inbound.receive(timeout: limits.idleTimeout)
    } catch {
      fail()
      throw error
    }
    guard message.bytes.count <= limits.maximumMessageBytes else {
      fail()
      throw .messageTooLarge(peer: peerDescription, bytes: message.bytes.count, limit: limits.maximumMessageBytes)
    }
    // The peer is this process's own code: its rounds are always consistent.
    _ = accounting.recordReceive(
      payload: message.bytes.count, wire: FrameFormat.wireBytes(payload: message.bytes.count, chunk: chunk),
      round: message.round)
    return message.bytes
  }

  public func exchange(_ message: [UInt8]) async throws(NetError) -> [UInt8] {
    let round = accounting.recordSend(
      payload: message.count, wire: FrameFormat.wireBytes(payload: message.count, chunk: chunk))
    let stamped = PipeMessage(bytes: message, round: round)
    let buffered: Bool
    do throws(NetError) {
      buffered = try outbound.trySend(stamped)
    } catch {
      fail()
      throw error
    }
    if buffered { return try await receive() }
    // The peer's buffer is full (it is behind, or sending to us at the same time): receive
    // while the send waits, so that two parties exchanging at once never deadlock.
    let limits = self.limits
    let outbound = self.outbound
    async let sent: Result<Void, NetError> = {
      do throws(NetError) {
        try await outbound.send(stamped, timeout: limits.idleTimeout)
        return .success(())
      } catch {
        return .failure(error)
      }
    }()
    let received: Result<[UInt8], NetError>
    do throws(NetError) {
      received = .success(try await receive())
    } catch {
      received = .failure(error)
    }
    if case .failure(let error) = await sent {
      fail()
      throw error
    }
    return try received.get()
  }

  public func close() async {
    outbound.close(bySender: true)
    inbound.close(bySender: false)
  }

  /// After a timeout or cancellation the stream position is unknown: end the session.
  private func fail() {
    outbound.close(bySender: true)
    inbound.close(bySender: false)
  }
}

/// One direction of an in-memory pair: a bounded FIFO of messages with at most one waiting
/// receiver and any number of waiting senders.
final class MessagePipe: Sendable {
  private typealias ReceiveContinuation = CheckedContinuation<Result<PipeMessage, NetError>, Never>
  private typealias SendContinuation = CheckedContinuation<Result<Void, NetError>, Never>

  private struct Receiver {
    var id: UInt64
    var continuation: ReceiveContinuation
    var timer: Task<Void, Never>?
  }

  private struct Sender {
    var id: UInt64
    var message: PipeMessage
    var continuation: SendContinuation
    var timer: Task<Void, Never>?
  }

  private struct State {
    var queue: [PipeMessage] = []
    var head = 0
    var queuedBytes = 0
    var receiver: Receiver?
    var senders: [Sender] = []
    var senderClosed = false
    var receiverClosed = false
    var nextID: UInt64 = 0

    var isEmpty: Bool { head == queue.count }

    mutating func push(_ message: PipeMessage) {
      queue.append(message)
      queuedBytes += message.bytes.count
    }

    mutating func pop() -> PipeMessage {
      let message = queue[head]
      queue[head] = PipeMessage(bytes: [], round: 0)
      head += 1
      queuedBytes -= message.bytes.count
      if head == queue.count {
        queue.removeAll(keepingCapacity: true)
        head = 0
      } else if head >= 64 && head * 2 >= queue.count {
        queue.removeFirst(head)
        head = 0
      }
      return message
    }

    /// Moves waiting senders' messages into the queue while they fit (or the queue is empty,
    /// so a message larger than the whole buffer still goes through alone).
    mutating func admitSenders(capacity: Int) -> [Sender] {
      var admitted: [Sender] = []
      while let first = senders.first, isEmpty || queuedBytes + first.message.bytes.count <= capacity {
        senders.removeFirst()
        push(first.message)
        admitted.append(first)
      }
      return admitted
    }
  }

  private let capacity: Int
  /// How the receiving end names the sending end in errors, and back.
  private let senderName: String
  private let receiverName: String
  private let state = Locked(State())

  init(capacity: Int, sender: String, receiver: String) {
    self.capacity = capacity
    self.senderName = sender
    self.receiverName = receiver
  }

  /// Buffers `message` if that needs no waiting; false if the caller must wait (`send`).
  func trySend(_ message: PipeMessage) throws(NetError) -> Bool {
    let peer = receiverName
    enum Fast { case done, handedOver(Receiver), failed(NetError), wait }
    let fast: Fast = state.withLock { state in
      if state.senderClosed { return .failed(.closed(peer: peer)) }
      if state.receiverClosed { return .failed(.peerClosed(peer: peer, during: "while this end was sending")) }
      if let receiver = state.receiver {
        state.receiver = nil
        return .handedOver(receiver)
      }
      if state.senders.isEmpty && (state.isEmpty || state.queuedBytes + message.bytes.count <= capacity) {
        state.push(message)
        return .done
      }
      return .wait
    }
    switch fast {
    case .done: return true
    case .wait: return false
    case .failed(let error): throw error
    case .handedOver(let receiver):
      receiver.timer?.cancel()
      receiver.continuation.resume(returning: .success(message))
      return true
    }
  }

  func send(_ message: PipeMessage, timeout: Duration) async throws(NetError) {
    let peer = receiverName
    if try trySend(message) { return }
    // The queue is full: wait in line. The waiter is registered (and closure re-checked) in
    // the continuation below, which also admits it at once if a receiver drained the queue
    // in between.
    let id = state.withLock { state in
      state.nextID += 1
      return state.nextID
    }
    let result = await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: SendContinuation) in
        let outcome: Result<Void, NetError>? = state.withLock { state in
          if state.senderClosed { return .failure(.closed(peer: peer)) }
          if state.receiverClosed { return .failure(.peerClosed(peer: peer, during: "while this end was sending")) }
          state.senders.append(Sender(id: id, message: message, continuation: continuation, timer: nil))
          return nil
        }
        if let outcome {
          continuation.resume(returning: outcome)
          return
        }
        // A receiver may have drained the queue between the two critical sections.
        resume(state.withLock { $0.admitSenders(capacity: capacity) })
        let seconds = timeoutSeconds(timeout)
        let timer = Task {
          try? await Task.sleep(for: timeout)
          if !Task.isCancelled {
            self.expireSender(
              id, error: .idleTimeout(peer: peer, seconds: seconds, during: "while this end waited to send"))
          }
        }
        let stale = state.withLock { state in
          guard let index = state.senders.firstIndex(where: { $0.id == id }) else { return true }
          state.senders[index].timer = timer
          return false
        }
        if stale { timer.cancel() }
        // A cancellation that came before the registration found nothing to expire.
        if Task.isCancelled { expireSender(id, error: .cancelled(peer: peer)) }
      }
    } onCancel: {
      self.expireSender(id, error: .cancelled(peer: peer))
    }
    try result.get()
  }

  func receive(timeout: Duration) async throws(NetError) -> PipeMessage {
    let peer = senderName
    enum Fast { case message(PipeMessage, [Sender]), failed(NetError), wait(UInt64) }
    let fast: Fast = state.withLock { state in
      if !state.isEmpty {
        let message = state.pop()
        return .message(message, state.admitSenders(capacity: capacity))
      }
      if state.receiverClosed { return .failed(.closed(peer: peer)) }
      if state.senderClosed { return .failed(.peerClosed(peer: peer, during: "while this end waited for a message")) }
      state.nextID += 1
      return .wait(state.nextID)
    }
    let id: UInt64
    switch fast {
    case .message(let message, let admitted):
      resume(admitted)
      return message
    case .failed(let error): throw error
    case .wait(let waitID): id = waitID
    }
    let result = await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: ReceiveContinuation) in
        enum Outcome { case ready(Result<PipeMessage, NetError>, [Sender]), registered }
        let outcome: Outcome = state.withLock { state in
          if !state.isEmpty {
            let message = state.pop()
            return .ready(.success(message), state.admitSenders(capacity: capacity))
          }
          if state.receiverClosed { return .ready(.failure(.closed(peer: peer)), []) }
          if state.senderClosed {
            return .ready(.failure(.peerClosed(peer: peer, during: "while this end waited for a message")), [])
          }
          precondition(state.receiver == nil, "two tasks receive on one channel at once")
          state.receiver = Receiver(id: id, continuation: continuation, timer: nil)
          return .registered
        }
        if case .ready(let result, let admitted) = outcome {
          resume(admitted)
          continuation.resume(returning: result)
          return
        }
        let seconds = timeoutSeconds(timeout)
        let timer = Task {
          try? await Task.sleep(for: timeout)
          if !Task.isCancelled {
            self.expireReceiver(
              id, error: .idleTimeout(peer: peer, seconds: seconds, during: "while this end waited for a message"))
          }
        }
        let stale = state.withLock { state in
          guard state.receiver?.id == id else { return true }
          state.receiver?.timer = timer
          return false
        }
        if stale { timer.cancel() }
        if Task.isCancelled { expireReceiver(id, error: .cancelled(peer: peer)) }
      }
    } onCancel: {
      self.expireReceiver(id, error: .cancelled(peer: peer))
    }
    return try result.get()
  }

  /// Closes this direction from one of its ends; the other end drains what is queued, then
  /// learns that its peer closed.
  func close(bySender: Bool) {
    let (receiver, senders): (Receiver?, [Sender]) = state.withLock { state in
      if bySender { state.senderClosed = true } else { state.receiverClosed = true }
      let receiver = state.isEmpty ? state.receiver : nil
      if receiver != nil { state.receiver = nil }
      let senders = state.senders
      state.senders.removeAll()
      return (receiver, senders)
    }
    if let receiver {
      receiver.timer?.cancel()
      let error: NetError = bySender
        ? .peerClosed(peer: senderName, during: "while this end waited for a message") : .closed(peer: senderName)
      receiver.continuation.resume(returning: .failure(error))
    }
    for sender in senders {
      sender.timer?.cancel()
      let error: NetError = bySender
        ? .closed(peer: receiverName) : .peerClosed(peer: receiverName, during: "while this end was sending")
      sender.continuation.resume(returning: .failure(error))
    }
  }

  private func resume(_ admitted: [Sender]) {
    for sender in admitted {
      sender.timer?.cancel()
      sender.continuation.resume(returning: .success(()))
    }
  }

  private func expireReceiver(_ id: UInt64, error: NetError) {
    let receiver: Receiver? = state.withLock { state in
      guard state.receiver?.id == id else { return nil }
      defer { state.receiver = nil }
      return state.receiver
    }
    guard let receiver else { return }
    receiver.timer?.cancel()
    receiver.continuation.resume(returning: .failure(error))
  }

  private func expireSender(_ id: UInt64, error: NetError) {
    let sender: Sender? = state.withLock { state in
      guard let index = state.senders.firstIndex(where: { $0.id == id }) else { return nil }
      return state.senders.remove(at: index)
    }
    guard let sender else { return }
    sender.timer?.cancel()
    sender.continuation.resume(returning: .failure(error))
  }
}

func timeoutSeconds(_ duration: Duration) -> Double {
  let (seconds, attoseconds) = duration.components
  return Double(seconds) + Double(attoseconds) * 1e-18
}

/// A message in an in-memory pipe, with the round its sender stamped on it.
struct PipeMessage: Sendable {
  var bytes: [UInt8]
  var round: UInt32
}

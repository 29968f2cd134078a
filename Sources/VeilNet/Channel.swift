// The transport-agnostic channel that protocols talk over, its counters and its limits.
// Protocols see only `Channel`; whether the peer is in memory, over TCP or over TLS is the
// business of whoever opened the channel.

/// An ordered, reliable, message-oriented connection to one peer.
///
/// Messages are byte arrays of any length up to the receiver's
/// ``ChannelLimits/maximumMessageBytes`` (0 bytes included); they arrive whole and in order.
///
/// **Rounds.** A round is one network latency on the protocol's critical path: a message that a
/// party must wait for before it can go on, and that could not be sent before the messages it
/// depends on had arrived. Precisely, every message carries a round number (a Lamport clock):
/// a message is stamped one more than the highest round this party has *received* on this
/// channel (so messages sent back to back share a round), and ``ChannelCounters/rounds`` is
/// the highest round this party has sent or received. Hence:
/// - ``exchange(_:)`` (full duplex: both send, then both receive) is **one** round, on both sides;
/// - L layers of dependent exchanges are L rounds — DESIGN §9's and SIGMA's count;
/// - messages the peer sends back to back, with nothing from us between, are one round;
/// - a request and its reply are two rounds (the reply had to wait for the request), and both
///   parties report the same number once the last message has arrived.
/// Rounds count per channel; causality through a third party (client → P0 → P1) is not seen.
///
/// **Concurrency.** Operations suspend, never block a thread (two cores, one per party: a
/// blocked P0 would starve P1). Call them from one task at a time; messages keep the order of
/// the calls.
public protocol Channel: AnyObject, Sendable {
  /// The role this channel's peer plays (checked during the session handshake).
  var peerRole: PartyRole { get }
  /// The peer for error messages, e.g. "p1 at 127.0.0.1:40123".
  var peerDescription: String { get }
  /// What this channel has sent and received so far (a snapshot).
  var counters: ChannelCounters { get }

  /// Queues `message` for the peer. Returns once the message is in this end's bounded send
  /// buffer — a large message waits until most of it has gone — not when the peer has it, so
  /// the bytes go out while the caller computes. An error of a send that already returned is
  /// thrown by the next operation.
  /// - Note: like a socket, a send waits while the peer does not read: two parties that both
  ///   send more than ``ChannelLimits/bufferBytes`` before either receives wait on each other
  ///   until the idle timeout. Use ``exchange(_:)`` when both send at once.
  func send(_ message: [UInt8]) async throws(NetError)

  /// The peer's next message. Fails with ``NetError/idleTimeout(peer:seconds:during:)`` when
  /// nothing arrives for the idle timeout.
  func receive() async throws(NetError) -> [UInt8]

  /// Sends `message` and receives the peer's next message at the same time (full duplex):
  /// sending overlaps receiving, so two parties exchanging shares cost one round and neither
  /// waits for the other's send to finish. Counts one round.
  func exchange(_ message: [UInt8]) async throws(NetError) -> [UInt8]

  /// Ends the session: sends what is queued, says goodbye to the peer, closes. Idempotent.
  func close() async
}

/// Counters of one channel. Add and subtract snapshots to account for a phase of a protocol.
///
/// `bytesSent` and `bytesReceived` count **payload plus framing**: every byte of the frames that
/// carry messages (frame headers, message length fields, payload), i.e. the bytes handed to
/// TCP or TLS. They exclude the session's fixed handshake and goodbye frames, and TLS's own
/// record overhead (≈ 22 bytes per 16 KiB record, about 0.1 %). The in-memory channel counts
/// the same framing the TCP channel would send, so counts agree across transports.
/// `payloadBytesSent` and `payloadBytesReceived` count the message bytes alone (SIGMA's
/// convention for communication cost).
public struct ChannelCounters: Sendable, Equatable, CustomStringConvertible {
  /// Payload plus framing sent.
  public var bytesSent = 0
  /// Payload plus framing received.
  public var bytesReceived = 0
  /// Message bytes sent.
  public var payloadBytesSent = 0
  /// Message bytes received.
  public var payloadBytesReceived = 0
  /// Messages sent.
  public var messagesSent = 0
  /// Messages received.
  public var messagesReceived = 0
  /// Rounds, as defined on ``Channel``.
  public var rounds = 0

  /// All zero.
  public init() {}

  /// The sum of two channels' counts (rounds add too: use it for sequential phases).
  public static func + (a: ChannelCounters, b: ChannelCounters) -> ChannelCounters {
    var sum = a
    sum.bytesSent += b.bytesSent
    sum.bytesReceived += b.bytesReceived
    sum.payloadBytesSent += b.payloadBytesSent
    sum.payloadBytesReceived += b.payloadBytesReceived
    sum.messagesSent += b.messagesSent
    sum.messagesReceived += b.messagesReceived
    sum.rounds += b.rounds
    return sum
  }

  /// The counts between an earlier snapshot `b` and `a`.
  public static func - (a: ChannelCounters, b: ChannelCounters) -> ChannelCounters {
    var difference = a
    difference.bytesSent -= b.bytesSent
    difference.bytesReceived -= b.bytesReceived
    difference.payloadBytesSent -= b.payloadBytesSent
    difference.payloadBytesReceived -= b.payloadBytesReceived
    difference.messagesSent -= b.messagesSent
    difference.messagesReceived -= b.messagesReceived
    difference.rounds -= b.rounds
    return difference
  }

  /// One line for logs.
  public var description: String {
    "sent \(bytesSent) B (\(payloadBytesSent) payload) in \(messagesSent) messages, "
      + "received \(bytesReceived) B (\(payloadBytesReceived) payload) in \(messagesReceived) messages, "
      + "\(rounds) rounds"
  }
}

/// Sizes and times that bound a channel. Every transport honours the same values.
public struct ChannelLimits: Sendable, Equatable {
  /// The largest frame payload this end accepts; a larger frame header is refused before
  /// anything is allocated for it. The peer learns it in the handshake and chunks to fit.
  public var maximumFrameBytes = 4 << 20
  /// The largest message this end accepts; refused before allocating.
  public var maximumMessageBytes = 1 << 30
  /// Message bytes per frame this end sends (large messages stream in chunks of this size, so
  /// no transport ever holds a second copy of a whole large message).
  public var chunkBytes = 1 << 20
  /// Bytes of received, not yet consumed messages this end buffers before it stops reading
  /// (backpressure), and bytes queued for sending before ``Channel/send(_:)`` waits.
  public var bufferBytes = 16 << 20
  /// How long this end waits with nothing moving before it gives up on a silent peer.
  /// Only counts while this end waits for the peer; computing between messages is free.
  public var idleTimeout: Duration = .seconds(30)

  /// The defaults: 4 MiB frames, 1 GiB messages, 1 MiB chunks, 16 MiB buffers, 30 s idle timeout.
  public init() {}

  /// Checks that the values are usable.
  public func validate() throws(NetError) {
    guard maximumFrameBytes >= 64, maximumFrameBytes <= Int(UInt32.max) else {
      throw .invalidConfiguration("maximum frame size \(maximumFrameBytes) is outside 64…\(UInt32.max) bytes")
    }
    guard chunkBytes >= 1 else { throw .invalidConfiguration("chunk size \(chunkBytes) must be positive") }
    guard maximumMessageBytes >= 0 else {
      throw .invalidConfiguration("maximum message size \(maximumMessageBytes) is negative")
    }
    guard bufferBytes >= 1 else { throw .invalidConfiguration("buffer size \(bufferBytes) must be positive") }
    guard idleTimeout > .zero else { throw .invalidConfiguration("idle timeout \(idleTimeout) must be positive") }
  }

  /// The idle timeout in seconds.
  var idleTimeoutSeconds: Double {
    let (seconds, attoseconds) = idleTimeout.components
    return Double(seconds) + Double(attoseconds) * 1e-18
  }
}

/// The counters and the round clock, shared by every transport.
final class ChannelAccounting: Sendable {
  private struct State {
    var counters = ChannelCounters()
    /// The highest round received.
    var receivedRound: UInt32 = 0
    /// The highest round sent.
    var sentRound: UInt32 = 0
  }
  private let state = Locked(State())

  var counters: ChannelCounters { state.withLock { $0.counters } }

  /// Counts a message and returns the round to stamp on it.
  func recordSend(payload: Int, wire: Int) -> UInt32 {
    state.withLock {
      $0.counters.payloadBytesSent += payload
      $0.counters.bytesSent += wire
      $0.counters.messagesSent += 1
      let round = $0.receivedRound &+ 1
      $0.sentRound = max($0.sentRound, round)
      $0.counters.rounds = Int(max($0.sentRound, $0.receivedRound))
      return round
    }
  }

  /// Counts a received message. Returns false if its round is impossible: the peer can only
  /// be one round ahead of what this party sent.
  func recordReceive(payload: Int, wire: Int, round: UInt32) -> Bool {
    state.withLock {
      guard round <= $0.sentRound &+ 1 else { return false }
      $0.counters.payloadBytesReceived += payload
      $0.counters.bytesReceived += wire
      $0.counters.messagesReceived += 1
      $0.receivedRound = max($0.receivedRound, round)
      $0.counters.rounds = Int(max($0.sentRound, $0.receivedRound))
      return true
    }
  }
}

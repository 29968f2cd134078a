// VeilNet's one error type. Every case that concerns a connection names the peer (its expected
// role and, over TCP, its address) and says what went wrong, so a failed run's log line is
// enough to tell which party misbehaved and how.

/// Everything that can go wrong in VeilNet. `peer` is a description such as
/// "p1 at 127.0.0.1:40123" (the role this end expects, and the address where there is one).
public enum NetError: Error, Equatable, CustomStringConvertible {
  /// The peer ended the session (goodbye or closed connection) while this end still needed it.
  /// `during` says what this end was doing.
  case peerClosed(peer: String, during: String)
  /// The connection ended inside a message: `receivedBytes` of `expectedBytes` had arrived.
  case peerDisconnectedMidMessage(peer: String, receivedBytes: Int, expectedBytes: Int)
  /// A frame header announced more payload than this end accepts; refused before allocating.
  case frameTooLarge(peer: String, bytes: Int, limit: Int)
  /// A message header announced more bytes than this end accepts; refused before allocating.
  case messageTooLarge(peer: String, bytes: Int, limit: Int)
  /// A well-formed frame of a type that is not allowed at this point of the session.
  case unexpectedFrame(peer: String, expected: String, received: String)
  /// A frame whose sequence number is not the next one (lost, replayed or reordered frames).
  case wrongSequenceNumber(peer: String, expected: UInt64, received: UInt64)
  /// Bytes that do not decode as a Veil frame (bad magic, unknown type, bad lengths).
  case malformedFrame(peer: String, reason: String)
  /// A complete message whose content does not decode (a ring-tensor header, say).
  case malformedMessage(peer: String, reason: String)
  /// The session handshake found the two ends disagree on `field`.
  case handshakeMismatch(peer: String, field: String, local: String, remote: String)
  /// The TLS layer failed: handshake, certificate verification or a TLS record error.
  case tlsFailure(peer: String, reason: String)
  /// This end runs TLS and the peer sent plain TCP.
  case peerNotUsingTLS(peer: String)
  /// This end runs plain TCP and the peer started TLS.
  case peerUsingTLS(peer: String)
  /// The peer's certificate, valid under the Veil CA, names another role than the one expected.
  case certificateRoleMismatch(peer: String, expected: PartyRole, presented: String)
  /// This end waited `seconds` without any byte moving in either direction.
  case idleTimeout(peer: String, seconds: Double, during: String)
  /// A ring tensor from the peer has another ring or shape than this end's.
  case tensorMismatch(peer: String, local: String, remote: String)
  /// Could not connect to or listen at `address`.
  case connectionFailed(address: String, reason: String)
  /// This end closed the channel before the operation.
  case closed(peer: String)
  /// The task waiting on the channel was cancelled; the channel is closed since its stream
  /// position is no longer known.
  case cancelled(peer: String)
  /// A configuration value is out of range.
  case invalidConfiguration(String)
  /// A certificate or key could not be made, read, parsed or written.
  case certificate(path: String, reason: String)

  /// One line naming the peer and the problem.
  public var description: String {
    switch self {
    case .peerClosed(let peer, let during):
      return "\(peer): the peer closed the session \(during)"
    case .peerDisconnectedMidMessage(let peer, let received, let expected):
      return "\(peer): the peer disconnected mid-message after \(received) of \(expected) bytes"
    case .frameTooLarge(let peer, let bytes, let limit):
      return "\(peer): frame of \(bytes) bytes exceeds the limit of \(limit) bytes"
    case .messageTooLarge(let peer, let bytes, let limit):
      return "\(peer): message of \(bytes) bytes exceeds the limit of \(limit) bytes"
    case .unexpectedFrame(let peer, let expected, let received):
      return "\(peer): wrong frame type: expected \(expected), received \(received)"
    case .wrongSequenceNumber(let peer, let expected, let received):
      return "\(peer): wrong sequence number: expected \(expected), received \(received)"
    case .malformedFrame(let peer, let reason):
      return "\(peer): garbage on the connection: \(reason)"
    case .malformedMessage(let peer, let reason):
      return "\(peer): malformed message: \(reason)"
    case .handshakeMismatch(let peer, let field, let local, let remote):
      return "\(peer): session handshake mismatch: \(field) is \(remote) at the peer, \(local) here"
    case .tlsFailure(let peer, let reason):
      return "\(peer): TLS failure: \(reason)"
    case .peerNotUsingTLS(let peer):
      return "\(peer): the peer speaks plain TCP, not TLS (is it running with --insecure?)"
    case .peerUsingTLS(let peer):
      return "\(peer): the peer started a TLS handshake but this end runs plain TCP (--insecure on one end only?)"
    case .certificateRoleMismatch(let peer, let expected, let presented):
      return "\(peer): the peer's certificate names role \(presented), expected \(expected)"
    case .idleTimeout(let peer, let seconds, let during):
      return "\(peer): idle timeout: nothing moved for \(formatSeconds(seconds)) s \(during)"
    case .tensorMismatch(let peer, let local, let remote):
      return "\(peer): ring tensor mismatch: the peer's is \(remote), this end's is \(local)"
    case .connectionFailed(let address, let reason):
      return "\(address): cannot connect or listen: \(reason)"
    case .closed(let peer):
      return "\(peer): the channel is closed"
    case .cancelled(let peer):
      return "\(peer): cancelled; the channel is closed"
    case .invalidConfiguration(let reason):
      return "invalid network configuration: \(reason)"
    case .certificate(let path, let reason):
      return "\(path): \(reason)"
    }
  }
}

func formatSeconds(_ seconds: Double) -> String {
  seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
}

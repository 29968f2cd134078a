// The byte format of a session and its decoder. The decoder is a pure state machine over
// bytes (no I/O, no NIO types), so it can be fuzzed and reused by every byte-stream transport.
//
// A frame is a 16-byte header followed by its payload:
//
//   offset  size  field
//   0       2     magic "VL" (0x56 0x4C)
//   2       1     type: 1 hello, 2 message, 3 continuation, 4 goodbye
//   3       1     flags, must be 0
//   4       4     payload length, little endian, ≤ the receiver's maximum frame size
//   8       8     sequence number, little endian: 0 for the hello, +1 per frame, per direction
//
// A session opens with one hello frame each way (version, roles, run id, frame limit) and ends
// with a goodbye. A message of L bytes is a message frame (an 8-byte total length L, the
// 4-byte round of the message — see `Channel` — then the first chunk) followed by continuation
// frames until L bytes have come; the receiver checks L against its limit before it reserves
// room for it, and every frame length against its frame limit before it reads the frame.

/// The frame types.
enum FrameType: UInt8, Sendable, CustomStringConvertible {
  case hello = 1
  case message = 2
  case continuation = 3
  case goodbye = 4

  var description: String {
    switch self {
    case .hello: "hello"
    case .message: "message"
    case .continuation: "continuation"
    case .goodbye: "goodbye"
    }
  }
}

/// Sizes of the format, and the framing cost of a message.
enum FrameFormat {
  static let magic: (UInt8, UInt8) = (0x56, 0x4C)
  static let headerBytes = 16
  /// Total length (8) and round (4) at the start of a message frame's payload.
  static let messagePrefixBytes = 12
  /// Hello payload: "VEIL", version (2), sender role, receiver role, run id (16), max frame (4).
  static let helloBytes = 28
  static let helloMagic: [UInt8] = Array("VEIL".utf8)
  /// Bumped whenever the frame or handshake format changes.
  static let protocolVersion: UInt16 = 1

  /// Message bytes carried by each frame for a sender chunk size and a receiver frame limit.
  static func chunkBytes(sender: Int, receiverMaximumFrame: Int) -> Int {
    max(1, min(sender, receiverMaximumFrame - messagePrefixBytes))
  }

  /// Frames of one message of `payload` bytes sent in chunks of `chunk` bytes.
  static func frameCount(payload: Int, chunk: Int) -> Int {
    payload == 0 ? 1 : (payload + chunk - 1) / chunk
  }

  /// Bytes on the wire for one message: headers, the length field and the payload.
  static func wireBytes(payload: Int, chunk: Int) -> Int {
    frameCount(payload: payload, chunk: chunk) * headerBytes + messagePrefixBytes + payload
  }

  /// Writes a frame header at `pointer` (16 bytes).
  static func writeHeader(
    _ type: FrameType, payloadLength: Int, sequence: UInt64, to pointer: UnsafeMutableRawPointer
  ) {
    pointer.storeBytes(of: magic.0, toByteOffset: 0, as: UInt8.self)
    pointer.storeBytes(of: magic.1, toByteOffset: 1, as: UInt8.self)
    pointer.storeBytes(of: type.rawValue, toByteOffset: 2, as: UInt8.self)
    pointer.storeBytes(of: 0, toByteOffset: 3, as: UInt8.self)
    pointer.storeBytes(of: UInt32(payloadLength).littleEndian, toByteOffset: 4, as: UInt32.self)
    pointer.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
  }

  /// A frame header as bytes.
  static func header(_ type: FrameType, payloadLength: Int, sequence: UInt64) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: headerBytes) { buffer, count in
      writeHeader(type, payloadLength: payloadLength, sequence: sequence, to: buffer.baseAddress!)
      count = headerBytes
    }
  }
}

/// The session handshake: what each end says about itself and expects of the other.
struct Hello: Sendable, Equatable {
  var version: UInt16
  /// The role of the end that sends this hello.
  var senderRole: UInt8
  /// The role the sender expects the receiver to have.
  var receiverRole: UInt8
  var runID: RunID
  /// The largest frame payload the sender accepts.
  var maximumFrameBytes: UInt32

  func encoded() -> [UInt8] {
    var bytes = FrameFormat.helloMagic
    bytes.append(UInt8(truncatingIfNeeded: version))
    bytes.append(UInt8(truncatingIfNeeded: version >> 8))
    bytes.append(senderRole)
    bytes.append(receiverRole)
    bytes.append(contentsOf: runID.bytes)
    for shift in stride(from: 0, to: 32, by: 8) {
      bytes.append(UInt8(truncatingIfNeeded: maximumFrameBytes >> UInt32(shift)))
    }
    return bytes
  }

  /// Decodes a hello payload.
  static func decode(_ bytes: [UInt8], peer: String) throws(NetError) -> Hello {
    guard bytes.count == FrameFormat.helloBytes else {
      throw .malformedFrame(peer: peer, reason: "hello of \(bytes.count) bytes, expected \(FrameFormat.helloBytes)")
    }
    guard Array(bytes[0..<4]) == FrameFormat.helloMagic else {
      throw .malformedFrame(peer: peer, reason: "hello without the VEIL tag")
    }
    let version = UInt16(bytes[4]) | UInt16(bytes[5]) << 8
    var limit: UInt32 = 0
    for i in 0..<4 { limit |= UInt32(bytes[24 + i]) << UInt32(8 * i) }
    return Hello(
      version: version, senderRole: bytes[6], receiverRole: bytes[7],
      runID: RunID(uncheckedBytes: Array(bytes[8..<24])), maximumFrameBytes: limit)
  }

  /// Checks a peer's hello against this end's expectations (run on both ends, so each end
  /// refuses a mismatch with its own view of it).
  func checkPeer(_ peer: Hello, peerDescription: String) throws(NetError) {
    func role(_ raw: UInt8) -> String { PartyRole(rawValue: raw)?.name ?? "unknown role \(raw)" }
    if peer.version != version {
      throw .handshakeMismatch(
        peer: peerDescription, field: "protocol version", local: "\(version)", remote: "\(peer.version)")
    }
    if peer.runID != runID {
      throw .handshakeMismatch(peer: peerDescription, field: "run id", local: "\(runID)", remote: "\(peer.runID)")
    }
    if peer.senderRole != receiverRole {
      throw .handshakeMismatch(
        peer: peerDescription, field: "peer role", local: "expects \(role(receiverRole))",
        remote: "claims \(role(peer.senderRole))")
    }
    if peer.receiverRole != senderRole {
      throw .handshakeMismatch(
        peer: peerDescription, field: "role expected of this end", local: role(senderRole),
        remote: role(peer.receiverRole))
    }
    if peer.maximumFrameBytes < 64 {
      throw .handshakeMismatch(
        peer: peerDescription, field: "maximum frame size", local: "≥ 64", remote: "\(peer.maximumFrameBytes)")
    }
  }
}

/// A complete message as it came off the wire.
struct ReceivedMessage: Sendable {
  var bytes: [UInt8]
  /// Bytes of the frames that carried it (headers, prefix, payload).
  var wireBytes: Int
  /// The round the sender stamped on it.
  var round: UInt32
}

/// What the decoder finds in the byte stream.
enum FrameEvent: Sendable {
  case hello(Hello)
  case message(ReceivedMessage)
  case goodbye
}

/// Decodes the byte stream of one direction of a session into events, checking magic, type,
/// flags, sequence numbers, frame and message limits and the order of frame types. Any
/// violation throws; after a throw the decoder must not be used again.
struct FrameDecoder {
  let maximumFrameBytes: Int
  let maximumMessageBytes: Int
  let peer: String

  private enum State {
    /// Collecting a 16-byte header in `scratch`.
    case header
    /// Collecting a hello payload of `length` bytes in `scratch`.
    case hello(length: Int)
    /// Collecting a message's 12-byte prefix in `scratch`; `frameRemaining` counts it.
    case messageLength(frameRemaining: Int)
    /// Copying `frameRemaining` more payload bytes of this frame into `message`.
    case body(frameRemaining: Int)
    /// The peer said goodbye; nothing may follow.
    case ended
  }

  private var state = State.header
  private var scratch: [UInt8] = []
  private var expectedSequence: UInt64 = 0
  private var sawHello = false
  private var message: [UInt8] = []
  /// The most bytes an announced message length reserves before its bytes arrive (large
  /// enough for every key segment and weight chunk Veil sends in one allocation).
  static let upfrontReservation = 64 << 20
  /// The capacity held for the message being received (tests).
  var reservedBytes: Int { message.capacity }
  /// Total length of the message being reassembled, or nil between messages.
  private var messageTotal: Int?
  private var messageRound: UInt32 = 0
  private var messageWireBytes = 0

  init(maximumFrameBytes: Int, maximumMessageBytes: Int, peer: String) {
    self.maximumFrameBytes = maximumFrameBytes
    self.maximumMessageBytes = maximumMessageBytes
    self.peer = peer
    scratch.reserveCapacity(FrameFormat.helloBytes)
  }

  /// The number of bytes of an unfinished message and its announced length, if one is under way.
  var partialMessage: (received: Int, expected: Int)? {
    messageTotal.map { (message.count, $0) }
  }

  /// Whether the peer has said goodbye.
  var ended: Bool {
    if case .ended = state { return true }
    return false
  }

  /// Decodes every complete event in `input` (keeping a partial frame for the next call),
  /// appending them to `events`; returns the error that stopped decoding, if any.
  mutating func drain(_ input: UnsafeRawBufferPointer, into events: inout [FrameEvent]) -> NetError? {
    var rest = input
    do throws(NetError) {
      while let event = try next(&rest) { events.append(event) }
      return nil
    } catch {
      return error
    }
  }

  /// Consumes bytes from the front of `input` until one event is complete (returned) or the
  /// input is used up (nil).
  mutating func next(_ input: inout UnsafeRawBufferPointer) throws(NetError) -> FrameEvent? {
    while true {
      switch state {
      case .header:
        guard !input.isEmpty else { return nil }
        if scratch.isEmpty && input.count >= FrameFormat.headerBytes {
          let header = RawHeader(UnsafeRawBufferPointer(rebasing: input[0..<FrameFormat.headerBytes]))
          input = UnsafeRawBufferPointer(rebasing: input[FrameFormat.headerBytes...])
          if let event = try startFrame(header) { return event }
        } else {
          gather(FrameFormat.headerBytes, from: &input)
          guard scratch.count == FrameFormat.headerBytes else { return nil }
          let header = scratch.withUnsafeBytes { RawHeader($0) }
          scratch.removeAll(keepingCapacity: true)
          if let event = try startFrame(header) { return event }
        }
      case .hello(let length):
        gather(length, from: &input)
        guard scratch.count == length else { return nil }
        let bytes = scratch
        scratch.removeAll(keepingCapacity: true)
        state = .header
        return .hello(try Hello.decode(bytes, peer: peer))
      case .messageLength(let frameRemaining):
        gather(FrameFormat.messagePrefixBytes, from: &input)
        guard scratch.count == FrameFormat.messagePrefixBytes else { return nil }
        var total: UInt64 = 0
        for i in 0..<8 { total |= UInt64(scratch[i]) << UInt64(8 * i) }
        var round: UInt32 = 0
        for i in 0..<4 { round |= UInt32(scratch[8 + i]) << UInt32(8 * i) }
        scratch.removeAll(keepingCapacity: true)
        guard total <= UInt64(maximumMessageBytes) else {
          throw .messageTooLarge(
            peer: peer, bytes: total > UInt64(Int.max) ? Int.max : Int(total), limit: maximumMessageBytes)
        }
        let chunk = frameRemaining - FrameFormat.messagePrefixBytes
        guard chunk <= Int(total) else {
          throw .malformedFrame(peer: peer, reason: "message frame carries \(chunk) bytes of a \(total)-byte message")
        }
        guard total == 0 || chunk > 0 else {
          throw .malformedFrame(peer: peer, reason: "message frame of a \(total)-byte message carries no bytes")
        }
        messageTotal = Int(total)
        messageRound = round
        // A peer's announced length reserves at most `upfrontReservation` bytes: the rest grows
        // as bytes really arrive, so a hostile length costs nothing it has not sent.
        message = []
        let reserve = min(Int(total), FrameDecoder.upfrontReservation)
        message.reserveCapacity(reserve)
        HugePages.advise(&message, capacity: reserve)
        if let event = finishFrame(remaining: chunk) { return event }
      case .body(let frameRemaining):
        guard !input.isEmpty else { return nil }
        let take = min(frameRemaining, input.count)
        message.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<take]))
        input = UnsafeRawBufferPointer(rebasing: input[take...])
        if let event = finishFrame(remaining: frameRemaining - take) { return event }
      case .ended:
        guard input.isEmpty else {
          throw .malformedFrame(peer: peer, reason: "\(input.count) bytes after the peer's goodbye")
        }
        return nil
      }
    }
  }

  private mutating func gather(_ count: Int, from input: inout UnsafeRawBufferPointer) {
    let take = min(count - scratch.count, input.count)
    scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<take]))
    input = UnsafeRawBufferPointer(rebasing: input[take...])
  }

  /// After `remaining` bytes of the current frame's payload are still to come: completes the
  /// message when it is whole, else continues the frame or expects the next one.
  private mutating func finishFrame(remaining: Int) -> FrameEvent? {
    if remaining > 0 {
      state = .body(frameRemaining: remaining)
      return nil
    }
    state = .header
    guard let total = messageTotal, message.count == total else { return nil }
    let complete = ReceivedMessage(bytes: message, wireBytes: messageWireBytes + total, round: messageRound)
    message = []
    messageTotal = nil
    messageWireBytes = 0
    return .message(complete)
  }

  /// Validates a header and sets up its payload; returns an event for empty-payload frames.
  private mutating func startFrame(_ header: RawHeader) throws(NetError) -> FrameEvent? {
    guard header.magic0 == FrameFormat.magic.0, header.magic1 == FrameFormat.magic.1 else {
      // A TLS record starts with its content type (20–23) and major version 3.
      if expectedSequence == 0, (20...23).contains(header.magic0), header.magic1 == 3 {
        throw .peerUsingTLS(peer: peer)
      }
      throw .malformedFrame(
        peer: peer,
        reason: "not a Veil frame (bytes \(hex(header.magic0)) \(hex(header.magic1)), expected the magic 56 4c)")
    }
    guard let type = FrameType(rawValue: header.type) else {
      throw .malformedFrame(peer: peer, reason: "unknown frame type \(header.type)")
    }
    guard header.flags == 0 else {
      throw .malformedFrame(peer: peer, reason: "reserved flags \(hex(header.flags)) set")
    }
    let length = header.length
    let sequence = header.sequence
    guard sequence == expectedSequence else {
      throw .wrongSequenceNumber(peer: peer, expected: expectedSequence, received: sequence)
    }
    guard length <= maximumFrameBytes else {
      throw .frameTooLarge(peer: peer, bytes: length, limit: maximumFrameBytes)
    }
    let expected: String
    let allowed: Bool
    if !sawHello {
      (expected, allowed) = ("hello", type == .hello)
    } else if messageTotal != nil {
      (expected, allowed) = ("continuation", type == .continuation)
    } else {
      (expected, allowed) = ("message or goodbye", type == .message || type == .goodbye)
    }
    guard allowed else { throw .unexpectedFrame(peer: peer, expected: expected, received: type.description) }
    expectedSequence &+= 1
    switch type {
    case .hello:
      guard length == FrameFormat.helloBytes else {
        throw .malformedFrame(peer: peer, reason: "hello of \(length) bytes, expected \(FrameFormat.helloBytes)")
      }
      sawHello = true
      state = .hello(length: length)
      return nil
    case .message:
      guard length >= FrameFormat.messagePrefixBytes else {
        throw .malformedFrame(peer: peer, reason: "message frame of \(length) bytes has no length and round")
      }
      messageWireBytes = FrameFormat.headerBytes + FrameFormat.messagePrefixBytes
      state = .messageLength(frameRemaining: length)
      return nil
    case .continuation:
      let missing = messageTotal! - message.count
      guard length >= 1, length <= missing else {
        throw .malformedFrame(
          peer: peer, reason: "continuation of \(length) bytes where \(missing) bytes of the message remain")
      }
      messageWireBytes += FrameFormat.headerBytes
      state = .body(frameRemaining: length)
      return nil
    case .goodbye:
      guard length == 0 else { throw .malformedFrame(peer: peer, reason: "goodbye with \(length) payload bytes") }
      state = .ended
      return .goodbye
    }
  }
}

/// The fields of a 16-byte frame header, before validation.
private struct RawHeader {
  var magic0: UInt8, magic1: UInt8, type: UInt8, flags: UInt8
  var length: Int
  var sequence: UInt64

  init(_ bytes: UnsafeRawBufferPointer) {
    magic0 = bytes[0]
    magic1 = bytes[1]
    type = bytes[2]
    flags = bytes[3]
    length = Int(bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian)
    sequence = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
  }
}

private func hex(_ byte: UInt8) -> String {
  let digits = Array("0123456789abcdef")
  return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
}

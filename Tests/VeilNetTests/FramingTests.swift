// The frame decoder: valid streams in any split, each kind of fault with its own error, and a
// property test that feeds it ≥ 100 000 random and mutated inputs without a crash.
import Testing
import VeilTestSupport
@testable import VeilNet

/// A valid stream: hello, the messages chunked at `chunk` bytes, optionally goodbye.
func encodeStream(messages: [[UInt8]], chunk: Int = 5, goodbye: Bool = true, runID: RunID = RunID(uncheckedBytes: Array(0..<16)))
  -> [UInt8]
{
  var sequence: UInt64 = 0
  var stream: [UInt8] = []
  let hello = Hello(version: FrameFormat.protocolVersion, senderRole: 1, receiverRole: 0, runID: runID, maximumFrameBytes: 4096)
  stream += FrameFormat.header(.hello, payloadLength: FrameFormat.helloBytes, sequence: sequence) + hello.encoded()
  sequence += 1
  for message in messages {
    var offset = 0
    repeat {
      let take = min(chunk, message.count - offset)
      if offset == 0 {
        stream += FrameFormat.header(.message, payloadLength: 12 + take, sequence: sequence)
        stream += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(message.count) >> UInt64(8 * $0)) }
        stream += [UInt8(truncatingIfNeeded: sequence), 0, 0, 0]  // some round
      } else {
        stream += FrameFormat.header(.continuation, payloadLength: take, sequence: sequence)
      }
      stream += message[offset..<(offset + take)]
      offset += take
      sequence += 1
    } while offset < message.count
  }
  if goodbye { stream += FrameFormat.header(.goodbye, payloadLength: 0, sequence: sequence) }
  return stream
}

/// Feeds `stream` in pieces of the given sizes (cycled); returns the events or the error.
func decode(_ stream: [UInt8], pieces: [Int] = [Int.max], maximumFrame: Int = 4096, maximumMessage: Int = 1 << 20)
  -> (events: [FrameEvent], error: NetError?)
{
  var decoder = FrameDecoder(maximumFrameBytes: maximumFrame, maximumMessageBytes: maximumMessage, peer: "p1 at test")
  var events: [FrameEvent] = []
  var offset = 0
  var piece = 0
  while offset < stream.count {
    let size = min(max(1, pieces[piece % pieces.count]), stream.count - offset)
    piece += 1
    let error = stream[offset..<(offset + size)].withUnsafeBytes { decoder.drain($0, into: &events) }
    if let error { return (events, error) }
    offset += size
  }
  return (events, nil)
}

func messages(of events: [FrameEvent]) -> [[UInt8]] {
  events.compactMap { if case .message(let m) = $0 { return m.bytes } else { return nil } }
}

@Suite struct FramingTests {
  let sample: [[UInt8]] = [[], [1], Array(0..<5), Array(0..<6), Array(0..<23), randomBytes(1000, seed: 9)]

  @Test("a valid stream decodes the same in any split")
  func splits() {
    let stream = encodeStream(messages: sample)
    for pieces in [[Int.max], [1], [2, 3], [7], [16], [17, 1, 5]] {
      let (events, error) = decode(stream, pieces: pieces)
      #expect(error == nil, "pieces \(pieces): \(String(describing: error))")
      #expect(messages(of: events) == sample)
      guard case .hello(let hello) = events.first, case .goodbye = events.last else {
        Issue.record("no hello or goodbye with pieces \(pieces)")
        continue
      }
      #expect(hello.runID.bytes == Array(0..<16))
    }
  }

  @Test("wire bytes per message match the framing formula")
  func wireBytes() {
    let (events, _) = decode(encodeStream(messages: sample, chunk: 5))
    let wires = events.compactMap { if case .message(let m) = $0 { return m.wireBytes } else { return nil } }
    #expect(wires == sample.map { FrameFormat.wireBytes(payload: $0.count, chunk: 5) })
  }

  @Test("each fault has its own error")
  func faults() {
    let valid = encodeStream(messages: [Array(0..<10)], goodbye: false)
    let next = UInt64(3)  // hello, message, continuation
    func error(_ tail: [UInt8], maximumFrame: Int = 4096, maximumMessage: Int = 1 << 20) -> NetError? {
      decode(valid + tail, maximumFrame: maximumFrame, maximumMessage: maximumMessage).error
    }
    let oversize = FrameFormat.header(.message, payloadLength: 4097, sequence: next)
    #expect(error(oversize) == .frameTooLarge(peer: "p1 at test", bytes: 4097, limit: 4096))
    let huge = FrameFormat.header(.message, payloadLength: 13, sequence: next) + [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 7]
    #expect(error(huge) == .messageTooLarge(peer: "p1 at test", bytes: 1 << 56, limit: 1 << 20))
    let wrongType = FrameFormat.header(.continuation, payloadLength: 1, sequence: next) + [7]
    #expect(
      error(wrongType) == .unexpectedFrame(peer: "p1 at test", expected: "message or goodbye", received: "continuation"))
    let secondHello = FrameFormat.header(.hello, payloadLength: 28, sequence: next) + [UInt8](repeating: 0, count: 28)
    #expect(error(secondHello) == .unexpectedFrame(peer: "p1 at test", expected: "message or goodbye", received: "hello"))
    let wrongSequence = FrameFormat.header(.goodbye, payloadLength: 0, sequence: next + 1)
    #expect(error(wrongSequence) == .wrongSequenceNumber(peer: "p1 at test", expected: next, received: next + 1))
    if case .malformedFrame = error([0x00, 0x01, 0x02, 0x03] + [UInt8](repeating: 0, count: 12)) {} else {
      Issue.record("garbage not reported as malformed")
    }
    let unknownType = [0x56, 0x4C, 9, 0] + [UInt8](repeating: 0, count: 12)
    #expect(error(unknownType) == .malformedFrame(peer: "p1 at test", reason: "unknown frame type 9"))
    let afterGoodbye = FrameFormat.header(.goodbye, payloadLength: 0, sequence: next) + [1]
    if case .malformedFrame = error(afterGoodbye) {} else { Issue.record("bytes after goodbye accepted") }
    // A TLS ClientHello where a Veil hello belongs.
    #expect(decode([0x16, 0x03, 0x01, 0x02, 0x00] + [UInt8](repeating: 0, count: 11)).error == .peerUsingTLS(peer: "p1 at test"))
  }

  @Test("the decoder survives ≥ 100 000 random and mutated inputs")
  func fuzz() {
    var generator = SplitMix64(seed: 0x5EED)
    let valid = encodeStream(messages: [[], Array(0..<12), [9]], chunk: 4)
    var outcomes = (events: 0, errors: 0)
    for round in 0..<120_000 {
      var input: [UInt8]
      if round % 2 == 0 {
        // Unstructured bytes, sometimes behind a valid magic so the header checks are reached.
        let count = Int(generator.next() % 96)
        input = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        if round % 4 == 0, input.count >= 2 { input[0] = 0x56; input[1] = 0x4C }
      } else {
        // A valid stream with a few bytes flipped, cut, or spliced.
        input = valid
        for _ in 0..<(1 + Int(generator.next() % 4)) {
          let position = Int(generator.next() % UInt64(input.count))
          switch generator.next() % 3 {
          case 0: input[position] = UInt8(truncatingIfNeeded: generator.next())
          case 1: input.removeSubrange(position...)
          default: input.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
          }
          if input.isEmpty { break }
        }
      }
      let pieces = [1 + Int(generator.next() % 20)]
      let (events, error) = decode(input, pieces: pieces, maximumFrame: 64, maximumMessage: 256)
      outcomes.events += events.count
      if error != nil { outcomes.errors += 1 }
      for case .message(let message) in events { #expect(message.bytes.count <= 256) }
    }
    #expect(outcomes.errors > 50_000 && outcomes.events > 10_000)
  }

  @Test("an announced length reserves a bounded amount before its bytes arrive")
  func announcedLengthsReserveBoundedMemory() {
    let limit = 1 << 30
    var decoder = FrameDecoder(maximumFrameBytes: 4096, maximumMessageBytes: limit, peer: "p1 at test")
    // A valid hello, then a message frame that announces 1 GiB and carries 5 bytes.
    var stream = Array(encodeStream(messages: [], goodbye: false))
    stream += FrameFormat.header(.message, payloadLength: 12 + 5, sequence: 1)
    stream += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(limit) >> UInt64(8 * $0)) }
    stream += [1, 0, 0, 0] + [1, 2, 3, 4, 5]
    var events: [FrameEvent] = []
    let error = stream.withUnsafeBytes { decoder.drain($0, into: &events) }
    #expect(error == nil)
    #expect(decoder.reservedBytes <= FrameDecoder.upfrontReservation + 4096, "reserved \(decoder.reservedBytes) bytes")
  }

  @Test("hello checks: version, run id and both roles, on each end")
  func helloChecks() {
    let runID = RunID.random()
    let mine = Hello(version: 1, senderRole: PartyRole.p0.rawValue, receiverRole: PartyRole.p1.rawValue, runID: runID, maximumFrameBytes: 4096)
    let good = Hello(version: 1, senderRole: PartyRole.p1.rawValue, receiverRole: PartyRole.p0.rawValue, runID: runID, maximumFrameBytes: 4096)
    #expect(throws: Never.self) { try mine.checkPeer(good, peerDescription: "p1") }
    var other = good
    other.version = 2
    #expect(throws: NetError.handshakeMismatch(peer: "p1", field: "protocol version", local: "1", remote: "2")) {
      try mine.checkPeer(other, peerDescription: "p1")
    }
    other = good
    other.runID = RunID.random()
    #expect(throws: NetError.self) { try mine.checkPeer(other, peerDescription: "p1") }
    other = good
    other.senderRole = PartyRole.dealer.rawValue
    #expect(
      throws: NetError.handshakeMismatch(peer: "p1", field: "peer role", local: "expects p1", remote: "claims dealer")
    ) { try mine.checkPeer(other, peerDescription: "p1") }
    other = good
    other.receiverRole = PartyRole.client.rawValue
    #expect(
      throws: NetError.handshakeMismatch(peer: "p1", field: "role expected of this end", local: "p0", remote: "client")
    ) { try mine.checkPeer(other, peerDescription: "p1") }
  }
}

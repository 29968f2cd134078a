// Behaviour every transport must share: exact delivery of messages from 0 B to 64 MB in both
// directions at once, counters that equal what was sent, the round rule, ring tensors, and
// clean ends (goodbye, close, idle timeout).
import Testing
import VeilTestSupport
import VeilRing
@testable import VeilNet

/// Sends `outgoing` while receiving as many messages; returns what arrived.
func sendAndReceive(_ channel: any Channel, _ outgoing: [[UInt8]]) async throws -> [[UInt8]] {
  async let sent: Void = {
    for message in outgoing { try await channel.send(message) }
  }()
  var received: [[UInt8]] = []
  for _ in outgoing { received.append(try await channel.receive()) }
  try await sent
  return received
}

@Suite(.serialized) struct ChannelTests {
  static let sizes = [0, 1, 2, 7, 1000, 65_535, 65_536, 65_537, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 5_000_003]

  @Test("random messages 0 B … 5 MB arrive exactly, both directions at once", arguments: Transport.allCases)
  func delivery(transport: Transport) async throws {
    let (p0, p1) = try await makePair(transport)
    let fromP0 = Self.sizes.enumerated().map { randomBytes($1, seed: UInt64($0)) }
    let fromP1 = Self.sizes.reversed().enumerated().map { randomBytes($1, seed: 1000 + UInt64($0)) }
    async let atP1 = sendAndReceive(p1, fromP1)
    let atP0 = try await sendAndReceive(p0, fromP0)
    let receivedByP1 = try await atP1
    #expect(zip(atP0, fromP1).allSatisfy(sameBytes) && atP0.count == fromP1.count)
    #expect(zip(receivedByP1, fromP0).allSatisfy(sameBytes) && receivedByP1.count == fromP0.count)

    // Counters: payload is exactly what was sent, framing exactly the formula, and one end's
    // sent equals the other's received.
    let c0 = p0.counters
    let c1 = p1.counters
    let chunk = ChannelLimits().chunkBytes
    #expect(c0.payloadBytesSent == Self.sizes.reduce(0, +))
    #expect(c0.payloadBytesReceived == Self.sizes.reduce(0, +))
    #expect(c0.messagesSent == Self.sizes.count && c0.messagesReceived == Self.sizes.count)
    #expect(c0.bytesSent == Self.sizes.map { FrameFormat.wireBytes(payload: $0, chunk: chunk) }.reduce(0, +))
    #expect(c0.bytesSent == c1.bytesReceived && c1.bytesSent == c0.bytesReceived)
    #expect(c0.payloadBytesSent == c1.payloadBytesReceived)
    await p0.close()
    await p1.close()
  }

  @Test("a 64 MB message each way at once, by exchange", .timeLimit(.minutes(2)), arguments: Transport.allCases)
  func large(transport: Transport) async throws {
    let (p0, p1) = try await makePair(transport)
    let size = 64 << 20
    let a = randomBytes(size, seed: 64)
    let b = randomBytes(size + 1, seed: 65)
    let start = ContinuousClock.now
    async let atP1 = p1.exchange(b)
    let atP0 = try await p0.exchange(a)
    #expect(sameBytes(atP0, b))
    #expect(sameBytes(try await atP1, a))
    #expect(p0.counters.rounds == 1 && p1.counters.rounds == 1)
    #expect(p0.counters.bytesSent == FrameFormat.wireBytes(payload: size, chunk: ChannelLimits().chunkBytes))
    print("\(transport): 2 × 64 MB exchanged in \(seconds(since: start)) s")
    await p0.close()
    await p1.close()
  }

  @Test("rounds: an exchange is one, back-to-back messages one, a request and its reply two", arguments: Transport.allCases)
  func rounds(transport: Transport) async throws {
    let (p0, p1) = try await makePair(transport)
    async let peer: Void = {
      _ = try await p1.exchange([1])  // round 1
      #expect(p1.counters.rounds == 1)
      _ = try await p1.exchange([2])  // round 2
      try await p1.send([3])  // depends on p0's round-2 message: round 3
      try await p1.send([4])  // back to back: round 3 too
      _ = try await p1.receive()  // p0's reply to [3], [4]: round 4
    }()
    _ = try await p0.exchange([1])
    #expect(p0.counters.rounds == 1)
    _ = try await p0.exchange([2])
    #expect(p0.counters.rounds == 2)
    _ = try await p0.receive()
    _ = try await p0.receive()
    #expect(p0.counters.rounds == 3)
    try await p0.send([5])
    try await peer
    #expect(p0.counters.rounds == 4)
    #expect(p1.counters.rounds == 4)
    #expect(p0.counters.messagesReceived == 4 && p1.counters.messagesReceived == 3)
    await p0.close()
    await p1.close()
  }

  @Test("ring tensors travel at their ring width and are checked", arguments: Transport.allCases)
  func tensors(transport: Transport) async throws {
    let (p0, p1) = try await makePair(transport)
    let ring = try Ring(bits: 50)
    var generator = SplitMix64(seed: 50)
    let share0 = try RingTensor(ring: ring, shape: [3, 129], reducing: (0..<387).map { _ in generator.next() })
    let share1 = try RingTensor(ring: ring, shape: [3, 129], reducing: (0..<387).map { _ in generator.next() })
    async let at1 = p1.exchange(share1)
    let at0 = try await p0.exchange(share0)
    #expect(at0 == share1)
    #expect(try await at1 == share0)
    // 387 values × 50 bits = 2419 bytes (+ a 20-byte header), not 3096.
    #expect(p0.counters.payloadBytesSent == 4 + 16 + (387 * 50 + 7) / 8)

    // A peer whose tensor has another shape: both ends refuse.
    let wrongShape = try RingTensor(ring: ring, shape: [129, 3], reducing: share1.scalars)
    async let refusedAt1 = netError { _ = try await p1.exchange(wrongShape) }
    let refusedAt0 = await netError { _ = try await p0.exchange(share0) }
    #expect(refusedAt0 == .tensorMismatch(peer: p0.peerDescription, local: "Z_2^50 [3, 129]", remote: "Z_2^50 [129, 3]"))
    #expect(await refusedAt1 == .tensorMismatch(peer: p1.peerDescription, local: "Z_2^50 [129, 3]", remote: "Z_2^50 [3, 129]"))

    // receiveTensor takes ring and shape from the header; 64-bit rings too.
    let wide = try RingTensor(ring: Ring(bits: 64), shape: [2, 2, 2], reducing: [0, 1, .max, 3, 4, 5, 6, 7])
    try await p1.send(wide)
    #expect(try await p0.receiveTensor() == wide)
    try await p1.send([1, 2, 3])
    if case .malformedMessage = await netError({ _ = try await p0.receive(ring: ring, shape: [1]) }) {} else {
      Issue.record("a non-tensor message was accepted as a tensor")
    }
    await p0.close()
    await p1.close()
  }

  @Test("after goodbye the peer's queued messages still arrive, then 'peer closed'", arguments: Transport.allCases)
  func goodbye(transport: Transport) async throws {
    let (p0, p1) = try await makePair(transport)
    try await p1.send([1, 2, 3])
    await p1.close()
    #expect(try await p0.receive() == [1, 2, 3])
    let error = await netError { _ = try await p0.receive() }
    guard case .peerClosed(let peer, _) = error else {
      Issue.record("expected peer closed, got \(String(describing: error))")
      return
    }
    #expect(peer == p0.peerDescription)
    #expect(await netError { _ = try await p1.receive() } != nil)
    await p0.close()
  }

  @Test("a silent peer gives an idle timeout, not a hang", arguments: Transport.allCases)
  func idleTimeout(transport: Transport) async throws {
    let (p0, p1) = try await makePair(transport, limits: testLimits(idleSeconds: 1))
    let start = ContinuousClock.now
    let error = await netError { _ = try await p0.receive() }
    let waited = seconds(since: start)
    #expect(error == .idleTimeout(peer: p0.peerDescription, seconds: 1, during: "while this end waited for a message"))
    #expect(waited >= 0.9 && waited < 5)
    await p0.close()
    await p1.close()
  }

  @Test("a peer that never reads stalls a large send into an idle timeout", arguments: Transport.allCases)
  func stalledSend(transport: Transport) async throws {
    var limits = testLimits(idleSeconds: 1)
    limits.bufferBytes = 1 << 20
    let (p0, p1) = try await makePair(transport, limits: limits)
    let message = randomBytes(4 << 20, seed: 1)
    let start = ContinuousClock.now
    let error = await netError {
      for _ in 0..<64 { try await p0.send(message) }
    }
    guard case .idleTimeout = error else {
      Issue.record("expected an idle timeout, got \(String(describing: error))")
      return
    }
    #expect(seconds(since: start) < 5)
    await p0.close()
    await p1.close()
  }
}

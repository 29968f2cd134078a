// The session state machine of a TCP or TLS connection, run on its NIO event loop: handshake,
// framing of outgoing messages into chunks as the socket takes them, reassembly of incoming
// frames into messages, backpressure both ways, the idle timeout, and turning every failure
// into one `NetError` that names the peer. All of its state is touched on the event loop only;
// `TCPChannel` reaches it by `eventLoop.execute`, so no thread ever blocks on it.
import NIOCore
import NIOSSL

/// State both the event loop and the calling tasks read: a sticky failure (so a send that
/// returned early still reports a later error) and the bytes queued for sending.
struct SessionShared {
  var failure: NetError?
  var queuedSendBytes = 0
}

final class SessionHandler: ChannelDuplexHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  typealias ReceiveCompletion = (Result<ReceivedMessage, NetError>) -> Void
  typealias SendCompletion = (NetError?) -> Void

  private enum Phase {
    /// Waiting for the TCP connection or the TLS handshake.
    case connecting
    /// Our hello is out; waiting for the peer's.
    case awaitingHello
    case established
    /// Sending what is queued, then goodbye, then closing.
    case closing
    case finished
  }

  private struct PendingSend {
    var bytes: [UInt8]
    var round: UInt32
    var offset = 0
    var started = false
    var completion: SendCompletion?
  }

  private(set) var configuration: SessionConfiguration
  /// The role the peer's certificate names (service listeners check the hello against it).
  private var certificateRole: String?
  private let tlsHandler: NIOSSLHandler?
  let shared: Locked<SessionShared>
  private let idleTimeout: TimeAmount
  /// Succeeds with the peer's frame limit and the settled configuration when both hellos are
  /// exchanged and checked.
  let handshakePromise: EventLoopPromise<(Int, SessionConfiguration)>
  private var handshakeSettled = false

  private var context: ChannelHandlerContext?
  private(set) var peerDescription: String
  private var phase = Phase.connecting
  private var activated = false
  private var failure: NetError?

  private var decoder: FrameDecoder
  private var outboundSequence: UInt64 = 0
  /// Message bytes per outgoing frame, fitted to the peer's frame limit after its hello.
  private var chunkBytes: Int
  private var receivedAnything = false
  private var peerSaidGoodbye = false

  private var inbox = CircularBuffer<ReceivedMessage>()
  private var inboxBytes = 0
  private var receivers = CircularBuffer<ReceiveCompletion>()
  private var readHeld = false

  private var outbox = CircularBuffer<PendingSend>()
  private var closePromises: [EventLoopPromise<Void>] = []

  private var lastProgress = NIODeadline.now()
  private var idleTimer: Scheduled<Void>?
  private var wasWaiting = false

  init(
    configuration: SessionConfiguration, tlsHandler: NIOSSLHandler?, shared: Locked<SessionShared>,
    eventLoop: EventLoop
  ) {
    self.configuration = configuration
    self.tlsHandler = tlsHandler
    self.shared = shared
    self.idleTimeout = TimeAmount(configuration.limits.idleTimeout)
    self.handshakePromise = eventLoop.makePromise(of: (Int, SessionConfiguration).self)
    self.peerDescription = configuration.peerRole.name
    self.chunkBytes = configuration.limits.chunkBytes
    self.decoder = FrameDecoder(
      maximumFrameBytes: configuration.limits.maximumFrameBytes,
      maximumMessageBytes: configuration.limits.maximumMessageBytes, peer: configuration.peerRole.name)
  }

  // MARK: Calls from TCPChannel (on the event loop)

  /// Queues a message. `completion` runs once its last frame is handed to the socket (or TLS).
  func enqueueSend(_ bytes: [UInt8], round: UInt32, completion: SendCompletion?) {
    if let failure {
      completion?(failure)
      return
    }
    guard phase == .established else {
      completion?(.closed(peer: peerDescription))
      return
    }
    outbox.append(PendingSend(bytes: bytes, round: round, completion: completion))
    flushOutbox()
    updateWaiting()
  }

  /// Asks for the next message.
  func enqueueReceive(_ completion: @escaping ReceiveCompletion) {
    receivers.append(completion)
    deliver()
    updateWaiting()
  }

  /// Ends the session in order: queued messages, goodbye, close. `promise` succeeds when the
  /// connection is closed.
  func close(promise: EventLoopPromise<Void>) {
    closePromises.append(promise)
    switch phase {
    case .established:
      phase = .closing
      flushOutbox()
      updateWaiting()
    case .closing:
      break
    case .connecting, .awaitingHello:
      finish(.closed(peer: peerDescription))
    case .finished:
      settleClosePromises()
    }
  }

  /// Fails the session from outside (cancellation of a waiting task).
  func abort(_ error: NetError) { finish(error) }

  /// Writes bytes as they are, outside the framing, for fault-injection tests. `sequence`
  /// advances by `frames` so that well-formed frames can follow.
  func writeRaw(_ bytes: [UInt8], frames: Int) {
    guard let context else { return }
    var buffer = context.channel.allocator.buffer(capacity: bytes.count)
    buffer.writeBytes(bytes)
    context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    outboundSequence &+= UInt64(frames)
  }

  /// The next outgoing sequence number (for fault-injection tests).
  var nextSequence: UInt64 { outboundSequence }

  // MARK: Pipeline events

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
    if context.channel.isActive { activate(context) }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    // A channel that never became active (a refused connect) ends here without
    // channelInactive: settle the handshake and any waiter all the same.
    disconnected(reason: nil)
    idleTimer?.cancel()
    idleTimer = nil
    self.context = nil
    settleClosePromises()
  }

  func channelActive(context: ChannelHandlerContext) {
    activate(context)
    context.fireChannelActive()
  }

  private func activate(_ context: ChannelHandlerContext) {
    guard !activated else { return }
    activated = true
    peerDescription = describePeer(configuration.peerRole, context.channel.remoteAddress)
    decoder = FrameDecoder(
      maximumFrameBytes: configuration.limits.maximumFrameBytes,
      maximumMessageBytes: configuration.limits.maximumMessageBytes, peer: peerDescription)
    // Over TLS, NIOSSL holds the hello until the handshake has verified the peer's chain, so
    // it goes only to a holder of a Veil certificate, encrypted. A service listener answers
    // only once it knows from the peer's hello which role and run it serves.
    if configuration.acceptedPeerRoles.isEmpty { sendHello() }
    updateWaiting()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let buffer = unwrapInboundIn(data)
    lastProgress = .now()
    guard failure == nil else { return }
    if !receivedAnything {
      receivedAnything = true
      // Decrypted bytes mean the TLS handshake is done and the chain verified: now check that
      // the certificate names the expected role, before anything the peer says is believed.
      guard checkPeerCertificate() else { return }
    }
    var events: [FrameEvent] = []
    let outcome = buffer.withUnsafeReadableBytes { decoder.drain($0, into: &events) }
    for event in events where failure == nil { handle(event) }
    if let outcome { finish(outcome) }
    updateWaiting()
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    if context.channel.isWritable {
      lastProgress = .now()
      flushOutbox()
      updateWaiting()
    }
    context.fireChannelWritabilityChanged()
  }

  func channelInactive(context: ChannelHandlerContext) {
    disconnected(reason: nil)
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    switch error {
    case let error as NetError:
      finish(error)
    case NIOSSLError.uncleanShutdown:
      // The TCP connection ended without TLS close_notify; channelInactive follows and tells
      // whether a message was cut.
      break
    case is NIOSSLError, is BoringSSLError:
      finish(.tlsFailure(peer: peerDescription, reason: describeTLSError(error)))
    case let error as IOError:
      disconnected(reason: error.description)
    default:
      finish(.connectionFailed(address: peerDescription, reason: String(describing: error)))
    }
  }

  /// Stops reading while the received, unconsumed messages exceed the buffer (backpressure
  /// reaches the sender through TCP's window).
  func read(context: ChannelHandlerContext) {
    if inboxBytes >= configuration.limits.bufferBytes {
      readHeld = true
    } else {
      context.read()
    }
  }

  // MARK: Internals

  private func handle(_ event: FrameEvent) {
    switch event {
    case .hello(let peerHello):
      if phase == .connecting && !configuration.acceptedPeerRoles.isEmpty {
        guard let role = PartyRole(rawValue: peerHello.senderRole),
          configuration.acceptedPeerRoles.contains(role)
        else {
          let names = configuration.acceptedPeerRoles.map(\.name).sorted().joined(separator: ", ")
          finish(
            .handshakeMismatch(
              peer: peerDescription, field: "peer role", local: "accepts \(names)",
              remote: "claims role \(peerHello.senderRole)"))
          return
        }
        if tlsHandler != nil && certificateRole != role.name {
          finish(
            .certificateRoleMismatch(
              peer: peerDescription, expected: role, presented: certificateRole ?? "none"))
          return
        }
        configuration.peerRole = role
        configuration.runID = peerHello.runID
        peerDescription = describePeer(role, context?.channel.remoteAddress)
        sendHello()
      }
      guard phase == .awaitingHello else {
        finish(.unexpectedFrame(peer: peerDescription, expected: "TLS handshake", received: "hello"))
        return
      }
      do throws(NetError) {
        try localHello.checkPeer(peerHello, peerDescription: peerDescription)
      } catch {
        finish(error)
        return
      }
      chunkBytes = FrameFormat.chunkBytes(
        sender: configuration.limits.chunkBytes, receiverMaximumFrame: Int(peerHello.maximumFrameBytes))
      phase = .established
      handshakeSettled = true
      handshakePromise.succeed((Int(peerHello.maximumFrameBytes), configuration))
    case .message(let message):
      inbox.append(message)
      inboxBytes += message.bytes.count
      deliver()
    case .goodbye:
      peerSaidGoodbye = true
      deliver()
    }
  }

  private var localHello: Hello {
    Hello(
      version: FrameFormat.protocolVersion, senderRole: configuration.localRole.rawValue,
      receiverRole: configuration.peerRole.rawValue, runID: configuration.runID,
      maximumFrameBytes: UInt32(configuration.limits.maximumFrameBytes))
  }

  private func sendHello() {
    guard let context, phase == .connecting else { return }
    let payload = localHello.encoded()
    var buffer = context.channel.allocator.buffer(capacity: FrameFormat.headerBytes + payload.count)
    buffer.writeBytes(FrameFormat.header(.hello, payloadLength: payload.count, sequence: outboundSequence))
    buffer.writeBytes(payload)
    outboundSequence &+= 1
    phase = .awaitingHello
    context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
  }

  /// Checks that the verified peer certificate names the expected role.
  private func checkPeerCertificate() -> Bool {
    guard let tlsHandler else { return true }
    let presented: String
    if let der = try? tlsHandler.peerCertificate?.toDERBytes() {
      presented = VeilCertificateAuthority.role(inCertificateDER: der) ?? "none"
    } else {
      presented = "none (no certificate)"
    }
    if !configuration.acceptedPeerRoles.isEmpty {
      guard let role = PartyRole(name: presented), configuration.acceptedPeerRoles.contains(role) else {
        finish(
          .certificateRoleMismatch(
            peer: peerDescription, expected: configuration.peerRole, presented: presented))
        return false
      }
      certificateRole = presented
      return true
    }
    guard presented == configuration.peerRole.name else {
      finish(.certificateRoleMismatch(peer: peerDescription, expected: configuration.peerRole, presented: presented))
      return false
    }
    return true
  }

  /// Hands queued messages to waiting receivers; fails receivers that can never be served.
  private func deliver() {
    while !receivers.isEmpty && !inbox.isEmpty {
      let message = inbox.removeFirst()
      inboxBytes -= message.bytes.count
      receivers.removeFirst()(.success(message))
    }
    if !receivers.isEmpty, inbox.isEmpty {
      let goodbye: NetError? =
        peerSaidGoodbye ? .peerClosed(peer: peerDescription, during: "while this end waited for a message") : nil
      let error = failure ?? goodbye
      if let error {
        let waiting = receivers
        receivers.removeAll()
        for receiver in waiting { receiver(.failure(error)) }
      }
    }
    if readHeld, inboxBytes < configuration.limits.bufferBytes, let context {
      readHeld = false
      context.read()
    }
  }

  /// Writes frames of queued messages while the channel is writable, one flush per frame so
  /// that TLS encrypts as it goes and writability reflects what is really pending.
  private func flushOutbox() {
    guard let context, phase == .established || phase == .closing else { return }
    while let pending = outbox.first, context.channel.isWritable {
      var next = pending
      let total = next.bytes.count
      let chunk = min(total - next.offset, chunkBytes)
      let first = !next.started
      let payloadLength = chunk + (first ? FrameFormat.messagePrefixBytes : 0)
      var buffer = context.channel.allocator.buffer(capacity: FrameFormat.headerBytes + payloadLength)
      buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: FrameFormat.headerBytes) { raw in
        FrameFormat.writeHeader(
          first ? .message : .continuation, payloadLength: payloadLength, sequence: outboundSequence,
          to: raw.baseAddress!)
        return FrameFormat.headerBytes
      }
      if first {
        buffer.writeInteger(UInt64(total), endianness: .little)
        buffer.writeInteger(next.round, endianness: .little)
      }
      let offset = next.offset
      next.bytes.withUnsafeBytes { raw in
        _ = buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + chunk)]))
      }
      outboundSequence &+= 1
      next.offset += chunk
      next.started = true
      context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
      // A write to a reset connection fails at once and finishes the session re-entrantly,
      // which empties the outbox: nothing is left to send then.
      guard failure == nil, !outbox.isEmpty else { return }
      if next.offset == total {
        outbox.removeFirst()
        shared.withLock { $0.queuedSendBytes -= total }
        next.completion?(nil)
      } else {
        outbox[outbox.startIndex] = next
      }
    }
    if phase == .closing, outbox.isEmpty { sendGoodbye() }
  }

  private func sendGoodbye() {
    guard let context else { return }
    phase = .finished
    var buffer = context.channel.allocator.buffer(capacity: FrameFormat.headerBytes)
    buffer.writeBytes(FrameFormat.header(.goodbye, payloadLength: 0, sequence: outboundSequence))
    outboundSequence &+= 1
    let written = context.eventLoop.makePromise(of: Void.self)
    context.writeAndFlush(wrapOutboundOut(buffer), promise: written)
    // Close only once the goodbye has reached the socket; closing earlier would drop it.
    written.futureResult.assumeIsolated().whenComplete { _ in
      self.finish(.closed(peer: self.peerDescription))
    }
  }

  /// The connection went away (or reset): say whether a message was cut.
  private func disconnected(reason: String?) {
    guard failure == nil else {
      settleClosePromises()
      return
    }
    let suffix = reason.map { " (\($0))" } ?? ""
    if let partial = decoder.partialMessage {
      finish(
        .peerDisconnectedMidMessage(
          peer: peerDescription, receivedBytes: partial.received, expectedBytes: partial.expected))
    } else if phase == .connecting || phase == .awaitingHello {
      let hint = tlsHandler == nil && !receivedAnything ? "; does the peer require TLS?" : ""
      finish(.peerClosed(peer: peerDescription, during: "during the session handshake\(suffix)\(hint)"))
    } else {
      finish(.peerClosed(peer: peerDescription, during: waitDescription + suffix))
    }
  }

  /// Records the session's end, fails everything waiting on it and closes the connection.
  private func finish(_ error: NetError) {
    if failure == nil {
      failure = error
      phase = .finished
      shared.withLock {
        $0.failure = error
        $0.queuedSendBytes = 0
      }
      if !handshakeSettled {
        handshakeSettled = true
        handshakePromise.fail(error)
      }
      let sends = outbox
      outbox.removeAll()
      for send in sends { send.completion?(error) }
      deliver()
      idleTimer?.cancel()
      idleTimer = nil
    }
    if let context, context.channel.isActive {
      context.close(promise: nil)
    } else {
      settleClosePromises()
    }
  }

  private func settleClosePromises() {
    let promises = closePromises
    closePromises.removeAll()
    guard let context else {
      // Removed from the pipeline: the connection is already closed.
      for promise in promises { promise.succeed(()) }
      return
    }
    context.channel.closeFuture.whenComplete { _ in
      for promise in promises { promise.succeed(()) }
    }
  }

  // MARK: Idle timeout

  /// Whether this end is waiting on the peer: handshaking, receiving, or sending into a full
  /// socket, or closing.
  private var isWaiting: Bool {
    guard failure == nil else { return false }
    switch phase {
    case .connecting, .awaitingHello, .closing: return true
    case .finished: return false
    case .established: return !receivers.isEmpty || !outbox.isEmpty
    }
  }

  private var waitDescription: String {
    switch phase {
    case .connecting: return "while connecting"
    case .awaitingHello:
      return tlsHandler != nil && !receivedAnything ? "during the TLS handshake" : "during the session handshake"
    case .closing: return "while this end was closing"
    case .established, .finished:
      if !receivers.isEmpty { return "while this end waited for a message" }
      if !outbox.isEmpty { return "while this end waited to send (the peer is not reading)" }
      return "between messages"
    }
  }

  /// Starts the idle clock when waiting begins: time spent computing between messages is
  /// never charged to the peer.
  private func updateWaiting() {
    let waiting = isWaiting
    if waiting && !wasWaiting {
      lastProgress = .now()
      armIdleTimer()
    }
    wasWaiting = waiting
  }

  private func armIdleTimer() {
    guard idleTimer == nil, let context else { return }
    idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: lastProgress + idleTimeout) {
      self.idleTimerFired()
    }
  }

  private func idleTimerFired() {
    idleTimer = nil
    guard isWaiting else { return }
    if NIODeadline.now() - lastProgress >= idleTimeout {
      let seconds = Double(idleTimeout.nanoseconds) / 1e9
      finish(.idleTimeout(peer: peerDescription, seconds: seconds, during: waitDescription))
    } else {
      armIdleTimer()
    }
  }
}

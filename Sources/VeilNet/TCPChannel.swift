// Channels over TCP (swift-nio), with mutual TLS 1.3 (swift-nio-ssl) or, behind an explicit
// insecure option, plain. `TCPChannel` is the `Channel` face of one connection; the session
// state lives in its `SessionHandler` on the connection's event loop, reached by
// `eventLoop.execute` and resumed by continuations, so a waiting party holds no thread.
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Who a session connects and what it checks during the handshake.
public struct SessionConfiguration: Sendable {
  /// The run both ends must belong to.
  public var runID: RunID
  /// This end's role; the peer checks it, and over TLS this end's certificate must name it.
  public var localRole: PartyRole
  /// The role this end requires of the peer (in its hello and, over TLS, its certificate).
  public var peerRole: PartyRole
  /// Frame, message and buffer sizes and the idle timeout.
  public var limits: ChannelLimits
  /// How long `connect` retries a refused connection (the peer may not listen yet), and how
  /// long `TCPListener.accept` waits by default.
  public var connectTimeout: Duration
  /// A service's listener (DESIGN §10): when not empty, the listening end accepts a peer of any
  /// of these roles (its certificate and its hello must agree) for any run id, adopts both
  /// from the peer's hello and only then answers it; `runID` and `peerRole` are ignored.
  public var acceptedPeerRoles: Set<PartyRole> = []

  /// A session of run `runID` between this end, `localRole`, and a peer that must be `peerRole`.
  public init(
    runID: RunID, localRole: PartyRole, peerRole: PartyRole, limits: ChannelLimits = ChannelLimits(),
    connectTimeout: Duration = .seconds(30)
  ) {
    self.runID = runID
    self.localRole = localRole
    self.peerRole = peerRole
    self.limits = limits
    self.connectTimeout = connectTimeout
  }

  /// A service listener's configuration: peers of `roles`, any run id.
  public static func service(
    localRole: PartyRole, accepting roles: Set<PartyRole>, limits: ChannelLimits = ChannelLimits(),
    handshakeTimeout: Duration = .seconds(10)
  ) -> SessionConfiguration {
    var configuration = SessionConfiguration(
      runID: RunID(uncheckedBytes: [UInt8](repeating: 0, count: 16)), localRole: localRole,
      peerRole: roles.sorted { $0.rawValue < $1.rawValue }.first ?? .client, limits: limits,
      connectTimeout: handshakeTimeout)
    configuration.acceptedPeerRoles = roles
    return configuration
  }
}

/// One session over TCP or TLS. Make one with ``connect(host:port:configuration:security:group:)``
/// or ``TCPListener/accept(timeout:)``; it is ready (handshake done) when you get it.
public final class TCPChannel: Channel {
  /// The peer's role, checked in the handshake (and its certificate, over TLS).
  public let peerRole: PartyRole
  /// "p1 at 127.0.0.1:40123".
  public let peerDescription: String
  /// Whether the session runs over TLS.
  public let isEncrypted: Bool
  /// The run (or request) both ends named in the handshake.
  public let runID: RunID

  let nioChannel: any NIOCore.Channel
  private let handler: NIOLoopBound<SessionHandler>
  private let shared: Locked<SessionShared>
  private let limits: ChannelLimits
  private let accounting = ChannelAccounting()
  /// Message bytes per frame this end sends, for the framing it counts (the handler fits the
  /// chunk to the peer's limit the same way).
  private let chunk: Int

  init(
    nioChannel: any NIOCore.Channel, handler: NIOLoopBound<SessionHandler>, shared: Locked<SessionShared>,
    configuration: SessionConfiguration, peerMaximumFrame: Int?, encrypted: Bool
  ) {
    self.nioChannel = nioChannel
    self.handler = handler
    self.shared = shared
    self.limits = configuration.limits
    self.peerRole = configuration.peerRole
    self.runID = configuration.runID
    self.peerDescription = describePeer(configuration.peerRole, nioChannel.remoteAddress)
    self.isEncrypted = encrypted
    self.chunk = FrameFormat.chunkBytes(
      sender: configuration.limits.chunkBytes,
      receiverMaximumFrame: peerMaximumFrame ?? configuration.limits.maximumFrameBytes)
  }

  deinit {
    // A session dropped without close() must not leak its socket.
    if nioChannel.isActive { nioChannel.close(promise: nil) }
  }

  /// Connects to a listening peer and runs the session handshake.
  /// - Parameters:
  ///   - host: the peer's address ("127.0.0.1", "::1" or a host name).
  ///   - port: the peer's port.
  ///   - configuration: run id, roles, limits; refused connections are retried for
  ///     `connectTimeout` (the peer may start later).
  ///   - security: mutual TLS, or plain TCP (prints a warning).
  ///   - group: the event loops; by default NIO's shared group.
  public static func connect(
    host: String, port: Int, configuration: SessionConfiguration, security: TransportSecurity,
    group: (any EventLoopGroup)? = nil
  ) async throws(NetError) -> TCPChannel {
    try configuration.limits.validate()
    let address = "\(host):\(port)"
    let tlsContext = try security.context(server: false, configuration: configuration, address: address)
    let group = group ?? MultiThreadedEventLoopGroup.singleton
    let deadline = ContinuousClock.now + configuration.connectTimeout
    var attempt = 0
    while true {
      attempt += 1
      let installed = Locked<InstalledSession?>(nil)
      let bootstrap = ClientBootstrap(group: group)
        .connectTimeout(.seconds(10))
        .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
        .channelOption(ChannelOptions.recvAllocator, value: receiveAllocator)
        .channelOption(ChannelOptions.writeBufferWaterMark, value: waterMark)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            let session = try SessionPipeline.install(
              on: channel, configuration: configuration, tls: tlsContext, server: false)
            installed.withLock { $0 = session }
          }
        }
      do {
        let channel = try await bootstrap.connect(host: host, port: port).get()
        guard let session = installed.withLock({ $0 }) else {
          channel.close(promise: nil)
          throw NetError.connectionFailed(address: address, reason: "the connection's pipeline was not set up")
        }
        return try await SessionPipeline.establish(
          channel, session: session, configuration: configuration, encrypted: tlsContext != nil)
      } catch let error as NetError {
        throw error
      } catch {
        // The peer may not listen yet: retry a refused connection until the deadline.
        guard ContinuousClock.now < deadline, isRetryable(error) else {
          throw .connectionFailed(address: address, reason: "\(describeConnectError(error)) after \(attempt) attempts")
        }
        try? await Task.sleep(for: .milliseconds(50))
      }
    }
  }

  public var counters: ChannelCounters { accounting.counters }

  /// The local address of the connection ("127.0.0.1:40123").
  public var localAddress: String { nioChannel.localAddress.map(describeAddress) ?? "unknown" }

  public func send(_ message: [UInt8]) async throws(NetError) {
    if let pending = try await startSend(message) { try await pending.wait() }
  }

  public func receive() async throws(NetError) -> [UInt8] {
    // Even after a failure the handler still hands out messages that arrived before it.
    let handler = self.handler
    let result: Result<ReceivedMessage, NetError> = await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        nioChannel.eventLoop.execute {
          handler.value.enqueueReceive { continuation.resume(returning: $0) }
        }
      }
    } onCancel: {
      self.abort(.cancelled(peer: self.peerDescription))
    }
    let message = try result.get()
    guard accounting.recordReceive(payload: message.bytes.count, wire: message.wireBytes, round: message.round) else {
      let error = NetError.malformedFrame(
        peer: peerDescription, reason: "message of round \(message.round) is ahead of the rounds this end has sent")
      abort(error)
      throw error
    }
    return message.bytes
  }

  public func exchange(_ message: [UInt8]) async throws(NetError) -> [UInt8] {
    // Queue the send first, then wait for the peer's message: the event loop writes and reads
    // at once, so a large exchange streams both ways without a second task.
    let sendResult = try await startSend(message)
    let received = try await receive()
    if let sendResult { try await sendResult.wait() }
    return received
  }

  public func close() async {
    let promise = nioChannel.eventLoop.makePromise(of: Void.self)
    let handler = self.handler
    nioChannel.eventLoop.execute { handler.value.close(promise: promise) }
    try? await promise.futureResult.get()
    try? await nioChannel.closeFuture.get()
  }

  // MARK: Sending

  /// A send whose last frame has not yet been handed to the socket.
  private final class PendingSendResult: Sendable {
    let future: EventLoopFuture<Void>
    init(_ future: EventLoopFuture<Void>) { self.future = future }
    func wait() async throws(NetError) {
      do {
        try await future.get()
      } catch let error as NetError {
        throw error
      } catch {
        throw .connectionFailed(address: "", reason: "\(error)")
      }
    }
  }

  /// Queues a message on the event loop. Small messages that fit the send buffer return at
  /// once (like a socket send); a larger backlog returns a result to wait for.
  private func startSend(_ message: [UInt8]) async throws(NetError) -> PendingSendResult? {
    if let failure = shared.withLock({ $0.failure }) { throw failure.forSending }
    let mustWait = shared.withLock { state -> Bool in
      state.queuedSendBytes += message.count
      return state.queuedSendBytes > limits.bufferBytes
    }
    let round = accounting.recordSend(
      payload: message.count, wire: FrameFormat.wireBytes(payload: message.count, chunk: chunk))
    let handler = self.handler
    let eventLoop = nioChannel.eventLoop
    guard mustWait else {
      eventLoop.execute { handler.value.enqueueSend(message, round: round, completion: nil) }
      return nil
    }
    let promise = eventLoop.makePromise(of: Void.self)
    eventLoop.execute {
      handler.value.enqueueSend(message, round: round) { error in
        if let error { promise.fail(error) } else { promise.succeed(()) }
      }
    }
    return PendingSendResult(promise.futureResult)
  }

  private func abort(_ error: NetError) {
    let handler = self.handler
    nioChannel.eventLoop.execute { handler.value.abort(error) }
  }

  // MARK: Test support

  /// Writes raw bytes outside the framing (fault-injection tests); `frames` advances the
  /// outgoing sequence number so that later frames stay in sequence.
  func writeRaw(_ bytes: [UInt8], frames: Int = 0) async {
    let handler = self.handler
    let promise = nioChannel.eventLoop.makePromise(of: Void.self)
    nioChannel.eventLoop.execute {
      handler.value.writeRaw(bytes, frames: frames)
      promise.succeed(())
    }
    try? await promise.futureResult.get()
  }

  /// The next outgoing sequence number (fault-injection tests).
  func nextSequence() async -> UInt64 {
    let handler = self.handler
    return (try? await nioChannel.eventLoop.submit { handler.value.nextSequence }.get()) ?? 0
  }

  /// Drops the connection without goodbye (fault-injection tests).
  func dropConnection() async {
    try? await nioChannel.close()
  }
}

extension NetError {
  /// The failure as a sender sees it.
  var forSending: NetError {
    switch self {
    case .peerClosed(let peer, _): .peerClosed(peer: peer, during: "before this end could send")
    default: self
    }
  }
}

/// Event-loop threads of one's own, for a party that should not share NIO's default group
/// (for example both ends of a loopback benchmark, one thread each). Pass `group` to
/// ``TCPChannel/connect(host:port:configuration:security:group:)`` or
/// ``TCPListener/bind(host:port:configuration:security:group:)``.
public final class NetworkThreads: Sendable {
  /// The event loops.
  public let group: MultiThreadedEventLoopGroup

  /// Starts `count` event-loop threads.
  public init(count: Int = 1) { group = MultiThreadedEventLoopGroup(numberOfThreads: count) }

  /// Stops the threads; close the channels that use them first.
  public func shutdown() async { try? await group.shutdownGracefully() }
}

/// Runs tasks on a channel's event-loop thread. A protocol task that prefers it
/// (`withTaskExecutorPreference(channel.taskExecutor) { … }`) wakes up on the thread that
/// received its message and sends from there, saving the two thread hand-offs (event loop →
/// cooperative pool → event loop) of every round trip; `veil bench net` measures both ways
/// beside raw sockets. The price: while that task computes, the event loop does not move
/// this connection's bytes (the kernel's socket buffers still do), so prefer it for
/// latency-bound phases.
@available(macOS 15.0, *)
public final class EventLoopTaskExecutor: TaskExecutor {
  private let eventLoop: any EventLoop

  init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

  /// Runs `job` on the event loop, after what the loop is doing now.
  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
  }
}

@available(macOS 15.0, *)
extension TCPChannel {
  /// An executor on this channel's event-loop thread; see ``EventLoopTaskExecutor``.
  public var taskExecutor: EventLoopTaskExecutor { EventLoopTaskExecutor(nioChannel.eventLoop) }
}

/// Reads up to 1 MiB per read when data streams (NIO's default stops at 64 KiB, which costs a
/// system call and a pipeline pass per 64 KiB at GB/s rates).
let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 * 1024, maximum: 1 << 20)
/// NIO's outbound buffer between 1 and 4 MiB: the handler writes frames while the channel is
/// writable, so this bounds what sits in user space beside the kernel's socket buffer.
let waterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 1 << 20, high: 4 << 20)

extension TransportSecurity {
  /// The TLS context for this end, or nil for plain TCP (after printing the warning).
  func context(server: Bool, configuration: SessionConfiguration, address: String) throws(NetError) -> NIOSSLContext? {
    switch self {
    case .mutualTLS(let identity):
      let shutdown = min(TimeAmount(configuration.limits.idleTimeout), .seconds(1))
      return try identity.makeContext(server: server, localRole: configuration.localRole, shutdownTimeout: shutdown)
    case .insecurePlainTCP:
      let line =
        "warning: \(configuration.localRole) \(server ? "listens at" : "connects to") \(address) over plain TCP "
        + "(--insecure): traffic is neither encrypted nor authenticated\n"
      FileHandle.standardError.write(Data(line.utf8))
      return nil
    }
  }
}

/// What `SessionPipeline.install` set up, for the task that waits for the handshake.
struct InstalledSession: Sendable {
  let handler: NIOLoopBound<SessionHandler>
  let shared: Locked<SessionShared>
  /// The handshake's outcome: the peer's frame limit, and the configuration as settled (a
  /// service listener adopts the peer's role and run id).
  let handshake: EventLoopFuture<(Int, SessionConfiguration)>
}

/// Building a connection's pipeline and waiting for its handshake.
enum SessionPipeline {
  /// Adds (TLS and) the session handler to a new channel; runs on its event loop.
  static func install(
    on channel: any NIOCore.Channel, configuration: SessionConfiguration, tls: NIOSSLContext?, server: Bool
  ) throws -> InstalledSession {
    let operations = channel.pipeline.syncOperations
    var tlsHandler: NIOSSLHandler?
    if let tls {
      if server { try operations.addHandler(PlaintextDetector(peerRole: configuration.peerRole)) }
      let handler: NIOSSLHandler =
        server ? NIOSSLServerHandler(context: tls) : try NIOSSLClientHandler(context: tls, serverHostname: nil)
      try operations.addHandler(handler)
      tlsHandler = handler
    }
    let shared = Locked(SessionShared())
    let handler = SessionHandler(
      configuration: configuration, tlsHandler: tlsHandler, shared: shared, eventLoop: channel.eventLoop)
    try operations.addHandler(handler)
    return InstalledSession(
      handler: NIOLoopBound(handler, eventLoop: channel.eventLoop), shared: shared,
      handshake: handler.handshakePromise.futureResult)
  }

  /// Waits for the handshake of a channel whose pipeline `install` built.
  static func establish(
    _ channel: any NIOCore.Channel, session: InstalledSession, configuration: SessionConfiguration, encrypted: Bool
  ) async throws(NetError) -> TCPChannel {
    do {
      let (peerMaximumFrame, settled) = try await session.handshake.get()
      return TCPChannel(
        nioChannel: channel, handler: session.handler, shared: session.shared, configuration: settled,
        peerMaximumFrame: peerMaximumFrame, encrypted: encrypted)
    } catch let error as NetError {
      channel.close(promise: nil)
      throw error
    } catch {
      channel.close(promise: nil)
      throw .connectionFailed(address: describePeer(configuration.peerRole, channel.remoteAddress), reason: "\(error)")
    }
  }
}

private func isRetryable(_ error: any Error) -> Bool {
  if let error = error as? IOError {
    return [ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH].contains(error.errnoCode)
  }
  if error is NIOConnectionError { return true }
  return false
}

private func describeConnectError(_ error: any Error) -> String {
  if let error = error as? NIOConnectionError {
    let reasons = error.connectionErrors.map { "\($0.error)" }
    return reasons.isEmpty ? "\(error)" : reasons.joined(separator: "; ")
  }
  return "\(error)"
}

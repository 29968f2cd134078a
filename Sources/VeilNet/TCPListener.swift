// A listening socket that turns incoming connections into handshaken `TCPChannel`s. Each
// connection runs its handshake on its own; `accept` hands out the outcomes in order, so a
// refused peer (wrong CA, wrong role, wrong run) is reported to the caller, who may accept again.
import NIOCore
import NIOPosix

/// Listens for peers of one session kind (one run id, one expected peer role).
public final class TCPListener: Sendable {
  /// The port it listens on (useful after binding port 0).
  public let port: Int
  /// The address it listens on.
  public let host: String

  private let serverChannel: any NIOCore.Channel
  private let queue: AcceptQueue
  private let connectTimeout: Duration

  private init(serverChannel: any NIOCore.Channel, queue: AcceptQueue, host: String, connectTimeout: Duration) {
    self.serverChannel = serverChannel
    self.queue = queue
    self.host = host
    self.port = serverChannel.localAddress?.port ?? 0
    self.connectTimeout = connectTimeout
  }

  /// Listens at `host:port` (port 0 picks a free one).
  /// - Parameters:
  ///   - host: the address to listen at, e.g. "127.0.0.1" or "::1".
  ///   - port: the port, or 0.
  ///   - configuration: run id, roles and limits every accepted session uses.
  ///   - security: mutual TLS, or plain TCP (prints a warning).
  ///   - group: the event loops; by default NIO's shared group.
  public static func bind(
    host: String, port: Int, configuration: SessionConfiguration, security: TransportSecurity,
    group: (any EventLoopGroup)? = nil
  ) async throws(NetError) -> TCPListener {
    try configuration.limits.validate()
    let address = "\(host):\(port)"
    let tlsContext = try security.context(server: true, configuration: configuration, address: address)
    let queue = AcceptQueue()
    let bootstrap = ServerBootstrap(group: group ?? MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(ChannelOptions.backlog, value: 16)
      .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
      .childChannelOption(ChannelOptions.recvAllocator, value: receiveAllocator)
      .childChannelOption(ChannelOptions.writeBufferWaterMark, value: waterMark)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try SessionPipeline.install(on: channel, configuration: configuration, tls: tlsContext, server: true)
        }.map { installed in
          // The handshake runs on its own; its outcome joins the accept queue when it settles.
          Task {
            do throws(NetError) {
              let session = try await SessionPipeline.establish(
                channel, session: installed, configuration: configuration, encrypted: tlsContext != nil)
              queue.deliver(.success(session))
            } catch {
              queue.deliver(.failure(error))
            }
          }
        }
      }
    do {
      let channel = try await bootstrap.bind(host: host, port: port).get()
      return TCPListener(serverChannel: channel, queue: queue, host: host, connectTimeout: configuration.connectTimeout)
    } catch {
      throw .connectionFailed(address: address, reason: "\(error)")
    }
  }

  /// The next session whose handshake finished — or the error of the next one that failed.
  /// - Parameter timeout: how long to wait for a peer; by default the configuration's
  ///   `connectTimeout`.
  public func accept(timeout: Duration? = nil) async throws(NetError) -> TCPChannel {
    try await queue.next(timeout: timeout ?? connectTimeout, address: "\(host):\(port)")
  }

  /// Stops listening. Sessions already accepted stay open.
  public func close() async {
    try? await serverChannel.close()
    queue.close(address: "\(host):\(port)")
  }
}

/// Outcomes of incoming handshakes waiting for `accept`, bounded so that a flood of
/// connections cannot grow it without end.
final class AcceptQueue: Sendable {
  private typealias Waiter = CheckedContinuation<Result<TCPChannel, NetError>, Never>
  private struct State {
    var outcomes: [Result<TCPChannel, NetError>] = []
    var waiters: [(id: UInt64, continuation: Waiter)] = []
    var timers: [UInt64: Task<Void, Never>] = [:]
    var nextID: UInt64 = 0
    var closed: NetError?
  }
  private static let capacity = 16
  private let state = Locked(State())

  func deliver(_ outcome: Result<TCPChannel, NetError>) {
    let waiter: Waiter? = state.withLock { state in
      if !state.waiters.isEmpty {
        let waiter = state.waiters.removeFirst()
        state.timers.removeValue(forKey: waiter.id)?.cancel()
        return waiter.continuation
      }
      if state.closed == nil, state.outcomes.count < Self.capacity { state.outcomes.append(outcome) }
      // Otherwise the session is dropped (its deinit closes the connection).
      return nil
    }
    waiter?.resume(returning: outcome)
  }

  func next(timeout: Duration, address: String) async throws(NetError) -> TCPChannel {
    let id: UInt64 = state.withLock {
      $0.nextID += 1
      return $0.nextID
    }
    let result = await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: Waiter) in
        let ready: Result<TCPChannel, NetError>? = state.withLock { state in
          if !state.outcomes.isEmpty { return state.outcomes.removeFirst() }
          if let closed = state.closed { return .failure(closed) }
          state.waiters.append((id, continuation))
          return nil
        }
        if let ready {
          continuation.resume(returning: ready)
          return
        }
        let seconds = timeoutSeconds(timeout)
        let timer = Task {
          try? await Task.sleep(for: timeout)
          guard !Task.isCancelled else { return }
          self.expire(
            id,
            .connectionFailed(
              address: address, reason: "no peer completed a handshake within \(formatSeconds(seconds)) s"))
        }
        let stale = state.withLock { state in
          guard state.waiters.contains(where: { $0.id == id }) else { return true }
          state.timers[id] = timer
          return false
        }
        if stale { timer.cancel() }
      }
    } onCancel: {
      self.expire(id, .cancelled(peer: "listener at \(address)"))
    }
    return try result.get()
  }

  func close(address: String) {
    let waiters = state.withLock { state in
      state.closed = .closed(peer: "listener at \(address)")
      state.outcomes.removeAll()
      for timer in state.timers.values { timer.cancel() }
      state.timers.removeAll()
      defer { state.waiters.removeAll() }
      return state.waiters
    }
    for waiter in waiters { waiter.continuation.resume(returning: .failure(.closed(peer: "listener at \(address)"))) }
  }

  private func expire(_ id: UInt64, _ error: NetError) {
    let waiter: Waiter? = state.withLock { state in
      state.timers.removeValue(forKey: id)?.cancel()
      guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
      return state.waiters.remove(at: index).continuation
    }
    waiter?.resume(returning: .failure(error))
  }
}

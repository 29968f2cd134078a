// Addresses, identities and connections of a deployment: HOST:PORT parsing, the TLS (or, for
// experiments, plain TCP) security of each role, and opening a session to another role.
import Foundation
import Logging
import VeilMPC
import VeilNet

/// A role's address, "HOST:PORT" ("[::1]:PORT" for IPv6).
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
  public let host: String
  public let port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses "HOST:PORT"; nil when it is not one.
  public init?(_ text: String) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
      (0...65535).contains(port)
    else { return nil }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { return nil }
    self.host = host
    self.port = port
  }

  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How a role reaches the others.
public struct Deployment: Sendable {
  public let role: PartyRole
  public let security: TransportSecurity
  public var limits = ChannelLimits()
  /// How long a connection to another role retries a refused connection.
  public var connectTimeout: Duration = .seconds(5)

  /// Mutual TLS with the certificate `veil certs` wrote for `role` in `certificates`, or plain
  /// TCP when `insecure` (experiments only: a warning is printed on every connection).
  public init(role: PartyRole, certificates: String?, insecure: Bool) throws {
    self.role = role
    // A client waits on the dealer (its output mask comes last) and on the servers (the output)
    // for a whole run, which takes minutes at BERT-base scale on small hosts; the roles that
    // talk every gate keep the short default. A peer that dies is seen at once either way
    // (its connection closes); the idle timeout is for a peer that hangs.
    if role == .client { limits.idleTimeout = .seconds(600) }
    if insecure {
      security = .insecurePlainTCP
    } else {
      guard let certificates else {
        throw RoleError.state("give --certs DIR (from `veil certs`), or --insecure for experiments")
      }
      security = .mutualTLS(try TLSIdentity(directory: certificates, role: role))
    }
  }

  /// A session with `peer` at `endpoint` for run (or request) `id`.
  public func connect(to endpoint: Endpoint, as peer: PartyRole, id: RunID) async throws
    -> TCPChannel
  {
    let configuration = SessionConfiguration(
      runID: id, localRole: role, peerRole: peer, limits: limits, connectTimeout: connectTimeout)
    return try await TCPChannel.connect(
      host: endpoint.host, port: endpoint.port, configuration: configuration, security: security)
  }

  /// A listener for peers of `roles`, any run id.
  public func listen(at endpoint: Endpoint, accepting roles: Set<PartyRole>) async throws
    -> TCPListener
  {
    try await TCPListener.bind(
      host: endpoint.host, port: endpoint.port,
      configuration: .service(localRole: role, accepting: roles, limits: limits),
      security: security)
  }
}

extension RunID {
  /// The run id of a run order.
  init(order: RunOrder) throws {
    guard let id = RunID(hex: order.runID) else {
      throw RoleError.state("run id '\(order.runID.prefix(40))' is not 32 hexadecimal digits")
    }
    self = id
  }
}

/// How a session's handler left it.
enum SessionDisposition {
  /// Done with: the session is closed.
  case finished
  /// Handed to the task of a run or setup (the rendezvous): left open.
  case handedOn
}

/// Accepts sessions until the listener is closed, each in a task of its own, and returns once
/// the running ones have finished too (a graceful stop). Each session's first control message
/// goes to `handle` with a logger that names the request and the peer; a failure is counted,
/// logged and sent to the peer as `name: reason`. A refused handshake is logged.
func acceptSessions(
  _ listener: TCPListener, name: String, logger: Logger, metrics: ServiceMetrics,
  handle: @escaping @Sendable (TCPChannel, RoleMessage, Logger) async throws -> SessionDisposition
) async {
  await withDiscardingTaskGroup { group in
    while true {
      do {
        let channel = try await listener.accept(timeout: .seconds(365 * 86400))
        group.addTask {
          var logger = logger
          logger[metadataKey: "request"] = "\(channel.runID.description.prefix(12))"
          logger[metadataKey: "peer"] = "\(channel.peerRole)"
          do {
            let first = try await channel.receiveMessage()
            if try await handle(channel, first, logger) == .handedOn { return }
          } catch {
            metrics.failures.increment()
            logger.error("request failed: \(error)")
            try? await channel.send(.failure("\(name): \(error)"))
          }
          await channel.close()
        }
      } catch NetError.closed {
        return
      } catch {
        logger.warning("refused a connection: \(error)")
      }
    }
  }
}

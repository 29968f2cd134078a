// TCP and TLS only: refusals during the handshake (another CA, wrong role, plain client to a
// TLS server and back, other run id) and faulty peers (disconnect mid-message, oversize frame,
// wrong type, wrong sequence number, garbage), each reported to the other side within 5 s as
// an error that names the peer and the problem.
import Foundation
import NIOCore
import Testing

@testable import VeilNet

/// Listens as p0 with `serverSecurity`, connects as p1 with `clientSecurity`; returns both
/// outcomes.
func handshake(
  server serverSecurity: TransportSecurity, client clientSecurity: TransportSecurity,
  serverRunID: RunID = RunID(uncheckedBytes: Array(repeating: 7, count: 16)),
  clientRunID: RunID = RunID(uncheckedBytes: Array(repeating: 7, count: 16)),
  clientRole: PartyRole = .p1, clientExpects: PartyRole = .p0, acceptTimeout: Duration = .seconds(8)
) async throws -> (server: Result<TCPChannel, NetError>, client: Result<TCPChannel, NetError>) {
  let limits = testLimits(idleSeconds: 3)
  let listener = try await TCPListener.bind(
    host: "127.0.0.1", port: 0,
    configuration: SessionConfiguration(
      runID: serverRunID, localRole: .p0, peerRole: .p1, limits: limits),
    security: serverSecurity)
  async let server: Result<TCPChannel, NetError> = {
    do throws(NetError) { return .success(try await listener.accept(timeout: acceptTimeout)) } catch
    { return .failure(error) }
  }()
  let client: Result<TCPChannel, NetError>
  do throws(NetError) {
    client = .success(
      try await TCPChannel.connect(
        host: "127.0.0.1", port: listener.port,
        configuration: SessionConfiguration(
          runID: clientRunID, localRole: clientRole, peerRole: clientExpects, limits: limits,
          connectTimeout: .seconds(2)),
        security: clientSecurity))
  } catch {
    client = .failure(error)
  }
  let outcome = (await server, client)
  await listener.close()
  return outcome
}

extension Result {
  var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}

@Suite(.serialized) struct TLSRefusalTests {
  @Test("mutual TLS with the right roles works and is encrypted")
  func good() async throws {
    let (server, client) = try await handshake(
      server: .mutualTLS(TestPKI.identities[.p0]!), client: .mutualTLS(TestPKI.identities[.p1]!))
    let p0 = try server.get()
    let p1 = try client.get()
    #expect(p0.isEncrypted && p1.isEncrypted)
    #expect(p0.peerDescription.hasPrefix("p1 at 127.0.0.1:"))
    try await p1.send([42])
    #expect(try await p0.receive() == [42])
    await p0.close()
    await p1.close()
  }

  @Test("a client certificate from another CA is refused")
  func otherCA() async throws {
    let stranger = try TestPKI.otherAuthority.issue(role: .p1)
    // The stranger trusts our CA, so only our side can object.
    let impostor = TLSIdentity(
      trustRootPEM: TestPKI.authority.certificatePEM, certificatePEM: stranger.certificatePEM,
      privateKeyPEM: stranger.privateKeyPEM)
    let (server, client) = try await handshake(
      server: .mutualTLS(TestPKI.identities[.p0]!), client: .mutualTLS(impostor))
    guard case .tlsFailure(let peer, let reason) = server.failure else {
      Issue.record("server: expected a TLS failure, got \(server)")
      return
    }
    #expect(peer.hasPrefix("p1 at 127.0.0.1:"))
    #expect(reason.contains("does not verify against this end's Veil CA"))
    #expect(client.failure != nil, "the impostor must not get a session")
  }

  @Test("a server certificate from another CA is refused by the client")
  func otherCAServer() async throws {
    let stranger = try TestPKI.otherAuthority.issue(role: .p0)
    let impostor = TLSIdentity(
      trustRootPEM: TestPKI.authority.certificatePEM, certificatePEM: stranger.certificatePEM,
      privateKeyPEM: stranger.privateKeyPEM)
    let (server, client) = try await handshake(
      server: .mutualTLS(impostor), client: .mutualTLS(TestPKI.identities[.p1]!))
    guard case .tlsFailure(let peer, let reason) = client.failure else {
      Issue.record("client: expected a TLS failure, got \(client)")
      return
    }
    #expect(peer.hasPrefix("p0 at 127.0.0.1:"))
    #expect(reason.contains("does not verify"))
    #expect(server.failure != nil)
  }

  @Test("a valid certificate naming the wrong role is refused")
  func wrongRole() async throws {
    // The dealer's genuine certificate, presented by a client that claims to be p1.
    let (server, client) = try await handshake(
      server: .mutualTLS(TestPKI.identities[.p0]!),
      client: .mutualTLS(TestPKI.identities[.dealer]!),
      clientRole: .dealer)
    guard case .certificateRoleMismatch(let peer, let expected, let presented) = server.failure
    else {
      Issue.record("server: expected a role mismatch, got \(server)")
      return
    }
    #expect(peer.hasPrefix("p1 at 127.0.0.1:") && expected == .p1 && presented == "dealer")
    #expect(client.failure != nil)
  }

  @Test("a client whose own certificate names another role is stopped before connecting")
  func ownRole() async throws {
    let (_, client) = try await handshake(
      server: .mutualTLS(TestPKI.identities[.p0]!),
      client: .mutualTLS(TestPKI.identities[.client]!),
      acceptTimeout: .milliseconds(200))
    #expect(
      client.failure
        == .invalidConfiguration("this end's certificate names role client, but it runs as p1"))
  }

  @Test("a plain TCP client to a TLS server is refused with a clear error")
  func plainToTLS() async throws {
    let (server, client) = try await handshake(
      server: .mutualTLS(TestPKI.identities[.p0]!), client: .insecurePlainTCP)
    #expect(server.failure?.description.contains("speaks plain TCP, not TLS") == true, "\(server)")
    guard case .peerNotUsingTLS(let peer) = server.failure else { return }
    #expect(peer.hasPrefix("p1 at 127.0.0.1:"))
    guard case .peerClosed(_, let during) = client.failure else {
      Issue.record("client: expected the server to hang up, got \(client)")
      return
    }
    #expect(during.contains("does the peer require TLS?"))
  }

  @Test("a TLS client to a plain server is refused with a clear error")
  func tlsToPlain() async throws {
    let (server, client) = try await handshake(
      server: .insecurePlainTCP, client: .mutualTLS(TestPKI.identities[.p1]!))
    guard case .peerUsingTLS(let peer) = server.failure else {
      Issue.record("server: expected 'peer uses TLS', got \(server)")
      return
    }
    #expect(peer.hasPrefix("p1 at 127.0.0.1:"))
    #expect(client.failure != nil)
  }

  @Test("another run id or role in the hello is refused on both ends")
  func handshakeMismatch() async throws {
    let (server, client) = try await handshake(
      server: .insecurePlainTCP, client: .insecurePlainTCP,
      clientRunID: RunID(uncheckedBytes: Array(repeating: 8, count: 16)))
    guard case .handshakeMismatch(_, "run id", let local, let remote) = server.failure else {
      Issue.record("server: expected a run id mismatch, got \(server)")
      return
    }
    #expect(
      local == String(repeating: "07", count: 16) && remote == String(repeating: "08", count: 16))
    guard case .handshakeMismatch(_, "run id", _, _) = client.failure else {
      Issue.record("client: expected a run id mismatch, got \(client)")
      return
    }
    let (roleServer, roleClient) = try await handshake(
      server: .insecurePlainTCP, client: .insecurePlainTCP, clientRole: .dealer)
    #expect(
      roleServer.failure
        == .handshakeMismatch(
          peer: roleServer.failure.map {
            if case .handshakeMismatch(let p, _, _, _) = $0 { p } else { "" }
          } ?? "",
          field: "peer role", local: "expects p1", remote: "claims dealer"))
    guard case .handshakeMismatch(_, "role expected of this end", _, _) = roleClient.failure else {
      Issue.record("client: expected a role mismatch, got \(roleClient)")
      return
    }
  }

  @Test("nobody listening: a clear connection error, bounded by the connect timeout")
  func refused() async throws {
    let start = ContinuousClock.now
    let error = await netError {
      _ = try await TCPChannel.connect(
        host: "127.0.0.1", port: 1,
        configuration: SessionConfiguration(
          runID: RunID.random(), localRole: .p1, peerRole: .p0, connectTimeout: .milliseconds(300)),
        security: .insecurePlainTCP)
    }
    guard case .connectionFailed(let address, _) = error else {
      Issue.record("expected a connection failure, got \(String(describing: error))")
      return
    }
    #expect(address == "127.0.0.1:1")
    #expect(seconds(since: start) < 5)
  }
}

@Suite(.serialized) struct FaultTests {
  /// A pair where p1 is the faulty peer; returns the error p0 gets, and how long it took.
  func fault(
    tls: Bool = false, idleSeconds: Int = 4, _ misbehave: (TCPChannel) async throws -> Void
  ) async throws
    -> (NetError?, Double, TCPChannel)
  {
    var limits = testLimits(idleSeconds: idleSeconds)
    limits.maximumFrameBytes = 1 << 16
    let (p0, p1) = try await makeTCPPair(tls: tls, limits: limits)
    let start = ContinuousClock.now
    async let error = netError { _ = try await p0.receive() }
    try await misbehave(p1)
    let outcome = await error
    let elapsed = seconds(since: start)
    await p1.close()
    await p0.close()
    #expect(elapsed < 5, "the error took \(elapsed) s")
    #expect(
      outcome?.description.contains(p0.peerDescription) == true, "\(String(describing: outcome))")
    return (outcome, elapsed, p0)
  }

  @Test("disconnect mid-message", arguments: [false, true])
  func midMessage(tls: Bool) async throws {
    let (error, _, _) = try await fault(tls: tls) { p1 in
      let sequence = await p1.nextSequence()
      let frame =
        FrameFormat.header(.message, payloadLength: 12 + 100, sequence: sequence)
        + (0..<8).map { UInt8(truncatingIfNeeded: 1000 >> (8 * $0)) } + [1, 0, 0, 0]
        + [UInt8](repeating: 1, count: 100)
      await p1.writeRaw(frame, frames: 1)
      try await Task.sleep(for: .milliseconds(50))
      await p1.dropConnection()
    }
    guard case .peerDisconnectedMidMessage(_, 100, 1000) = error else {
      Issue.record(
        "expected mid-message disconnect after 100 of 1000 bytes, got \(String(describing: error))")
      return
    }
  }

  @Test("a frame over the limit is refused before it is read")
  func oversize() async throws {
    let (error, _, p0) = try await fault { p1 in
      let sequence = await p1.nextSequence()
      await p1.writeRaw(
        FrameFormat.header(.message, payloadLength: (1 << 16) + 1, sequence: sequence), frames: 1)
    }
    #expect(error == .frameTooLarge(peer: p0.peerDescription, bytes: (1 << 16) + 1, limit: 1 << 16))
  }

  @Test("a frame of the wrong type")
  func wrongType() async throws {
    let (error, _, p0) = try await fault { p1 in
      let sequence = await p1.nextSequence()
      await p1.writeRaw(
        FrameFormat.header(.continuation, payloadLength: 3, sequence: sequence) + [1, 2, 3],
        frames: 1)
    }
    #expect(
      error
        == .unexpectedFrame(
          peer: p0.peerDescription, expected: "message or goodbye", received: "continuation"))
  }

  @Test("a frame with the wrong sequence number")
  func wrongSequence() async throws {
    let (error, _, p0) = try await fault { p1 in
      let sequence = await p1.nextSequence()
      await p1.writeRaw(
        FrameFormat.header(.message, payloadLength: 13, sequence: sequence + 5) + [
          1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9,
        ])
    }
    #expect(error == .wrongSequenceNumber(peer: p0.peerDescription, expected: 1, received: 6))
  }

  @Test("garbage", arguments: [false, true])
  func garbage(tls: Bool) async throws {
    let (error, _, _) = try await fault(tls: tls) { p1 in
      await p1.writeRaw(Array("GET / HTTP/1.1\r\nHost: p0\r\n\r\n".utf8))
    }
    guard case .malformedFrame(_, let reason) = error else {
      Issue.record("expected garbage to be reported, got \(String(describing: error))")
      return
    }
    #expect(reason.contains("not a Veil frame"))
  }

  @Test("a peer that goes silent mid-message hits the idle timeout")
  func silentMidMessage() async throws {
    let (error, elapsed, _) = try await fault(idleSeconds: 2) { p1 in
      let sequence = await p1.nextSequence()
      await p1.writeRaw(
        FrameFormat.header(.message, payloadLength: 12 + 10, sequence: sequence)
          + [20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 2], frames: 1)
    }
    guard case .idleTimeout(_, 2, "while this end waited for a message") = error else {
      Issue.record("expected an idle timeout, got \(String(describing: error))")
      return
    }
    #expect(elapsed >= 1.9)
  }
}

@Suite struct CertificateTests {
  @Test("veil certs files: CA, a certificate and key per role, keys 0600, loadable")
  func files() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-certs-\(UUID().uuidString)"
    ).path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let written = try CertificateFiles.write(to: directory, roles: [.p0, .p1, .dealer])
    #expect(written.count == 8)
    for path in written {
      let attributes = try FileManager.default.attributesOfItem(atPath: path)
      let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
      #expect(
        mode == (path.hasSuffix("-key.pem") ? 0o600 : 0o644), "\(path): \(String(mode, radix: 8))")
    }
    let identity = try TLSIdentity(directory: directory, role: .dealer)
    #expect(identity.role == "dealer")
    #expect(throws: NetError.self) { try TLSIdentity(directory: directory, role: .client) }
    #expect(throws: NetError.self) { try CertificateFiles.write(to: directory, roles: [.p0]) }
    #expect(throws: Never.self) {
      try CertificateFiles.write(to: directory, roles: [.p0], overwrite: true)
    }
  }

  @Test("a CA reads back from its PEM and issues certificates that name the role")
  func authority() throws {
    let authority = TestPKI.authority
    let again = try VeilCertificateAuthority(
      certificatePEM: authority.certificatePEM, privateKeyPEM: authority.privateKeyPEM)
    for role in PartyRole.allCases { #expect(try again.issue(role: role).role == role.name) }
    #expect(throws: NetError.self) {
      try VeilCertificateAuthority(
        certificatePEM: authority.certificatePEM,
        privateKeyPEM: TestPKI.otherAuthority.privateKeyPEM)
    }
  }
}

@Suite struct EventLoopExecutorTests {
  @Test(
    "protocol tasks pinned to their connection's event loop exchange correctly",
    arguments: [false, true])
  func pinned(tls: Bool) async throws {
    let (p0, p1) = try await makeTCPPair(tls: tls)
    let message = randomBytes(3 << 20, seed: 3)
    async let other: [UInt8] = withTaskExecutorPreference(p1.taskExecutor) {
      var last: [UInt8] = []
      for round in 0..<20 {
        last = try await p1.exchange(round % 2 == 0 ? [UInt8(round)] : message)
      }
      return last
    }
    let mine: [UInt8] = try await withTaskExecutorPreference(p0.taskExecutor) {
      var last: [UInt8] = []
      for round in 0..<20 {
        last = try await p0.exchange(round % 2 == 0 ? [UInt8(round)] : message)
      }
      return last
    }
    #expect(sameBytes(mine, message))
    #expect(sameBytes(try await other, message))
    #expect(p0.counters.rounds == 20 && p1.counters.rounds == 20)
    await p0.close()
    await p1.close()
  }
}

/// The socket options both ends set: TCP_NODELAY at the TCP level, and nothing at the socket
/// level by mistake (`socketOption(.tcp_nodelay)` is SO_DEBUG, which only root may set: an
/// unprivileged user could not connect at all).
@Suite struct SocketOptionTests {
  @Test func bothEndsSetNoDelayAndNothingPrivileged() async throws {
    let (server, client) = try await makeTCPPair(tls: false)
    for channel in [server, client] {
      let noDelay = try await channel.nioChannel.getOption(ChannelOptions.tcpOption(.tcp_nodelay))
        .get()
      let debug = try await channel.nioChannel.getOption(
        ChannelOptions.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG))
      ).get()
      #expect(noDelay != 0, "TCP_NODELAY is off")
      #expect(debug == 0, "SO_DEBUG is set (a privileged option)")
    }
    await server.close()
    await client.close()
  }
}

/// A peer that resets the connection while this end is sending: the writes fail at once and
/// end the session from inside the flush loop; every send must fail cleanly, never crash (a
/// dealer streaming keys to a killed P1 once did, the outbox emptied under the loop).
@Suite(.serialized) struct ResetWhileSendingTests {
  @Test(arguments: [false, true])
  func sendsFailCleanlyWhenThePeerResets(tls: Bool) async throws {
    for round in 0..<12 {
      let (server, client) = try await makeTCPPair(tls: tls)
      let payload = [UInt8](repeating: 7, count: 64 << 10)
      let sender = Task {
        var sent = 0
        // Several sends in flight at a time, so that the outbox holds more than one.
        while sent < 2000 {
          let ok = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 { group.addTask { (try? await client.send(payload)) != nil } }
            var all = true
            for await ok in group where !ok { all = false }
            return all
          }
          if !ok { return sent }
          sent += 4
        }
        return sent
      }
      // Read a little, then go away with unread data in the buffer: the close is a reset.
      for _ in 0..<(1 + round % 4) { _ = try? await server.receive() }
      await server.dropConnection()
      let sent = await sender.value
      #expect(sent < 2000, "every send succeeded although the peer reset")
      #expect((try? await client.send([1, 2, 3])) == nil, "a send after the reset succeeded")
      await client.close()
    }
  }
}

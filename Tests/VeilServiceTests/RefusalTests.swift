// What a deployment refuses, tested on real processes by a test that plays a role itself with
// that role's certificate: P0 (ordering runs), the client (joining them, sending requests).
// A replayed run id — after a restart, and through a second server process sharing the
// ledger folder — an order for another model's setup, malformed requests and garbage frames:
// each gets a clear refusal, and the deployment serves the next real request.
import Foundation
import Testing
import VeilMPC
import VeilNet
import VeilService
import VeilTestSupport

extension DeploymentTests {
  /// A role the test plays, with the certificate `veil certs` made for it.
  struct PlayedRole {
    let deployment: Deployment

    init(_ role: PartyRole, certs: String) throws {
      var deployment = try Deployment(role: role, certificates: certs, insecure: false)
      deployment.limits.idleTimeout = .seconds(30)
      self.deployment = deployment
    }

    func connect(_ address: String, as peer: PartyRole, run: RunID) async throws -> TCPChannel {
      guard let endpoint = Endpoint(address) else { throw ServiceError("address \(address)") }
      return try await deployment.connect(to: endpoint, as: peer, id: run)
    }
  }

  /// Plays P0 and the client of `order` against P1 (at `p1`) and the dealer, up to the moment
  /// P1 reads its key stream; returns P1's answer on the leader's session: the reply that
  /// follows its acceptance (a failure, when P1 refuses the stream) or the error that ended it.
  static func orderRun(
    _ order: RunOrder, p1: String, dealer: String, certs: String, waitForLedger: String? = nil
  ) async throws -> String {
    let run = try #require(RunID(hex: order.runID))
    let p0 = try PlayedRole(.p0, certs: certs)
    let client = try PlayedRole(.client, certs: certs)
    let leader = try await p0.connect(p1, as: .p1, run: run)
    try await leader.send(.run(order))
    do {
      guard case .accepted = try await leader.receiveReply() else { return "no acceptance" }
    } catch {
      await leader.close()
      return "\(error)"
    }
    let joining = try await client.connect(p1, as: .p1, run: run)
    try await joining.send(.join(order))
    let dealerForP0 = try await p0.connect(dealer, as: .dealer, run: run)
    try await dealerForP0.send(.run(order))
    let dealerForClient = try await client.connect(dealer, as: .dealer, run: run)
    try await dealerForClient.send(.run(order))
    defer {
      Task {
        for channel in [leader, joining, dealerForP0, dealerForClient] { await channel.close() }
      }
    }
    if let waitForLedger {
      // P1 took the stream: its run id is burnt. Leave the run unfinished (P1 abandons it).
      let deadline = Date().addingTimeInterval(20)
      while !FileManager.default.fileExists(atPath: waitForLedger) && Date() < deadline {
        try await Task.sleep(for: .milliseconds(20))
      }
      return FileManager.default.fileExists(atPath: waitForLedger) ? "consumed" : "not consumed"
    }
    do {
      let reply = try await leader.receiveReply()
      return "unexpected \(reply.kind)"
    } catch {
      return "\(error)"
    }
  }

  /// Sends `message` to P0 as the client and returns the reply or the error that ended it.
  static func request(_ message: RoleMessage?, raw: [UInt8]? = nil, p0: String, certs: String)
    async throws -> String
  {
    let client = try PlayedRole(.client, certs: certs)
    let channel = try await client.connect(p0, as: .p0, run: RunID.random())
    defer { Task { await channel.close() } }
    if let message { try await channel.send(message) }
    if let raw { try await channel.send(raw) }
    do { return "unexpected \(try await channel.receiveReply().kind)" } catch { return "\(error)" }
  }

  @Test(.enabled(if: VeilBinary.shouldRun), .timeLimit(.minutes(10)))
  func replayedForeignAndMalformedRunsAreRefused() async throws {
    let deployment = try ProcessDeployment()
    defer { deployment.stopAll() }
    let dir = deployment.directory
    let certs = dir + "/certs"
    let shared = try deployment.shareModel(TestModel.directory())
    try #require(shared.status == 0, "share-model: \(shared.stderr)\n\(deployment.logs)")
    let expected = try Self.local(["hello"], in: dir)
    #expect(try embeddings(try deployment.embed(["hello"])) == expected)

    // The public facts of the setup, as any client reads them from the model card.
    let reader = try PlayedRole(.client, certs: certs)
    let cardChannel = try await reader.connect(deployment.p1.address, as: .p1, run: RunID.random())
    try await cardChannel.send(.modelCardRequest)
    guard case .modelCard(let card) = try await cardChannel.receiveReply() else {
      Issue.record("no model card")
      return
    }
    await cardChannel.close()
    func order(_ runID: String, setupID: String? = nil) -> RunOrder {
      RunOrder(
        runID: runID, setupID: setupID ?? card.manifest.setupID,
        modelDigest: hex(card.manifest.modelDigest), tokens: 3, validTokens: 3)
    }

    // The run id P1 consumed, replayed after P1's restart, with a dealer that would deal it
    // again (as one restored from an old backup would: its ledger entry removed).
    let consumed = try FileManager.default.contentsOfDirectory(atPath: dir + "/p1/ledger")
    try #require(consumed.count == 1)
    #expect(deployment.p1.stop() == 0)
    try deployment.p1.restart()
    try FileManager.default.removeItem(atPath: dir + "/dealer/ledger/" + consumed[0])
    let replay = try await Self.orderRun(
      order(consumed[0]), p1: deployment.p1.address, dealer: deployment.dealer.address, certs: certs
    )
    #expect(replay.contains("already used"), "a restarted P1 took a consumed run id: \(replay)")

    // Two server processes on one ledger folder: a run id one of them consumed is refused by
    // the other (the kernel's O_EXCL decides between concurrent consumers; KeyStreamTests).
    let twin = Service(
      "p1-twin",
      [
        "serve", "--party", "1", "--state", "p1", "--listen", "127.0.0.1:0", "--dealer",
        deployment.dealer.address, "--certs", "certs",
      ], in: dir)
    try twin.start()
    defer { twin.stop() }
    let fresh = RunID.random().description
    let first = try await Self.orderRun(
      order(fresh), p1: deployment.p1.address, dealer: deployment.dealer.address, certs: certs,
      waitForLedger: dir + "/p1/ledger/" + fresh)
    try #require(first == "consumed", "P1 did not take a fresh run: \(deployment.logs)")
    try FileManager.default.removeItem(atPath: dir + "/dealer/ledger/" + fresh)
    let second = try await Self.orderRun(
      order(fresh), p1: twin.address, dealer: deployment.dealer.address, certs: certs)
    #expect(second.contains("already used"), "two servers on one ledger both took a run: \(second)")

    // An order for another model's setup: refused before anything is dealt.
    let foreign = try await Self.orderRun(
      order(RunID.random().description, setupID: String(repeating: "ab", count: 16)),
      p1: deployment.p1.address, dealer: deployment.dealer.address, certs: certs)
    #expect(foreign.contains("setup"), "an order of another setup: \(foreign)")

    // Malformed requests and garbage frames from a client: an error reply each.
    let p0 = deployment.p0.address
    let zero = try await Self.request(
      .embed(EmbedRequest(tokens: 0, validTokens: 0)), p0: p0, certs: certs)
    #expect(zero.contains("token"), "\(zero)")
    let huge = try await Self.request(
      .embed(EmbedRequest(tokens: 1 << 20, validTokens: 1)), p0: p0, certs: certs)
    #expect(huge.contains("token"), "\(huge)")
    let garbage = try await Self.request(
      nil, raw: Array("{\"run\": 12, ∅".utf8) + [0, 255, 7], p0: p0, certs: certs)
    #expect(garbage.contains("p0"), "\(garbage)")
    let wrongKind = try await Self.request(.setupDone(maskedDigest: "00"), p0: p0, certs: certs)
    #expect(wrongKind.contains("p0"), "\(wrongKind)")
    // A peer that speaks no TLS at all, and one that sends bytes that are no frame.
    let plain = try Deployment(role: .client, certificates: nil, insecure: true)
    let refused = try? await plain.connect(to: Endpoint(p0)!, as: .p0, id: RunID.random())
    #expect(refused == nil, "P0 accepted a plain-TCP client")
    try sendRawBytes(Array(repeating: 0x41, count: 4096), to: deployment.p0.port)

    // Every role is still up and serves the next real request, bit for bit.
    #expect(deployment.p0.isRunning && deployment.p1.isRunning && deployment.dealer.isRunning)
    #expect(try embeddings(try deployment.embed(["hello"])) == expected, "\(deployment.logs)")
    try? FileManager.default.removeItem(atPath: dir)
  }
}

/// Opens a TCP connection to 127.0.0.1:`port`, writes `bytes`, and closes it.
func sendRawBytes(_ bytes: [UInt8], to port: Int) throws {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw ServiceError("socket") }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
  }
  guard connected == 0 else { throw ServiceError("connect to \(port)") }
  _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

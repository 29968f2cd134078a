// P0↔P1 channel pairs over loopback TCP or mutual TLS with both ends in this process, for the
// benchmarks (`veil bench net`, `veil bench model --transport`): one event-loop thread per end,
// so that the two parties' network work runs on two threads as it would on two machines.
import VeilNet

/// A connected loopback pair: `p0` accepted, `p1` connected. Close both, then `shutdown()`.
struct LoopbackPair: Sendable {
  let p0: any Channel
  let p1: any Channel
  private let threads: [NetworkThreads]

  /// TLS issues each end a role certificate from a fresh throw-away authority.
  static func connect(tls: Bool, limits: ChannelLimits = ChannelLimits()) async throws
    -> LoopbackPair
  {
    let threads = [NetworkThreads(count: 1), NetworkThreads(count: 1)]
    let runID = RunID.random()
    let authority = tls ? try VeilCertificateAuthority.generate() : nil
    func security(_ role: PartyRole) throws -> TransportSecurity {
      guard let authority else { return .insecurePlainTCP }
      return .mutualTLS(try authority.issue(role: role))
    }
    let listener = try await TCPListener.bind(
      host: "127.0.0.1", port: 0,
      configuration: SessionConfiguration(
        runID: runID, localRole: .p0, peerRole: .p1, limits: limits),
      security: try security(.p0), group: threads[0].group)
    async let accepted = listener.accept()
    let p1 = try await TCPChannel.connect(
      host: "127.0.0.1", port: listener.port,
      configuration: SessionConfiguration(
        runID: runID, localRole: .p1, peerRole: .p0, limits: limits),
      security: try security(.p1), group: threads[1].group)
    let p0 = try await accepted
    await listener.close()
    return LoopbackPair(p0: p0, p1: p1, threads: threads)
  }

  /// Stops the event-loop threads (after the channels are closed).
  func shutdown() async {
    for t in threads { await t.shutdown() }
  }
}

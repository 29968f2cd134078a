// Keys delivered ahead (issue 18), as a user deploys them: the dealer names a pooled bucket,
// P0 and P1 keep disk pools, P0 fills them while idle. A request of the pooled shape must equal
// the one-process run bit for bit with no key from the dealer on the servers' side; a stream
// restored after its run must be dropped when the servers restart; a server that lost its
// stream must send the request to keys on demand, not fail it.
import Foundation
import Testing
import VeilTestSupport

@Suite(.serialized) struct KeyPoolDeploymentTests {
  static let texts = ["A man is playing a guitar.", "hello"]
  static let poolArguments = ["--key-pool-gb", "2"]

  /// Waits (≤ 90 s) until `service` has logged `count` lines containing `text`.
  static func wait(for text: String, count: Int, in service: Service) -> Bool {
    let deadline = Date().addingTimeInterval(90)
    while Date() < deadline {
      if service.log.components(separatedBy: text).count - 1 >= count { return true }
      usleep(100_000)
    }
    return false
  }

  static func streams(_ folder: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
      $0.hasSuffix(".stream")
    }.sorted()
  }

  @Test(.enabled(if: VeilBinary.shouldRun), .timeLimit(.minutes(10)))
  func pooledRequestsMatchTheOneProcessRunWithoutKeyTransferAndStreamsAreSingleUse()
    async throws
  {
    let deployment = try ProcessDeployment(
      extra: (
        dealer: ["--pool", "16h:2"], p0: ["--key-pool", "p0pool"] + Self.poolArguments,
        p1: ["--key-pool", "p1pool"] + Self.poolArguments
      ))
    defer { deployment.stopAll() }
    let dir = deployment.directory
    let shared = try deployment.shareModel(TestModel.directory())
    try #require(shared.status == 0, "share-model: \(shared.stderr)\n\(deployment.logs)")

    // P0 fills both pools while idle.
    try #require(
      Self.wait(for: "key pool: stored a 16h stream", count: 2, in: deployment.p0),
      "\(deployment.logs)")
    let filled = Self.streams(dir + "/p0pool")
    #expect(filled.count == 2 && Self.streams(dir + "/p1pool") == filled)
    let saved = dir + "/saved"
    for party in ["p0", "p1"] {
      try FileManager.default.createDirectory(
        atPath: "\(saved)/\(party)", withIntermediateDirectories: true)
      for name in filled {
        try FileManager.default.copyItem(
          atPath: "\(dir)/\(party)pool/\(name)", toPath: "\(saved)/\(party)/\(name)")
      }
    }

    // Two requests in the bucket: bit for bit the one-process padded run, both on pooled keys;
    // the servers took no key from the dealer and the client only its own small stream.
    let expected = try DeploymentTests.local(Self.texts, in: dir, extra: ["--pad-to", "16"])
    let pooled = try deployment.embed(Self.texts, extra: ["--pad-to", "16"])
    #expect(try embeddings(pooled) == expected, "\(pooled.stderr.suffix(600))\n\(deployment.logs)")
    for server in [deployment.p0, deployment.p1] {
      #expect(
        server.log.components(separatedBy: "keys pooled").count - 1 == 2, "\(deployment.logs)")
    }
    #expect(
      deployment.dealer.log.components(separatedBy: "handed the client its stream").count == 3)
    #expect(!deployment.dealer.log.contains("dealt 16 tokens"), "a pooled request was dealt again")
    let metrics = try deployment.p0Metrics()
    #expect(metrics.contains("veil_pooled_requests_total{role=\"p0\"} 2"), "\(metrics.prefix(900))")
    #expect(metrics.contains("veil_key_bytes_total{role=\"p0\"} 0"), "\(metrics.prefix(900))")
    if let object = try JSONSerialization.jsonObject(with: Data(pooled.stdout.utf8))
      as? [String: Any], let clientKeys = object["client_key_bytes"] as? Int
    {
      #expect(clientKeys < 20_000, "the client received \(clientKeys) key bytes")
    } else {
      Issue.record("no client_key_bytes in \(pooled.stdout.prefix(300))")
    }

    // A shape the pool does not hold gets keys on demand.
    let unpadded = try deployment.embed([Self.texts[1]])
    #expect(try embeddings(unpadded) == (try DeploymentTests.local([Self.texts[1]], in: dir)))
    #expect(deployment.p0.log.contains("keys from the dealer"), "\(deployment.logs)")

    // The used streams restored into both pools: dropped when the servers restart, because the
    // durable ledger holds their run ids.
    try #require(
      Self.wait(for: "key pool: stored a 16h stream", count: 4, in: deployment.p0),
      "\(deployment.logs)")
    #expect(deployment.p0.stop() == 0 && deployment.p1.stop() == 0)
    for party in ["p0", "p1"] {
      for name in filled {
        try FileManager.default.copyItem(
          atPath: "\(saved)/\(party)/\(name)", toPath: "\(dir)/\(party)pool/\(name)")
      }
    }
    try deployment.p1.restart()
    try deployment.p0.restart()
    for server in [deployment.p0, deployment.p1] {
      #expect(
        server.log.components(separatedBy: "already used (the ledger holds it)").count - 1 == 2,
        "\(deployment.logs)")
    }
    #expect(Set(Self.streams(dir + "/p0pool")).isDisjoint(with: filled))

    // P1 lost its streams: P0 burns its own and serves the request with keys on demand.
    for name in Self.streams(dir + "/p1pool") { unlink(dir + "/p1pool/" + name) }
    let fallback = try deployment.embed([Self.texts[0]], extra: ["--pad-to", "16"])
    #expect(try embeddings(fallback) == [expected[0]], "\(deployment.logs)")
    #expect(deployment.p0.log.contains("p1 refused the pooled run"), "\(deployment.logs)")

    #expect(deployment.p0.stop() == 0 && deployment.p1.stop() == 0 && deployment.dealer.stop() == 0)
    try? FileManager.default.removeItem(atPath: dir)
  }
}

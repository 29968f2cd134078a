// The roles apart, as a user deploys them (issue 17): the dealer, P0 and P1 as separate
// processes on loopback with mutual TLS, the model shared once by `veil share-model`, clients
// as `veil embed --remote`. Results must be bit for bit the one-process run's; every fault
// must leave the surviving roles serving the next request.
import Foundation
import Testing
import VeilTestSupport

@Suite(.serialized) struct DeploymentTests {
  static let texts = ["A man is playing a guitar.", "Veil keeps the text private.", "hello"]
  /// 128 tokens: a run long enough to kill a role in the middle of it.
  static let longText = Array(repeating: "secret shares of a sentence", count: 32).joined(
    separator: " ")

  /// The one-process secure run (which equals the fixed-point engine bit for bit, as the
  /// MiniLM tests check).
  static func local(_ texts: [String], in directory: String, extra: [String] = []) throws
    -> [[Double]]
  {
    let result = try runVeil(
      ["embed", "--model", TestModel.directory(), "--json"] + extra + texts, in: directory)
    #expect(result.status == 0, "\(result.stderr.suffix(600))")
    return try embeddings(result)
  }

  @Test(.enabled(if: VeilBinary.shouldRun), .timeLimit(.minutes(10)))
  func separateProcessesOverTLSEqualTheOneProcessRunAndSurviveFaults() async throws {
    let deployment = try ProcessDeployment()
    defer { deployment.stopAll() }
    let dir = deployment.directory

    // A request before the setup: a clear error, the servers up.
    let early = try deployment.embed(["too early"])
    #expect(early.status != 0 && early.stderr.contains("share-model"), "\(early.stderr)")

    let shared = try deployment.shareModel(TestModel.directory())
    try #require(shared.status == 0, "share-model: \(shared.stderr)\n\(deployment.logs)")
    #expect(shared.stdout.contains("H(Ŵ)"))

    // A second setup is refused, and nothing is lost.
    let again = try deployment.shareModel(TestModel.directory())
    #expect(again.status != 0 && again.stderr.contains("already holds"), "\(again.stderr)")

    // Three requests, one after another, then two at once: bit for bit the one-process run.
    let expected = try Self.local(Self.texts, in: dir)
    let sequential = try embeddings(try deployment.embed(Self.texts))
    #expect(sequential == expected, "remote embeddings differ from the one-process run")
    let concurrent = try [0, 1].map { try deployment.startEmbed([Self.texts[$0]]).process }
    for process in concurrent { process.waitUntilExit() }
    #expect(concurrent.allSatisfy { $0.terminationStatus == 0 }, "\(deployment.logs)")
    let both = try embeddings(try deployment.embed([Self.texts[0], Self.texts[1]]))
    #expect(both == Array(expected.prefix(2)))

    // The library's façade, from the example program (public API only), gives the same.
    let example = URL(fileURLWithPath: VeilBinary.path).deletingLastPathComponent()
      .appendingPathComponent("veil-example").path
    if FileManager.default.isExecutableFile(atPath: example) {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: example)
      process.arguments = [
        TestModel.directory(), deployment.servers, deployment.dealer.address, dir + "/certs",
      ]
      process.standardOutput = FileHandle.nullDevice
      try process.run()
      process.waitUntilExit()
      #expect(process.terminationStatus == 0, "veil-example: remote differs from local or failed")
    } else {
      #expect(!TestModel.isRequired, "veil-example is not built (scripts/test.sh builds it)")
    }

    // Counters for Prometheus: P0 has run 8 requests so far (3 + 2 + 2 + the example's).
    let metrics = try deployment.p0Metrics()
    #expect(metrics.contains("veil_requests_total{role=\"p0\"} 8"), "\(metrics.prefix(800))")
    #expect(metrics.contains("veil_rounds_total"))

    // Hidden lengths: texts of 9 and 3 tokens padded into one bucket of 16 give the one-process
    // padded run's embeddings, and P0 ran both as the same 16-token run, same bytes and rounds.
    let hiddenTexts = [Self.texts[0], Self.texts[2]]
    let hiddenExpected = try Self.local(hiddenTexts, in: dir, extra: ["--pad-to", "16"])
    let hidden = try deployment.embed(hiddenTexts, extra: ["--pad-to", "16"])
    #expect(try embeddings(hidden) == hiddenExpected, "\(hidden.stderr.suffix(600))")
    let hiddenRuns = deployment.p0.log.split(separator: "\n").filter {
      $0.contains("run done: 16 tokens (length hidden)")
    }
    #expect(hiddenRuns.count == 2, "\(deployment.logs)")
    let shape = { (line: Substring) in
      line.components(separatedBy: " s, ").last ?? ""
    }
    #expect(hiddenRuns.count == 2 && shape(hiddenRuns[0]) == shape(hiddenRuns[1]))

    // Malformed requests: an error response each, the servers stay up.
    let empty = try deployment.embed([""])
    #expect(empty.status != 0 && empty.stderr.contains("empty"), "\(empty.stderr)")
    let tooLong = try deployment.embed(
      [Array(repeating: "word", count: 400).joined(separator: " ")], extra: ["--no-truncate"])
    #expect(tooLong.status != 0 && tooLong.stderr.contains("tokens"), "\(tooLong.stderr)")

    // Certificates of another CA, and a certificate of the wrong role: refused.
    let other = try runVeil(["certs", "--out", "other-certs"], in: dir)
    #expect(other.status == 0)
    let foreign = try deployment.embed(["hello"], certs: "other-certs")
    #expect(foreign.status != 0, "a client of another CA was served")
    try FileManager.default.createDirectory(
      atPath: dir + "/wrong-role", withIntermediateDirectories: true)
    for (from, to) in [
      ("ca.pem", "ca.pem"), ("p1.pem", "client.pem"), ("p1-key.pem", "client-key.pem"),
    ] {
      try FileManager.default.copyItem(
        atPath: dir + "/certs/" + from, toPath: dir + "/wrong-role/" + to)
    }
    let wrongRole = try deployment.embed(["hello"], certs: "wrong-role")
    #expect(wrongRole.status != 0, "a p1 certificate was accepted as a client")

    // A client that disconnects mid-request: the servers abandon the run and serve the next.
    let quitter = try deployment.startEmbed([Self.longText]).process
    usleep(1_500_000)
    quitter.terminate()
    quitter.waitUntilExit()
    #expect(
      try embeddings(try deployment.embed([Self.texts[2]])) == [expected[2]], "\(deployment.logs)")

    // P1 killed mid-request: the client reports the lost peer within 5 s; P0 serves again once
    // P1 is back.
    let (victim, victimOutput) = try deployment.startEmbed([Self.longText])
    usleep(1_500_000)
    let p0LogBefore = deployment.p0.log.count
    deployment.p1.kill()
    let killedAt = Date()
    victim.waitUntilExit()
    #expect(victim.terminationStatus != 0)
    #expect(Date().timeIntervalSince(killedAt) < 5, "the client took too long to notice")
    let victimSaid = (try? String(contentsOfFile: victimOutput, encoding: .utf8)) ?? ""
    #expect(
      victimSaid.contains("p1"), "the client's error does not name the lost peer: \(victimSaid)")
    // P0 logs the failure naming P1 within the same 5 s.
    var p0Said = ""
    while Date().timeIntervalSince(killedAt) < 5 {
      p0Said = String(deployment.p0.log.dropFirst(p0LogBefore))
      if p0Said.contains("request failed") { break }
      usleep(50_000)
    }
    #expect(p0Said.contains("request failed") && p0Said.contains("p1"), "P0 logged: \(p0Said)")
    #expect(deployment.p0.isRunning && deployment.dealer.isRunning)
    try deployment.p1.restart()
    #expect(
      try embeddings(try deployment.embed([Self.texts[0]])) == [expected[0]], "\(deployment.logs)")

    // The dealer killed mid-stream: the same.
    let second = try deployment.startEmbed([Self.longText]).process
    usleep(800_000)
    deployment.dealer.kill()
    second.waitUntilExit()
    #expect(second.terminationStatus != 0)
    #expect(deployment.p0.isRunning && deployment.p1.isRunning)
    try deployment.dealer.restart()
    #expect(
      try embeddings(try deployment.embed([Self.texts[1]])) == [expected[1]], "\(deployment.logs)")

    // SIGTERM: each role stops cleanly (exit 0).
    #expect(deployment.p0.stop() == 0)
    #expect(deployment.p1.stop() == 0)
    #expect(deployment.dealer.stop() == 0)
    // The dealer's state at rest holds no seed in the clear: it does not open without its key.
    let sealed = try FileManager.default.contentsOfDirectory(atPath: dir + "/dealer/setups")
    #expect(sealed.count == 1 && sealed[0].hasSuffix(".sealed"))
    try? FileManager.default.removeItem(atPath: dir)
  }
}

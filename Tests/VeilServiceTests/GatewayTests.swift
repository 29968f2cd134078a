// `veil gateway` as applications use it (issue 18): OpenAI's own Python SDK against the
// gateway, backed by separate dealer, P0 and P1 processes on loopback TLS. Vectors must be
// the one-process run's bit for bit; bad input and a stopped server must give OpenAI-style
// errors, and the gateway must serve the next request.
import Foundation
import Testing
import VeilTestSupport

extension DeploymentTests {
  /// The venv python with the `openai` package (scripts/openai-venv.sh, which test.sh runs).
  static var openAIPython: String? {
    let path =
      ProcessInfo.processInfo.environment["VEIL_OPENAI_PYTHON"]
      ?? packageRoot.appendingPathComponent(".venv-openai/bin/python").path
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
  }

  static var checkScript: String {
    packageRoot.appendingPathComponent("scripts/openai-check.py").path
  }

  /// Runs the SDK check of `phase` against the gateway; its output, and whether it passed.
  static func openAICheck(
    _ python: String, gateway: String, expected: String, phase: String, in directory: String
  )
    throws -> (Bool, String)
  {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [checkScript, "http://\(gateway)/v1", "all-MiniLM-L6-v2", expected, phase]
    let out = directory + "/openai-\(phase)-\(UUID().uuidString).log"
    FileManager.default.createFile(atPath: out, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = process.standardOutput
    try process.run()
    let deadline = Date().addingTimeInterval(300)
    while process.isRunning && Date() < deadline { usleep(50_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    return (process.terminationStatus == 0, text)
  }

  @Test(.enabled(if: VeilBinary.shouldRun), .timeLimit(.minutes(10)))
  func openAIClientAgainstTheGatewayEqualsTheOneProcessRun() async throws {
    guard let python = Self.openAIPython else {
      #expect(!TestModel.isRequired, "no python with openai: run scripts/openai-venv.sh")
      return
    }
    let deployment = try ProcessDeployment()
    defer { deployment.stopAll() }
    let dir = deployment.directory
    let shared = try deployment.shareModel(TestModel.directory())
    try #require(shared.status == 0, "share-model: \(shared.stderr)\n\(deployment.logs)")
    let texts = Array(Self.texts.prefix(2))
    let expected = try Self.local(texts, in: dir)
    let expectedPath = dir + "/expected.json"
    try JSONSerialization.data(withJSONObject: ["texts": texts, "embeddings": expected])
      .write(to: URL(fileURLWithPath: expectedPath))

    /// A gateway on the deployment, as the SDK check expects it (--no-truncate, MiniLM's name).
    func gatewayService(_ name: String, extra: [String]) -> Service {
      Service(
        name,
        [
          "gateway", "--remote", deployment.servers, "--dealer", deployment.dealer.address,
          "--certs", "certs", "--state", "gateway-client", "--listen", "127.0.0.1:0",
          "--no-truncate", "--model-name", "all-MiniLM-L6-v2",
        ] + extra, in: dir)
    }
    let gateway = gatewayService("gateway", extra: ["--metrics", "127.0.0.1:0"])
    try gateway.start()
    defer { gateway.stop() }

    let (served, log) = try Self.openAICheck(
      python, gateway: gateway.address, expected: expectedPath, phase: "serve", in: dir)
    #expect(served, "\(log)\n\(gateway.log.suffix(2000))")
    // Counters: the check's 3 embedding requests served, its 3 bad ones counted as failures.
    let counters = try gateway.metrics()
    #expect(counters.contains("veil_requests_total{role=\"gateway\"} 3"), "\(counters.prefix(600))")
    #expect(counters.contains("veil_failures_total{role=\"gateway\"} 3"), "\(counters.prefix(600))")

    // A stopped server: 503 with OpenAI's error object; the gateway stays up, and serves the
    // next request once P1 is back.
    #expect(deployment.p1.stop() == 0)
    let (refused, downLog) = try Self.openAICheck(
      python, gateway: gateway.address, expected: expectedPath, phase: "down", in: dir)
    #expect(refused, "\(downLog)\n\(gateway.log.suffix(2000))")
    #expect(gateway.isRunning)
    try deployment.p1.restart()
    let (again, againLog) = try Self.openAICheck(
      python, gateway: gateway.address, expected: expectedPath, phase: "serve", in: dir)
    #expect(again, "\(againLog)\n\(gateway.log.suffix(2000))")

    // With --pad-to the gateway hides each input's length from the servers: the SDK gets the
    // one-process run's vectors padded the same way, bit for bit.
    let paddedPath = dir + "/expected-padded.json"
    try JSONSerialization.data(
      withJSONObject: [
        "texts": texts, "embeddings": try Self.local(texts, in: dir, extra: ["--pad-to", "16"]),
      ]
    ).write(to: URL(fileURLWithPath: paddedPath))
    let padded = gatewayService("gateway-padded", extra: ["--pad-to", "16"])
    try padded.start()
    defer { padded.stop() }
    let (paddedServed, paddedLog) = try Self.openAICheck(
      python, gateway: padded.address, expected: paddedPath, phase: "serve", in: dir)
    #expect(paddedServed, "\(paddedLog)\n\(padded.log.suffix(2000))")
    #expect(deployment.p0.log.contains("16 tokens (length hidden)"), "\(deployment.logs)")

    // The request log names requests, never texts.
    #expect(!gateway.log.contains("guitar"), "the gateway logged a text")
    #expect(gateway.stop() == 0)
    try? FileManager.default.removeItem(atPath: dir)
  }
}

// Generation across separate processes (issue 19 with issue 17's roles): a tiny LLaMA shared
// with a dealer, P0 and P1 over TLS; `veil generate --remote` streams the greedy tokens the
// one-process fixed-point engine gives for the same prompt, and a request P0 cannot serve (too
// many tokens) gets a clear error while the deployment stays up.
import Foundation
import Testing
import VeilMPC
import VeilModels
import VeilTestSupport

@Suite(.serialized) struct GenerationDeploymentTests {
  static let tiny = TestModel.directory("llama-tiny", variable: "VEIL_LLAMA_TINY_DIR")
  static var shouldRun: Bool {
    (VeilBinary.isPresent && FileManager.default.fileExists(atPath: tiny + "/model.safetensors"))
      || TestModel.isRequired
  }

  func generate(_ deployment: ProcessDeployment, _ extra: [String]) throws -> CommandResult {
    try runVeil(
      [
        "generate", "--remote", deployment.servers, "--dealer", deployment.dealer.address,
        "--certs", "certs", "--state", "client", "--prompt", "The capital of France is",
      ] + extra, in: deployment.directory)
  }

  @Test(.enabled(if: shouldRun), .timeLimit(.minutes(5)))
  func remoteGenerationStreamsTheFixedPointTokens() async throws {
    let deployment = try ProcessDeployment()
    defer { deployment.stopAll() }
    let shared = try deployment.shareModel(Self.tiny)
    try #require(shared.status == 0, "share-model: \(shared.stderr)\n\(deployment.logs)")

    let folder = try DecoderFolder(modelDirectory: Self.tiny)
    let prompt = try folder.text.promptIds("The capital of France is", chat: false)
    let parameters = RecipeParameters.preset(.sigma, ringBits: 60)
    let engine = try FixedPointEngine(weights: try folder.float64Weights(), parameters: parameters)
    var expected: [Int] = []
    try await Generation.greedy(
      folder.model, prompt: TokenInput(ids: prompt), newTokens: 6, engine: engine
    ) { expected.append(Int($0.index.values[0])) }

    let result = try generate(deployment, ["--tokens", "6", "--json"])
    try #require(result.status == 0, "generate: \(result.stderr)\n\(deployment.logs)")
    let report = try #require(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    #expect(report["tokens"] as? [Int] == expected)
    #expect(report["prompt_tokens"] as? [Int] == prompt)
    #expect((report["params"] as? [String: Any])?["ring_bits"] as? Int == 60)

    // Streaming: the text arrives on stdout, the summary on stderr.
    let streamed = try generate(deployment, ["--tokens", "3"])
    #expect(streamed.status == 0, "\(streamed.stderr)")
    #expect(
      streamed.stdout.trimmingCharacters(in: .newlines)
        == folder.text.text(Array(expected.prefix(3))))

    let tooMany = try generate(deployment, ["--tokens", "200"])
    #expect(tooMany.status != 0)
    #expect(tooMany.stderr.contains("positions"), "\(tooMany.stderr)")
    let again = try generate(deployment, ["--tokens", "2", "--json"])
    #expect(again.status == 0, "the deployment serves the next request: \(again.stderr)")
  }
}

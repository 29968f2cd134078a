// `veil gateway` serving a decoder (issue 19): OpenAI's Python SDK sends completions and chat
// completions, whole and streamed, to a gateway with every role in its process (a tiny LLaMA
// with SmolLM2's tokenizer and chat template); the texts must be the one-process fixed-point
// engine's greedy replies exactly, and bad requests get OpenAI-style errors.
import Foundation
import Testing
import VeilMPC
import VeilModels
import VeilTestSupport

extension DeploymentTests {
  /// The reply text and prompt length the fixed-point engine gives `prompt`'s ids.
  static func fixedPointReply(_ folder: DecoderFolder, _ ids: [Int], tokens: Int) async throws
    -> String
  {
    let engine = try FixedPointEngine(
      weights: try folder.float64Weights(),
      parameters: RecipeParameters.preset(.sigma, ringBits: 60))
    var generated: [Int] = []
    try await Generation.greedy(
      folder.model, prompt: TokenInput(ids: ids), newTokens: tokens, engine: engine
    ) { generated.append(Int($0.index.values[0])) }
    return folder.text.text(folder.text.reply(generated))
  }

  @Test(.enabled(if: VeilBinary.shouldRun), .timeLimit(.minutes(5)))
  func openAIClientGetsTheFixedPointCompletions() async throws {
    guard let python = Self.openAIPython else {
      #expect(!TestModel.isRequired, "no python with openai: run scripts/openai-venv.sh")
      return
    }
    let tiny = TestModel.directory("llama-tiny", variable: "VEIL_LLAMA_TINY_DIR")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-completions-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let folder = try DecoderFolder(modelDirectory: tiny)
    let prompt = "The capital of France is"
    let messages = [["role": "user", "content": "What is the capital of France?"]]
    let promptIds = folder.text.tokenizer.encode(prompt)
    let chatIds = try folder.text.promptIds("What is the capital of France?", chat: true)
    let expected: [String: Any] = [
      "prompt": prompt, "max_tokens": 5, "prompt_tokens": promptIds.count,
      "completion": try await Self.fixedPointReply(folder, promptIds, tokens: 5),
      "messages": messages, "chat_prompt_tokens": chatIds.count,
      "chat": try await Self.fixedPointReply(folder, chatIds, tokens: 5),
    ]
    let expectedPath = dir + "/expected.json"
    try JSONSerialization.data(withJSONObject: expected).write(
      to: URL(fileURLWithPath: expectedPath))

    let gateway = Service(
      "gateway", ["gateway", "--local", "--model", tiny, "--listen", "127.0.0.1:0"], in: dir)
    try gateway.start()
    defer { gateway.stop() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [
      packageRoot.appendingPathComponent("scripts/openai-chat-check.py").path,
      "http://\(gateway.address)/v1", "llama-tiny", expectedPath,
    ]
    let out = dir + "/check.log"
    FileManager.default.createFile(atPath: out, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = process.standardOutput
    try process.run()
    process.waitUntilExit()
    let log = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    #expect(process.terminationStatus == 0, "\(log)\n\(gateway.log.suffix(2000))")
    #expect(gateway.isRunning)
    #expect(!gateway.log.contains("capital"), "the gateway logged a prompt")
    #expect(gateway.stop() == 0)
  }
}

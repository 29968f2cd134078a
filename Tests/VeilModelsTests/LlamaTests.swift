// LLaMA from Hugging Face folders on the Float64 engine against an independent float64 numpy
// reference of transformers' LlamaForCausalLM (Data/llama-tiny*-reference.json, made by
// scripts/reference/make-llama-reference.py and cross-checked with transformers' Flax LLaMA):
// RMSNorm, rotary embeddings, grouped-query attention, SwiGLU, tied and untied heads. Greedy
// generation with the KV cache equals recomputing the prefix, and SmolLM2-135M-Instruct answers
// the chat prompt as the float64 reference does. The tiny checkpoints are
// `scripts/fetch-model.sh llama-tiny` / `llama-tiny-untied` (seeded weights).
import Foundation
import Testing
import VeilTestSupport

@testable import VeilModels

@Suite struct LlamaTests {
  struct ChatReference: Decodable {
    struct Run: Decodable {
      let prompt_ids: [Int]
      let ids: [Int]
      let reply: String
      let margins: [Double]
    }
    let with_system: Run
    let without_system: Run
  }

  static let tied = TestModel.directory("llama-tiny", variable: "VEIL_LLAMA_TINY_DIR")
  static let untied = TestModel.directory(
    "llama-tiny-untied", variable: "VEIL_LLAMA_TINY_UNTIED_DIR")
  static let smollm2 = TestModel.directory("SmolLM2-135M-Instruct", variable: "VEIL_SMOLLM2_DIR")
  static func present(_ folder: String) -> Bool {
    FileManager.default.fileExists(atPath: folder + "/model.safetensors") || TestModel.isRequired
  }

  static func data<T: Decodable>(_ name: String, as: T.Type) throws -> T {
    let url = try #require(
      Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Data"))
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
  }

  /// Greedy tokens and each step's logits on the Float64 engine.
  static func greedy(
    _ folder: DecoderFolder, _ engine: Float64Engine, prompt: [Int], count: Int, cache: Bool
  ) async throws -> (tokens: [Int], logits: [[Double]]) {
    var tokens: [Int] = []
    var logits: [[Double]] = []
    try await Generation.greedy(
      folder.model, prompt: TokenInput(ids: prompt), newTokens: count, cache: cache, engine: engine
    ) { step in
      tokens.append(Int(step.index.scalars[0]))
      logits.append(step.logits.scalars)
    }
    return (tokens, logits)
  }

  @Test(
    .enabled(if: present(tied) && present(untied)),
    arguments: [("llama-tiny-reference", tied), ("llama-tiny-untied-reference", untied)])
  func float64MatchesTheTransformersReference(_ name: String, _ directory: String) async throws {
    let folder = try DecoderFolder(modelDirectory: directory)
    #expect(folder.model is LlamaModel)
    #expect(folder.config.tiedEmbeddings == (directory == Self.tied))
    let engine = Float64Engine(weights: try folder.float64Weights())
    let reference = try DecoderReference.load(name)
    try await reference.check(folder.model, engine)
    let greedy = reference.greedy_16
    let cached = try await Self.greedy(
      folder, engine, prompt: greedy.prompt_ids, count: greedy.ids.count, cache: true)
    let recomputed = try await Self.greedy(
      folder, engine, prompt: greedy.prompt_ids, count: greedy.ids.count, cache: false)
    #expect(cached.tokens == greedy.ids)
    #expect(recomputed.tokens == greedy.ids)
    let gap = zip(cached.logits.joined(), recomputed.logits.joined()).map { abs($0 - $1) }.max()
    #expect((gap ?? 1) < 1e-9, "KV cache vs recomputation: \(gap ?? 1)")
  }

  /// SmolLM2 in Float64 with its chat template (default system message included): the prompt's
  /// ids and the 16 greedy tokens equal the float64 numpy reference's, and the reply is Paris.
  @Test(.enabled(if: present(smollm2))) func smolLM2AnswersTheChatPrompt() async throws {
    let folder = try DecoderFolder(modelDirectory: Self.smollm2)
    let reference = try Self.data("smollm2-greedy-reference", as: ChatReference.self)
    let question = "What is the capital of France?"
    let prompt = try folder.text.promptIds(question, chat: true)
    #expect(prompt == reference.with_system.prompt_ids)
    #expect(folder.text.endOfText == 2)
    let engine = Float64Engine(weights: try folder.float64Weights())
    let run = try await Self.greedy(folder, engine, prompt: prompt, count: 16, cache: true)
    #expect(run.tokens == reference.with_system.ids)
    let reply = run.tokens.prefix { $0 != folder.text.endOfText }
    #expect(folder.text.text(Array(reply)) == "The capital of France is Paris.")
    #expect(reference.with_system.reply == "The capital of France is Paris.")
  }

  @Test func chatMLTemplatesRenderAndOthersAreRefused() throws {
    let smol = """
      {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}\
      {{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}\
      {{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}\
      {% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
      """
    let template = try ChatTemplate(template: smol, path: "t")
    #expect(template.defaultSystem == "You are helpful")
    #expect(
      template.prompt(user: "Hi")
        == "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    #expect(
      template.prompt(user: "Hi", system: "Be brief")
        == "<|im_start|>system\nBe brief<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    let plain = try ChatTemplate(
      template: smol.replacingOccurrences(of: "messages[0]['role'] != 'system'", with: "false"),
      path: "t")
    #expect(plain.defaultSystem == nil)
    let llama2 =
      "{{ bos_token }}{% for message in messages %}[INST] {{ message['content'] }} [/INST]{% endfor %}"
    #expect(throws: ModelError.self) { try ChatTemplate(template: llama2, path: "t") }
  }

  @Test(.enabled(if: present(tied))) func badLlamaFoldersAreRefused() throws {
    let base = try String(contentsOfFile: Self.tied + "/config.json", encoding: .utf8)
    for (from, to) in [
      ("\"head_dim\": 16", "\"head_dim\": 32"),
      ("\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"),
      ("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
      ("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
    ] {
      #expect(base.contains(from), "the tiny config has \(from)")
      let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
        "veil-llama-\(UUID().uuidString)"
      ).path
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: folder) }
      try base.replacingOccurrences(of: from, with: to).write(
        toFile: folder + "/config.json", atomically: true, encoding: .utf8)
      for file in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        try FileManager.default.createSymbolicLink(
          atPath: folder + "/" + file, withDestinationPath: Self.tied + "/" + file)
      }
      #expect(throws: ModelError.self, "\(to)") { try DecoderFolder(modelDirectory: folder) }
    }
  }
}

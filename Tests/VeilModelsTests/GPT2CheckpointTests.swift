// GPT-2 from a Hugging Face checkpoint (Conv1D [in, out] matrices, fused c_attn, tied LM head)
// on the Float64 engine against an independent float64 reference of transformers'
// GPT2LMHeadModel (Data/gpt2-*-reference.json, scripts/reference/make-gpt2-reference.py):
// the last hidden state and logits within 1e-6, and greedy generation token for token. The
// checkpoints are `scripts/fetch-model.sh gpt2-tiny` and `gpt2-124m-seeded` (seeded weights at a
// tiny config and at GPT-2 small's 124M shape).
import Foundation
import Testing
import VeilTestSupport

@testable import VeilModels

@Suite struct GPT2CheckpointTests {
  static let folder = TestModel.directory("gpt2-tiny", variable: "VEIL_GPT2_TINY_DIR")
  static let small = TestModel.directory(
    "gpt2-124m-seeded", variable: "VEIL_GPT2_124M_SEEDED_DIR")
  static var present: Bool {
    FileManager.default.fileExists(atPath: folder + "/model.safetensors") || TestModel.isRequired
  }
  static var smallPresent: Bool {
    FileManager.default.fileExists(atPath: small + "/model.safetensors") || TestModel.isRequired
  }

  /// Greedy next tokens by recomputing the whole prefix each step.
  static func greedy(_ model: GPT2Model, _ engine: Float64Engine, prompt: [Int], count: Int)
    async throws -> [Int]
  {
    var ids = prompt
    var out: [Int] = []
    for _ in 0..<count {
      let hidden = try await model.output(TokenInput(ids: ids), validTokens: nil, engine: engine)
      let logits = try await model.logits(hidden, engine: engine).scalars
      let next = logits.indices.max { logits[$0] < logits[$1] }!
      out.append(next)
      ids.append(next)
    }
    return out
  }

  @Test(.enabled(if: present)) func float64MatchesTheTransformersReference() async throws {
    let (model, weights) = try GPT2Model.checkpoint(modelDirectory: Self.folder)
    let engine = Float64Engine(weights: weights)
    let reference = try DecoderReference.load("gpt2-tiny-reference")
    try await reference.check(model, engine)
    let greedy = reference.greedy_16
    let tokens = try await Self.greedy(
      model, engine, prompt: greedy.prompt_ids, count: greedy.ids.count)
    #expect(tokens == greedy.ids)
  }

  /// At GPT-2 small's shape (12 blocks of 768, 1024 positions), greedy over the KV cache.
  @Test(.enabled(if: smallPresent)) func float64MatchesTheReferenceAt124MShapes() async throws {
    let (model, weights) = try GPT2Model.checkpoint(modelDirectory: Self.small)
    #expect(model.config.layers == 12 && model.config.hiddenSize == 768)
    let engine = Float64Engine(weights: weights)
    let reference = try DecoderReference.load("gpt2-124m-seeded-reference")
    try await reference.check(model, engine)
    let greedy = reference.greedy_16
    var tokens: [Int] = []
    try await Generation.greedy(
      model, prompt: TokenInput(ids: greedy.prompt_ids), newTokens: greedy.ids.count,
      engine: engine
    ) { tokens.append(Int($0.index.scalars[0])) }
    #expect(tokens == greedy.ids)
  }

  @Test(.enabled(if: present)) func aCheckpointOfAnotherShapeIsRefused() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-gpt2-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var config = try String(contentsOfFile: Self.folder + "/config.json", encoding: .utf8)
    config = config.replacingOccurrences(of: "\"n_layer\": 2", with: "\"n_layer\": 3")
    try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
    try FileManager.default.createSymbolicLink(
      atPath: folder + "/model.safetensors", withDestinationPath: Self.folder + "/model.safetensors"
    )
    #expect(throws: ModelError.self) { try GPT2Model.checkpoint(modelDirectory: folder) }
  }
}

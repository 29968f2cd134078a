// GPT-2 from a Hugging Face checkpoint (Conv1D [in, out] matrices, fused c_attn, tied LM head)
// on the Float64 engine against an independent float64 reference of transformers'
// GPT2LMHeadModel (Data/gpt2-tiny-reference.json, scripts/reference/make-gpt2-reference.py):
// the last hidden state and logits within 1e-6, and greedy generation token for token. The
// checkpoint is `scripts/fetch-model.sh gpt2-tiny` (seeded weights at a tiny config).
import Foundation
import Testing
import VeilTestSupport

@testable import VeilModels

@Suite struct GPT2CheckpointTests {
  struct Reference: Decodable {
    struct Case: Decodable {
      let ids: [Int]
      let hidden_last: [Double]
      let logits_last_sample: [[Double]]
      let argmax_last: Int
      let hidden_all_abs_sum: Double
      let hidden_all_weighted_sum: Double
    }
    struct Greedy: Decodable {
      let prompt_ids: [Int]
      let ids: [Int]
    }
    let cases: [Case]
    let greedy_16: Greedy
  }

  static let folder = TestModel.directory("gpt2-tiny", variable: "VEIL_GPT2_TINY_DIR")
  static var present: Bool {
    FileManager.default.fileExists(atPath: folder + "/model.safetensors") || TestModel.isRequired
  }

  static func reference() throws -> Reference {
    let url = try #require(
      Bundle.module.url(
        forResource: "gpt2-tiny-reference", withExtension: "json", subdirectory: "Data"))
    return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
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
    let reference = try Self.reference()
    #expect(reference.cases.count >= 3)
    for c in reference.cases {
      let all = try await model.decode(TokenInput(ids: c.ids), engine: engine)
      let hidden = try await model.output(TokenInput(ids: c.ids), validTokens: nil, engine: engine)
      let logits = try await model.logits(hidden, engine: engine).scalars
      let hiddenError = zip(hidden.scalars, c.hidden_last).map { abs($0 - $1) }.max() ?? 1
      #expect(
        hidden.scalars.count == c.hidden_last.count && hiddenError <= 1e-6,
        "hidden error \(hiddenError)")
      let logitError = c.logits_last_sample.map { abs(logits[Int($0[0])] - $0[1]) }.max() ?? 1
      #expect(logitError <= 1e-6, "logit error \(logitError)")
      #expect(logits.indices.max { logits[$0] < logits[$1] } == c.argmax_last)
      // Every position's hidden state, through two sums.
      let d = model.config.hiddenSize
      let absSum = all.scalars.reduce(0) { $0 + abs($1) }
      let weighted = all.scalars.enumerated().reduce(0.0) {
        $0 + $1.element * Double(($1.offset / d + 1) * ($1.offset % d + 1))
      }
      #expect(abs(absSum - c.hidden_all_abs_sum) <= 1e-6 * Double(all.scalars.count), "\(absSum)")
      #expect(abs(weighted - c.hidden_all_weighted_sum) <= 1e-4, "\(weighted)")
    }
    let greedy = reference.greedy_16
    let tokens = try await Self.greedy(
      model, engine, prompt: greedy.prompt_ids, count: greedy.ids.count)
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

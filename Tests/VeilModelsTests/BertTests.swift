import Foundation
import Testing
import VeilRing
import VeilTestSupport

@testable import VeilModels

@Suite struct TinyBertTests {
  @Test func graphProducesAUnitVectorPerSentence() async throws {
    let embedder = try SentenceEmbedder(modelDirectory: try TinyBertFixture.folder())
    let tokens = try embedder.tokenize("the cat sat on the mat.")
    #expect(tokens.ids.first == 2 && tokens.ids.last == 3)
    let vector = try await embedder.embed(tokens, weights: try embedder.float64Weights())
    #expect(vector.count == 32)
    let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
    #expect(abs(norm - 1) < 1e-12)
    #expect(vector.allSatisfy { $0.isFinite })
  }

  @Test func paddingDoesNotChangeTheEmbedding() async throws {
    let config = TinyBertFixture.config()
    let weights = TinyBert.weights(config)
    let bert = BertModel(config: config)
    let engine = Float64Engine(weights: weights)
    let ids = [2, 5, 6, 7, 3]
    let plain = try await bert.sentenceEmbedding(TokenInput(ids: ids), engine: engine).scalars
    let padded = try await bert.sentenceEmbedding(TokenInput(ids: ids + [0, 0, 0]), validTokens: 5, engine: engine).scalars
    for (a, b) in zip(plain, padded) { #expect(abs(a - b) < 1e-12) }
    // Without the mask the padding would change the result: the test can fail.
    let unmasked = try await bert.sentenceEmbedding(TokenInput(ids: ids + [0, 0, 0]), engine: engine).scalars
    #expect(cosineSimilarity(plain, unmasked) < 0.999999)
  }

  @Test func badInputsAreRefused() async throws {
    let embedder = try SentenceEmbedder(modelDirectory: try TinyBertFixture.folder())
    #expect(throws: TextError.empty) { try embedder.tokenize("") }
    #expect(throws: TextError.empty) { try embedder.tokenize("   \t\n") }
    let long = Array(repeating: "cat", count: 40).joined(separator: " ")
    let truncated = try embedder.tokenize(long)
    #expect(truncated.ids.count == 16)
    #expect(truncated.truncatedFrom == 42)
    #expect(throws: TextError.tooLong(tokens: 42, limit: 16)) { try embedder.tokenize(long, allowTruncation: false) }
    let weights = try embedder.float64Weights()
    await #expect(throws: InferenceError.tokenOutOfRange(id: 99, vocabularySize: 14)) {
      try await embedder.bert.encode(TokenInput(ids: [2, 99, 3]), engine: Float64Engine(weights: weights))
    }
    await #expect(throws: InferenceError.tooManyTokens(count: 17, limit: 16)) {
      try await embedder.bert.encode(TokenInput(ids: Array(repeating: 5, count: 17)), engine: Float64Engine(weights: weights))
    }
  }
}

@Suite struct ModelFolderErrorTests {
  func expectError(_ directory: String, mentioning fragments: [String]) {
    do {
      _ = try SentenceEmbedder(modelDirectory: directory)
      Issue.record("accepted a bad model folder")
    } catch {
      for fragment in fragments { #expect(error.description.contains(fragment), "\(error)") }
      #expect(!error.description.contains("\n"))
    }
  }

  @Test func missingFolder() {
    expectError("/nonexistent/veil-model", mentioning: ["/nonexistent/veil-model", "no such file"])
  }

  @Test func missingConfig() throws {
    let dir = try TinyBertFixture.folder()
    try FileManager.default.removeItem(atPath: dir + "/config.json")
    expectError(dir, mentioning: ["config.json", "no such file"])
  }

  @Test func malformedConfig() throws {
    let dir = try TinyBertFixture.folder()
    try Data(#"{"model_type":"bert","hidden_size":"big"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
    expectError(dir, mentioning: ["config.json"])
    try Data(#"{"model_type":"t5"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
    expectError(dir, mentioning: ["config.json", "t5"])
  }

  @Test func tensorWithTheWrongShape() throws {
    let config = TinyBertFixture.config()
    var tensors = TinyBertFixture.weights(config)
    let index = tensors.firstIndex { $0.0 == "encoder.layer.1.intermediate.dense.weight" }!
    tensors[index] = (tensors[index].0, [32, 128], tensors[index].2)
    expectError(
      try TinyBertFixture.folder(tensors: tensors),
      mentioning: ["model.safetensors", "encoder.layer.1.intermediate.dense.weight", "[32, 128]", "[128, 32]"])
  }

  @Test func missingTensor() throws {
    let tensors = TinyBertFixture.weights(TinyBertFixture.config()).filter { $0.0 != "embeddings.LayerNorm.bias" }
    expectError(try TinyBertFixture.folder(tensors: tensors), mentioning: ["embeddings.LayerNorm.bias", "missing"])
  }

  @Test func unknownAndNonFloatDTypes() throws {
    expectError(
      try TinyBertFixture.folder(dtypeOverride: ["embeddings.LayerNorm.bias": "Q4"]),
      mentioning: ["model.safetensors", "unknown dtype 'Q4'"])
    expectError(
      try TinyBertFixture.folder(dtypeOverride: ["embeddings.LayerNorm.bias": "I32"]),
      mentioning: ["model.safetensors", "I32"])
  }

  @Test func corruptWeightsFile() throws {
    let dir = try TinyBertFixture.folder()
    try Data([1, 2, 3, 4, 5, 6, 7, 8, 9]).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
    expectError(dir, mentioning: ["model.safetensors", "malformed"])
  }
}

/// The real all-MiniLM-L6-v2 against float64 references computed by scripts/reference.
@Suite(.serialized) struct MiniLMReferenceTests {
  @Test(.enabled(if: TestModel.shouldRun))
  func plaintextEmbeddingsMatchTheFloat64Reference() async throws {
    let directory = TestModel.directory()
    let cases = try ReferenceEmbeddings.cases()
    #expect(cases.count >= 20)
    let embedder = try SentenceEmbedder(modelDirectory: directory)
    let weights = try embedder.float64Weights()
    var worst = 1.0
    for c in cases {
      let tokens = try embedder.tokenize(c.text)
      #expect(tokens.ids == c.ids, "token ids differ for \(c.text.prefix(40))")
      let vector = try await embedder.embed(tokens, weights: weights)
      let cosine = cosineSimilarity(vector, c.embedding)
      worst = min(worst, cosine)
      #expect(cosine >= 0.99999, "cosine \(cosine) for \(c.text.prefix(40))")
      let maxError = zip(vector, c.embedding).map { abs($0 - $1) }.max() ?? 0
      #expect(maxError < 1e-6, "max abs error \(maxError) for \(c.text.prefix(40))")
    }
    print("MiniLM reference: \(cases.count) sentences, worst cosine \(worst)")
  }
}

// Runs that hide the text's length (issue 18): texts of different lengths padded into one bucket
// give the servers the same public parameters and the same traffic, the client's secret inputs
// reach them masked, the secure run equals the fixed-point engine bit for bit, and the
// embedding stays the unpadded one's.
import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilNet
import VeilRing
import VeilTestSupport

@testable import VeilMPC

@Suite(.serialized) struct HiddenLengthTests {
  /// What one hidden-length run gave the client and what the servers saw.
  struct Observed {
    var output: [Int64]
    var costs: RunCosts
    /// Sizes of every message P0 and P1 received from each other, and from the client.
    var peerMessageSizes: [[Int]]
    var clientMessageSizes: [[Int]]
    /// The client's first two messages to P0, unpacked: the masked key mask and 1/count.
    var maskedInputs: [[UInt64]]
  }

  func run(
    _ model: SecureModel, ids: [Int], real: Int, parameters: RecipeParameters
  ) async throws -> Observed {
    let recorders = Locked<[TranscriptChannel]>([])
    let clientRecorders = Locked<[TranscriptChannel]>([])
    let options = RunOptions.recordingPeers(into: recorders)
    let graph = model.model
    let vocabulary = graph.config.vocabularySize
    let inputs = HiddenLengthInputs.values(
      real: real, count: ids.count, fractionalBits: parameters.fractionalBits)
    let (output, costs) = try await model.run(
      tokens: ids.count, valid: ids.count, hidesLength: true, options: options,
      dealer: {
        try await ModelRun.walk(
          graph, parameters, tokens: ids.count, valid: ids.count, hidesLength: true, $0)
      },
      party: {
        try await ModelRun.walk(
          graph, parameters, tokens: ids.count, valid: ids.count, hidesLength: true, $0)
      },
      client: { keys, parties, _ in
        let recording = parties.map { TranscriptChannel($0) }
        clientRecorders.withLock { $0 = recording }
        return try await SecureClient.run(
          ids: ids, inputs: inputs, vocabulary: vocabulary, bits: parameters.ringBits,
          keys: keys, parties: recording)
      })
    let clientSent = clientRecorders.withLock { $0 }[0].sent
    let bits = parameters.ringBits
    return Observed(
      output: output, costs: costs,
      peerMessageSizes: recorders.withLock { $0 }.map { $0.received.map(\.count) },
      clientMessageSizes: clientRecorders.withLock { $0 }.map { $0.sent.map(\.count) },
      maskedInputs: [
        BitPacking.unpack(clientSent[0], bits: bits, count: ids.count),
        BitPacking.unpack(clientSent[1], bits: bits, count: 1),
      ])
  }

  /// A tiny BERT, texts of 3 and 6 real tokens padded to 8, SIGMA and PUMA: the secure output
  /// is the fixed-point engine's, close to the unpadded run's; every count, size and cost the
  /// servers see is the same for both texts; the client's inputs arrive masked.
  @Test(arguments: [Approximation.sigma, .puma])
  func twoLengthsInOneBucketLookTheSameToTheServers(_ recipe: Approximation) async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config)
    let parameters = RecipeParameters.preset(recipe)
    let model = try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
    let fixed = try FixedPointEngine(weights: weights, parameters: parameters)
    let bert = BertModel(config: config)
    let texts = [[2, 5, 3], [2, 9, 11, 6, 7, 3]]
    var seen: [Observed] = []
    for real in texts {
      let padded = try HiddenLengthInputs.pad(real, to: 8, limit: config.tokenLimit, padID: 0)
      #expect(padded.count == 8)
      let observed = try await run(model, ids: padded, real: real.count, parameters: parameters)
      let clear = try await bert.sentenceEmbedding(
        TokenInput(ids: padded, hidingLength: real.count), engine: fixed
      ).values
      #expect(observed.output == clear, "\(recipe) \(real.count) real tokens")
      // The embedding of the padded run is the unpadded one's (fixed point, same recipe).
      let unpadded = try await bert.sentenceEmbedding(TokenInput(ids: real), engine: fixed)
      let scale = Double(1 << parameters.fractionalBits)
      let cosine = cosineSimilarity(
        observed.output.map { Double($0) / scale }, unpadded.values.map { Double($0) / scale })
      #expect(cosine >= 0.99999, "\(recipe) \(real.count) real tokens: cosine \(cosine)")
      // The key mask and 1/count reach the servers masked: were the mask dropped, the values
      // would be 0s and 1s and round(2^f / count).
      let keyMask = observed.maskedInputs[0]
      #expect(keyMask.filter { $0 > 1 }.count >= 6, "the key mask arrives unmasked")
      let plainInverse = UInt64(
        HiddenLengthInputs.values(
          real: real.count, count: 8, fractionalBits: parameters.fractionalBits)[1][0])
      #expect(observed.maskedInputs[1][0] != plainInverse)
      seen.append(observed)
    }
    let (a, b) = (seen[0], seen[1])
    #expect(a.peerMessageSizes == b.peerMessageSizes)
    #expect(a.clientMessageSizes == b.clientMessageSizes)
    #expect(a.costs.rounds == b.costs.rounds && a.costs.onlineBytes == b.costs.onlineBytes)
    #expect(a.costs.keyBytes == b.costs.keyBytes && a.costs.clientBytes == b.costs.clientBytes)
    #expect(a.maskedInputs[0] != b.maskedInputs[0])
  }

  /// The public parameters a server and the dealer get for either text: the same order fields
  /// and the same graph (digest and key-record counts).
  @Test func theOrderAndGraphDoNotDependOnTheRealLength() async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config)
    let parameters = RecipeParameters()
    let model = try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
    var contexts: [RunContext] = []
    for real in [[2, 5, 3], [2, 9, 11, 6, 7, 3]] {
      let padded = try HiddenLengthInputs.pad(real, to: 8, limit: config.tokenLimit, padID: 0)
      let request = EmbedRequest(
        tokens: padded.count, validTokens: padded.count, hidesLength: true)
      contexts.append(
        try await RunContext.make(
          runID: [UInt8](repeating: 7, count: 16), manifest: model.manifest, model: model.model,
          tokens: request.tokens, valid: request.validTokens, hidesLength: request.hidesLength))
    }
    #expect(contexts[0].graphDigest == contexts[1].graphDigest)
    // The client's records: key mask, 1/count, the one-hot seeds, the output mask.
    #expect(contexts[0].census.clientRecords == 4)
    let shown = try await RunContext.make(
      runID: [UInt8](repeating: 7, count: 16), manifest: model.manifest, model: model.model,
      tokens: 8, valid: 8)
    #expect(shown.graphDigest != contexts[0].graphDigest)
  }

  /// Refusals: SecFormer's 2Quad (no exp clip), a decoder, a count outside the bucket.
  @Test func unsupportedRunsAreRefused() async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config)
    let engine = try FixedPointEngine(
      weights: weights, parameters: RecipeParameters.preset(.secformer))
    await #expect(throws: MPCError.self) {
      _ = try await BertModel(config: config).sentenceEmbedding(
        TokenInput(ids: [2, 5, 3, 0], hidingLength: 3), engine: engine)
    }
    #expect(throws: InferenceError.self) {
      _ = try config.check(TokenInput(ids: [2, 5, 0], hidingLength: 4), validTokens: nil)
    }
    #expect(throws: MPCError.self) {
      _ = try HiddenLengthInputs.pad([2, 5, 3], to: 0, limit: 8, padID: 0)
    }
  }

  /// The real MiniLM: every reference sentence of up to 64 tokens, padded to 64 with its
  /// length hidden, keeps cosine ≥ 0.99999 to its unpadded fixed-point embedding, and one runs
  /// securely, equal to the fixed-point engine bit for bit.
  @Test(.enabled(if: MiniLM.shouldRun && !isDebugBuild))
  func miniLMEmbeddingsKeepTheirValueWhenPadded() async throws {
    let (embedder, weights) = try MiniLM.loaded.get()
    let parameters = RecipeParameters()
    let fixed = try FixedPointEngine(weights: weights, parameters: parameters)
    let scale = Double(1 << parameters.fractionalBits)
    let cases = try MiniLM.cases().filter { $0.ids.count <= 64 }
    #expect(cases.count >= 10)
    var worst = 1.0
    for c in cases {
      let padded = try HiddenLengthInputs.pad(
        c.ids, to: 64, limit: embedder.config.tokenLimit,
        padID: Int(embedder.tokenizer.padId))
      let hidden = try await embedder.bert.sentenceEmbedding(
        TokenInput(ids: padded, hidingLength: c.ids.count), engine: fixed
      ).values
      let plain = try await embedder.bert.sentenceEmbedding(TokenInput(ids: c.ids), engine: fixed)
        .values
      worst = min(
        worst,
        cosineSimilarity(hidden.map { Double($0) / scale }, plain.map { Double($0) / scale }))
    }
    #expect(worst >= 0.99999, "worst cosine \(worst)")
    let model = try await SecureModel(
      model: embedder.bert, weights: weights, parameters: parameters)
    let c = cases[cases.count / 2]
    let padded = try HiddenLengthInputs.pad(
      c.ids, to: 64, limit: embedder.config.tokenLimit, padID: Int(embedder.tokenizer.padId))
    let report = try await model.infer(ids: padded, hidingLength: c.ids.count)
    let clear = try await embedder.bert.sentenceEmbedding(
      TokenInput(ids: padded, hidingLength: c.ids.count), engine: fixed
    ).values
    #expect(report.output == clear)
    #expect(cosineSimilarity(report.decoded, c.embedding) >= 0.9999)
    print("hidden-length MiniLM, \(cases.count) sentences padded to 64: worst cosine \(worst)")
  }
}

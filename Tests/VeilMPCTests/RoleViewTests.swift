// What each single role really receives (issue 17 §3): the channels of real secure runs are
// recorded and each view is checked to be masked, and the dealer's records are checked to give
// no role more than its part.
import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilNet
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// Records every message that passes through a channel, in both directions.
final class TranscriptChannel: Channel, @unchecked Sendable {
  let inner: any Channel
  private let lock = NSLock()
  private var sentMessages: [[UInt8]] = []
  private var receivedMessages: [[UInt8]] = []
  init(_ inner: any Channel) { self.inner = inner }
  /// Every message this end sent.
  var sent: [[UInt8]] { lock.withLock { sentMessages } }
  /// Every message this end received.
  var received: [[UInt8]] { lock.withLock { receivedMessages } }
  var peerRole: PartyRole { inner.peerRole }
  var peerDescription: String { inner.peerDescription }
  var counters: ChannelCounters { inner.counters }
  func send(_ message: [UInt8]) async throws(NetError) {
    lock.withLock { sentMessages.append(message) }
    try await inner.send(message)
  }
  func receive() async throws(NetError) -> [UInt8] {
    let message = try await inner.receive()
    lock.withLock { receivedMessages.append(message) }
    return message
  }
  func exchange(_ message: [UInt8]) async throws(NetError) -> [UInt8] {
    lock.withLock { sentMessages.append(message) }
    let reply = try await inner.exchange(message)
    lock.withLock { receivedMessages.append(reply) }
    return reply
  }
  func close() async { await inner.close() }
}

extension RunOptions {
  /// Options whose P0↔P1 channels record every message, the pair left in `recorders`.
  static func recordingPeers(into recorders: Locked<[TranscriptChannel]>) -> RunOptions {
    var options = RunOptions()
    options.peerChannels = {
      let (a, b) = InMemoryChannel.makePair(.p0, .p1)
      let pair = [TranscriptChannel(a), TranscriptChannel(b)]
      recorders.withLock { $0 = pair }
      return (pair[0], pair[1])
    }
    return options
  }
}

/// Whether bytes look like uniform random bytes: a chi-square test on byte values (255 degrees
/// of freedom: mean 255, sd ≈ 22.6; 400 is > 6 sd out).
func looksUniform(_ bytes: [UInt8]) -> (Bool, Double) {
  var counts = [Int](repeating: 0, count: 256)
  for b in bytes { counts[Int(b)] += 1 }
  let expected = Double(bytes.count) / 256
  let chi = counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
  return (chi < 400, chi)
}

@Suite(.serialized) struct RoleViewTests {
  /// Issue 17 §3: P1's c_1 must not come from a seed the client holds. With today's record the
  /// client pooling with P0 would know c = c_0 + c_1, hence ê·E for its own ê.
  @Test func theClientAndP0CannotRebuildP1sEmbeddingShare() throws {
    let (t, v, d, n) = (3, 11, 4, 50)
    var random = try SecureRandom()
    let table = random.elements(v * d, bits: n)
    let keys = DealerBackend.dealEmbedding(t: t, v: v, d: d, bits: n, table: table, random: &random)
    let p1 = try keys.party1.parts()
    let p0 = try keys.party0.parts()
    let clientSeeds = try keys.client.parts().map(seedBytes)
    #expect(clientSeeds.count == 2)
    // Correctness: the shares add up to a·r_E + r, with a the client's mask.
    let a = RingMath.add(
      try ShareBundle.expand(seed: clientSeeds[0], lengths: [t * v], bits: n)[0],
      try ShareBundle.expand(seed: clientSeeds[1], lengths: [t * v], bits: n)[0], bits: n)
    #expect(RingMath.add(p0[0], p1[0], bits: n) == a)
    let c = RingMath.add(
      RingMath.matmul(a, table, batch: 1, m: t, k: v, n: d, transposeB: false, bits: n),
      keys.outputMask, bits: n)
    #expect(RingMath.add(p0[1], p1[1], bits: n) == c)
    // Privacy: no expansion of a client seed, at any offset the dealer could use, gives c_1.
    for seed in clientSeeds {
      for lengths in [[t * d], [t * v, t * d], [t * v, t * v, t * d]] {
        let parts = try ShareBundle.expand(seed: seed, lengths: lengths, bits: n)
        #expect(parts.last != p1[1], "P1's c_1 is derivable from a seed the client holds")
      }
    }
  }

  /// A tiny BERT on two different inputs, every P0↔P1 and client message recorded: each
  /// party's view of its peer is uniform bytes, the two runs' views are unrelated, the client's
  /// masked rows hide its ids, and the client's output shares are the only unmasked-by-the-
  /// client thing it gets. The same check flags a transcript whose openings carry no mask.
  @Test func eachRoleSeesOnlyMaskedValues() async throws {
    let config = TinyBert.config()
    let weights = TinyBert.weights(config)
    let parameters = RecipeParameters(ringBits: 50, fractionalBits: 12)
    let model = try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
    let inputs = [[2, 5, 6, 7, 8, 9, 3], [2, 11, 12, 13, 14, 15, 3]]
    var views: [[[UInt8]]] = []
    var clientViews: [[[UInt8]]] = []
    for ids in inputs {
      let recorders = Locked<[TranscriptChannel]>([])
      let options = RunOptions.recordingPeers(into: recorders)
      let clientRecorders = Locked<[TranscriptChannel]>([])
      let vocabulary = config.vocabularySize
      let (output, _) = try await model.run(
        tokens: ids.count, valid: ids.count, options: options,
        dealer: {
          try await ModelRun.dealer(
            model.model, parameters, tokens: ids.count, valid: ids.count, $0)
        },
        party: {
          try await ModelRun.party(model.model, parameters, tokens: ids.count, valid: ids.count, $0)
        },
        client: { keys, parties, _ in
          let recording = parties.map { TranscriptChannel($0) }
          clientRecorders.withLock { $0 = recording }
          return try await SecureClient.run(
            ids: ids, vocabulary: vocabulary, bits: 50, keys: keys, parties: recording)
        })
      let clear = try await BertModel(config: config).sentenceEmbedding(
        TokenInput(ids: ids), engine: try FixedPointEngine(weights: weights, parameters: parameters)
      ).values
      #expect(output == clear)
      let recorded = recorders.withLock { $0 }
      // P0's view: what P1 sent it (and the reverse), minus the run-agreement digest.
      for party in recorded {
        let bytes = party.received.dropFirst().flatMap { $0 }
        let (uniform, chi) = looksUniform(bytes)
        #expect(
          uniform, "a party's view is not uniform (chi-square \(chi) over \(bytes.count) bytes)")
      }
      views.append(recorded[0].received)
      clientViews.append(clientRecorders.withLock { $0 }.flatMap(\.received))
    }
    // The two runs on different inputs: P0's views are unrelated (equal bytes ≈ 1/256).
    let a = views[0].dropFirst().flatMap { $0 }
    let b = views[1].dropFirst().flatMap { $0 }
    #expect(a.count == b.count, "the same graph sends the same sizes")
    let same = zip(a, b).filter { $0 == $1 }.count
    #expect(Double(same) < Double(a.count) / 256 * 1.5 + 50, "\(same) of \(a.count) bytes repeat")
    // The client receives its output twice (the same masked value from both servers).
    #expect(clientViews.allSatisfy { $0.count == 2 && $0[0] == $0[1] })

    // The checker itself: the clear fixed-point activations of the same run, opened without
    // a mask, are flagged.
    let engine = try FixedPointEngine(weights: weights, parameters: parameters)
    let hidden = try await BertModel(config: config).sentenceEmbedding(
      TokenInput(ids: inputs[0]), engine: engine)
    let unmasked = Array(repeating: hidden.values, count: 40).flatMap { $0 }.map {
      UInt64(bitPattern: $0) & ringMask(50)
    }
    #expect(
      !looksUniform(BitPacking.pack(unmasked, bits: 50)).0, "unmasked openings pass as uniform")
  }
}

extension RoleViewTests {
  /// A generation run's views: P0 and P1 see only masked openings — every opening of the
  /// argmax tree, the one-hot row and the token's embedding included (each message on its own
  /// has few zero bytes, which an unmasked one-hot or index would not) — two prompts give
  /// unrelated views, and the client gets each token twice, from both servers.
  @Test func generationShowsTheServersNoTokenAndNoLogit() async throws {
    let config = SecureGenerationTests.llamaConfig
    let model = LlamaModel(config: config)
    let weights = model.randomWeights(seed: 11)
    let parameters = RecipeParameters.preset(.sigma)
    let secure = try await SecureModel(model: model, weights: weights, parameters: parameters)
    let plan = GenerationPlan(promptTokens: 5, newTokens: 3)
    var views: [[[UInt8]]] = []
    for ids in [[3, 17, 25, 8, 30], [9, 9, 1, 38, 2]] {
      let recorders = Locked<[TranscriptChannel]>([])
      let options = RunOptions.recordingPeers(into: recorders)
      let clientRecorders = Locked<[TranscriptChannel]>([])
      let (tokens, _) = try await secure.run(
        tokens: 5, valid: 5, generation: plan, options: options,
        dealer: { try await ModelRun.generation(model, parameters, plan, $0) },
        party: { try await ModelRun.generation(model, parameters, plan, $0) },
        client: { keys, parties, _ in
          let recording = parties.map { TranscriptChannel($0) }
          clientRecorders.withLock { $0 = recording }
          return try await SecureClient.run(
            ids: ids, vocabulary: config.vocabularySize, bits: parameters.ringBits, keys: keys,
            parties: recording, reveals: plan.newTokens
          ) { _, _ in }
        })
      let expected = try await SecureGenerationTests.fixedPoint(
        model, weights, parameters, prompt: ids, count: 3, cache: true
      ).tokens
      #expect(tokens.map { Int($0) } == expected)
      for party in recorders.withLock({ $0 }) {
        let messages = Array(party.received.dropFirst())
        let (uniform, chi) = looksUniform(messages.flatMap { $0 })
        #expect(uniform, "chi-square \(chi)")
        for message in messages where message.count >= 32 {
          let zeros = message.filter { $0 == 0 }.count
          #expect(zeros * 4 < message.count, "a message of \(message.count) bytes, \(zeros) zero")
        }
      }
      views.append(recorders.withLock { $0 }[0].received)
      let client = clientRecorders.withLock { $0 }
      #expect(client.allSatisfy { $0.received.count == plan.newTokens })
      #expect(client[0].received == client[1].received)
    }
    let (a, b) = (views[0].dropFirst().flatMap { $0 }, views[1].dropFirst().flatMap { $0 })
    #expect(a.count == b.count, "the same plan sends the same sizes")
    let same = zip(a, b).filter { $0 == $1 }.count
    #expect(Double(same) < Double(a.count) / 256 * 1.5 + 50, "\(same) of \(a.count) bytes repeat")
    // The per-message check flags an opened one-hot row without its mask.
    let oneHot = BitPacking.pack(
      (0..<config.vocabularySize).map { $0 == 7 ? 1 : 0 }, bits: parameters.ringBits)
    #expect(oneHot.filter { $0 == 0 }.count * 4 >= oneHot.count)
  }
}

// What GPT-2 and LLaMA share as decoders, written once against `InferenceEngine`: the KV cache
// (each layer's keys and values of every position seen, kept as the engine's own values — masked
// wires in a secure run, so the cache never leaves the session), attention of new queries over
// it, and greedy generation: the prompt in one pass, then one position per new token, the next
// token chosen by the engine's argmax and fed back as a one-hot row without being opened.

/// Each layer's keys and values, [key/value heads, positions, dh], after the rotary embedding.
public struct KVCache<Value: Sendable>: Sendable {
  var keys: [Value?]
  var values: [Value?]
  /// Positions held.
  public private(set) var length = 0

  public init(layers: Int) {
    keys = Array(repeating: nil, count: layers)
    values = Array(repeating: nil, count: layers)
  }

  mutating func advance(by positions: Int) { length += positions }
}

/// A decoder-only model: embeddings, blocks that extend a KV cache, the LM head.
public protocol DecoderGraph: TransformerGraph {
  /// The table a secret one-hot token multiplies (the input embedding).
  var tokenTable: WeightID { get }

  /// Embeddings [T, d] of the client's tokens at positions firstPosition….
  func embed<E: InferenceEngine>(_ tokens: TokenInput, firstPosition: Int, engine: E) async throws
    -> E.Value

  /// The embedding [1, d] of a secret token given as a one-hot row [1, V], at `position`.
  func embed<E: InferenceEngine>(oneHot: E.Value, position: Int, engine: E) async throws -> E.Value

  /// Final hidden states [T, d] of the new positions x [T, d] (the first `validTokens` real)
  /// placed after the cache's positions; the cache grows by T.
  func forward<E: InferenceEngine>(
    _ x: E.Value, validTokens: Int, cache: inout KVCache<E.Value>, engine: E
  ) async throws -> E.Value

  /// Logits [rows, V] of hidden states [rows, d].
  func logits<E: InferenceEngine>(_ hidden: E.Value, engine: E) async throws -> E.Value
}

extension DecoderGraph {
  /// Self-attention of new queries q [H, T, dh] over the cached positions and the new keys and
  /// values k, v [Hkv, T, dh], which join the layer's cache: shared key/value heads are
  /// repeated for their query groups (local), the causal mask starts at the cache's length,
  /// and the merged context is [T, H·dh]. With an empty cache and Hkv = H this is exactly the
  /// gates of plain multi-head attention.
  func attend<E: InferenceEngine>(
    query q: E.Value, key k: E.Value, value v: E.Value, validTokens: Int, layer: Int,
    cache: inout KVCache<E.Value>, engine e: E
  ) async throws -> E.Value {
    func site(_ kind: OpKind, _ index: Int) -> OpSite {
      OpSite(layer: layer, kind: kind, index: index)
    }
    let offset = cache.length
    var keys = k
    var values = v
    if let cachedKeys = cache.keys[layer], let cachedValues = cache.values[layer] {
      keys = try await e.concatenate([cachedKeys, k], axis: 1, site: site(.reshape, 4))
      values = try await e.concatenate([cachedValues, v], axis: 1, site: site(.reshape, 5))
    }
    cache.keys[layer] = keys
    cache.values[layer] = values
    let groups = config.heads / config.keyValueHeads
    if groups > 1 {
      let shared = (0..<config.heads).map { $0 / groups }
      keys = try await e.heads(keys, shared, site: site(.reshape, 6))
      values = try await e.heads(values, shared, site: site(.reshape, 7))
    }
    let scores = try await e.attentionScores(
      q, keys, scale: 1 / Double(config.headDimension).squareRoot(),
      site: site(.attentionScores, 0))
    let mask = AttentionMask(validKeys: offset + validTokens, causal: true, queryOffset: offset)
    let probabilities = try await e.softmax(scores, mask: mask, site: site(.softmax, 0))
    return try await e.mergeHeads(
      try await e.attentionContext(probabilities, values, site: site(.attentionContext, 0)),
      site: site(.reshape, 3))
  }

  /// The final hidden states [T, d] of a whole input (no cache).
  public func decode<E: InferenceEngine>(_ tokens: TokenInput, validTokens: Int? = nil, engine: E)
    async throws -> E.Value
  {
    let valid = try config.check(tokens, validTokens: validTokens)
    var cache = KVCache<E.Value>(layers: config.layers)
    return try await forward(
      try await embed(tokens, firstPosition: 0, engine: engine), validTokens: valid,
      cache: &cache, engine: engine)
  }

  /// The last real token's final hidden state [1, d] (what the LM head reads next).
  public func output<E: InferenceEngine>(_ tokens: TokenInput, validTokens: Int?, engine: E)
    async throws -> E.Value
  {
    let valid = try config.check(tokens, validTokens: validTokens)
    let hidden = try await decode(tokens, validTokens: valid, engine: engine)
    return try await engine.row(
      hidden, valid - 1, site: OpSite(layer: config.layers, kind: .pool, index: 0))
  }
}

/// Greedy generation on any engine.
public enum Generation {
  /// What a step hands its observer: the chosen token (an index [1, 1], secret in secure
  /// engines) and the logits [1, V] it was chosen from.
  public typealias Step<Value> = (index: Value, logits: Value)

  /// Greedy decoding of `newTokens` tokens after `prompt`: the prompt in one pass, then per
  /// token the LM head over the last position, the argmax, its one-hot row and that row's
  /// embedding at the next position. With `cache` each new token costs one position; without,
  /// every step recomputes the whole prefix (the generated tokens enter as secret rows
  /// either way). `observe` sees every step's token as it is chosen.
  public static func greedy<E: InferenceEngine>(
    _ model: any DecoderGraph, prompt: TokenInput, newTokens: Int, cache useCache: Bool = true,
    engine e: E, observe: (Step<E.Value>) async throws -> Void
  ) async throws {
    let config = model.config
    let t = try config.check(prompt, validTokens: nil)
    guard newTokens >= 1, t + newTokens - 1 <= config.maxPositions else {
      throw InferenceError.tooManyTokens(count: t + newTokens, limit: config.maxPositions)
    }
    let head = OpSite(layer: config.layers, kind: .argmax, index: 0)
    let oneHotSite = OpSite(layer: config.layers, kind: .argmax, index: 1)
    let lastRow = OpSite(layer: config.layers, kind: .pool, index: 0)
    var cache = KVCache<E.Value>(layers: config.layers)
    var prefix = try await model.embed(prompt, firstPosition: 0, engine: e)
    var input = prefix
    for step in 0..<newTokens {
      if !useCache { cache = KVCache(layers: config.layers) }
      let rows = e.shape(of: input)[0]
      let hidden = try await model.forward(input, validTokens: rows, cache: &cache, engine: e)
      let last = try await e.row(hidden, rows - 1, site: lastRow)
      let logits = try await model.logits(last, engine: e)
      let index = try await e.argmax(logits, site: head)
      try await observe((index, logits))
      guard step + 1 < newTokens else { break }
      let oneHot = try await e.oneHot(index, classes: config.vocabularySize, site: oneHotSite)
      let next = try await model.embed(oneHot: oneHot, position: t + step, engine: e)
      if useCache {
        input = next
      } else {
        prefix = try await e.concatenate(
          [prefix, next], axis: 0, site: OpSite(layer: -1, kind: .reshape, index: 0))
        input = prefix
      }
    }
  }
}

// The BERT encoder, mean pooling and L2 normalisation (a sentence-transformers embedding
// model), written once against `InferenceEngine`.

/// Errors of running a model graph on an input.
public enum InferenceError: Error, Equatable, CustomStringConvertible {
  case emptyInput
  case tooManyTokens(count: Int, limit: Int)
  case invalidPadding(tokens: Int, paddedTo: Int)
  case tokenOutOfRange(id: Int, vocabularySize: Int)
  /// A hidden length asked of a model that cannot hide it (decoders: generation needs it).
  case hiddenLengthUnsupported(String)

  public var description: String {
    switch self {
    case .emptyInput: return "the input has no tokens"
    case .tooManyTokens(let n, let limit): return "\(n) tokens exceed the model's limit of \(limit)"
    case .invalidPadding(let n, let pad): return "cannot pad \(n) tokens to \(pad)"
    case .tokenOutOfRange(let id, let v): return "token id \(id) is outside the vocabulary of \(v)"
    case .hiddenLengthUnsupported(let model):
      return "a \(model) model cannot hide the input's length (only sentence embeddings can)"
    }
  }
}

extension ModelConfig {
  /// Checks an input against the model's limits; returns the count of real tokens.
  public func check(_ tokens: TokenInput, validTokens: Int?) throws(InferenceError) -> Int {
    let count = tokens.count
    let valid = validTokens ?? count
    guard count > 0, valid > 0 else { throw .emptyInput }
    guard count <= maxPositions else { throw .tooManyTokens(count: count, limit: maxPositions) }
    guard valid <= count else { throw .invalidPadding(tokens: valid, paddedTo: count) }
    if tokens.hidesLength {
      guard architecture == .bert else { throw .hiddenLengthUnsupported(architecture.rawValue) }
      if let real = tokens.realCount, !(1...count).contains(real) {
        throw .invalidPadding(tokens: real, paddedTo: count)
      }
    }
    if let ids = tokens.ids, let bad = ids.first(where: { $0 < 0 || $0 >= vocabularySize }) {
      throw .tokenOutOfRange(id: bad, vocabularySize: vocabularySize)
    }
    return valid
  }
}

/// A model graph every engine runs: its public shape, the weights it reads, and what a run
/// returns to the client.
public protocol TransformerGraph: Sendable {
  var config: ModelConfig { get }
  /// Every weight the graph uses with its shape.
  var expectedWeights: [(WeightID, [Int])] { get }
  /// The matrices read by rows (embedding tables), not by `linear`.
  var embeddingTables: [WeightID] { get }
  /// The client's result for `tokens`, of which the first `validTokens` are real: [1, d].
  func output<E: InferenceEngine>(_ tokens: TokenInput, validTokens: Int?, engine: E) async throws
    -> E.Value
}

/// BERT's weight names and graph. `prefix` is "" for sentence-transformers checkpoints and
/// "bert." for `BertModel` checkpoints saved from a task model.
public struct BertModel: TransformerGraph, LayeredGraph {
  public let config: ModelConfig
  public let prefix: String

  public init(config: ModelConfig, prefix: String = "") {
    self.config = config
    self.prefix = prefix
  }

  func weight(_ name: String) -> WeightID { WeightID(prefix + name) }

  public var embeddingTables: [WeightID] {
    ["word_embeddings", "position_embeddings", "token_type_embeddings"].map {
      weight("embeddings.\($0).weight")
    }
  }
  func layerWeight(_ layer: Int, _ name: String) -> WeightID {
    weight("encoder.layer.\(layer).\(name)")
  }

  /// Every weight the graph uses with its shape, for validating a checkpoint before use.
  public var expectedWeights: [(WeightID, [Int])] {
    let d = config.hiddenSize
    let ff = config.intermediateSize
    var out: [(WeightID, [Int])] = [
      (weight("embeddings.word_embeddings.weight"), [config.vocabularySize, d]),
      (weight("embeddings.position_embeddings.weight"), [config.maxPositions, d]),
      (weight("embeddings.token_type_embeddings.weight"), [config.typeVocabularySize, d]),
      (weight("embeddings.LayerNorm.weight"), [d]), (weight("embeddings.LayerNorm.bias"), [d]),
    ]
    for l in 0..<config.layers {
      for name in [
        "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense",
      ] {
        out.append((layerWeight(l, name + ".weight"), [d, d]))
        out.append((layerWeight(l, name + ".bias"), [d]))
      }
      out.append((layerWeight(l, "intermediate.dense.weight"), [ff, d]))
      out.append((layerWeight(l, "intermediate.dense.bias"), [ff]))
      out.append((layerWeight(l, "output.dense.weight"), [d, ff]))
      out.append((layerWeight(l, "output.dense.bias"), [d]))
      for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
        out.append((layerWeight(l, norm + ".weight"), [d]))
        out.append((layerWeight(l, norm + ".bias"), [d]))
      }
    }
    return out
  }

  /// The last hidden state [T, d] for `tokens`, of which the first `validTokens` are real
  /// (the rest is padding that hides the true length).
  public func encode<E: InferenceEngine>(
    _ tokens: TokenInput, validTokens: Int? = nil, engine: E
  ) async throws -> E.Value {
    try await encode(tokens, validTokens: validTokens, keyMask: nil, engine: engine)
  }

  /// The encoder with a secret key mask (a run that hides its length) or a public valid count.
  func encode<E: InferenceEngine>(
    _ tokens: TokenInput, validTokens: Int?, keyMask: E.Value?, engine: E
  ) async throws -> E.Value {
    let count = tokens.count
    let valid = try config.check(tokens, validTokens: validTokens)
    let e = engine
    let before = -1
    var x = try await e.tokenEmbedding(
      tokens, table: weight("embeddings.word_embeddings.weight"),
      site: OpSite(layer: before, kind: .embedding, index: 0))
    let positions = try await e.publicRows(
      weight("embeddings.position_embeddings.weight"), rows: Array(0..<count),
      site: OpSite(layer: before, kind: .embedding, index: 1))
    let types = try await e.publicRows(
      weight("embeddings.token_type_embeddings.weight"), rows: Array(repeating: 0, count: count),
      site: OpSite(layer: before, kind: .embedding, index: 2))
    x = try await e.add(x, positions, site: OpSite(layer: before, kind: .add, index: 0))
    x = try await e.add(x, types, site: OpSite(layer: before, kind: .add, index: 1))
    x = try await e.layerNorm(
      x, gamma: weight("embeddings.LayerNorm.weight"), beta: weight("embeddings.LayerNorm.bias"),
      epsilon: config.normEpsilon, site: OpSite(layer: before, kind: .layerNorm, index: 0))
    let mask = AttentionMask(validKeys: valid)
    for layer in 0..<config.layers {
      x = try await block(x, layer: layer, mask: mask, keyMask: keyMask, engine: e)
    }
    return x
  }

  /// One encoder block: self-attention and feed-forward, each with a residual and post-LayerNorm.
  func block<E: InferenceEngine>(
    _ x: E.Value, layer: Int, mask: AttentionMask, keyMask: E.Value?, engine e: E
  ) async throws -> E.Value {
    func site(_ kind: OpKind, _ index: Int) -> OpSite {
      OpSite(layer: layer, kind: kind, index: index)
    }
    let context = try await selfAttention(
      x, names: ("attention.self.query", "attention.self.key", "attention.self.value"), mask: mask,
      keyMask: keyMask, layer: layer, engine: e)
    let attended = try await e.add(
      try await dense(context, "attention.output.dense", layer: layer, index: 3, engine: e), x,
      site: site(.add, 0))
    let h = try await norm(
      attended, "attention.output.LayerNorm", layer: layer, index: 0, engine: e)
    let inner = try await e.gelu(
      try await dense(h, "intermediate.dense", layer: layer, index: 4, engine: e),
      site: site(.gelu, 0))
    let out = try await e.add(
      try await dense(inner, "output.dense", layer: layer, index: 5, engine: e), h,
      site: site(.add, 1))
    return try await norm(out, "output.LayerNorm", layer: layer, index: 1, engine: e)
  }

  /// The sentence embedding.
  public func output<E: InferenceEngine>(_ tokens: TokenInput, validTokens: Int?, engine: E)
    async throws -> E.Value
  {
    try await sentenceEmbedding(tokens, validTokens: validTokens, engine: engine)
  }

  /// The sentence embedding [1, d]: mean of the real tokens' hidden states, L2-normalised. A
  /// run that hides its length takes the client's secret padding inputs first, masks the
  /// padded keys in every softmax with them and pools with them; its public valid count is
  /// the bucket.
  public func sentenceEmbedding<E: InferenceEngine>(
    _ tokens: TokenInput, validTokens: Int? = nil, engine: E
  ) async throws -> E.Value {
    let after = config.layers
    let pooled: E.Value
    if tokens.hidesLength {
      guard validTokens ?? tokens.count == tokens.count else {
        throw EngineError.badShape(
          OpSite(layer: -1, kind: .embedding, index: 3), [tokens.count],
          "a run that hides its length has no public valid count")
      }
      let padding = try await engine.secretPadding(
        tokens, site: OpSite(layer: -1, kind: .embedding, index: 3))
      let hidden = try await encode(
        tokens, validTokens: nil, keyMask: padding.keyMask, engine: engine)
      pooled = try await engine.meanPool(
        hidden, padding: padding, site: OpSite(layer: after, kind: .pool, index: 0))
    } else {
      let hidden = try await encode(tokens, validTokens: validTokens, engine: engine)
      pooled = try await engine.meanPool(
        hidden, validRows: validTokens ?? tokens.count,
        site: OpSite(layer: after, kind: .pool, index: 0))
    }
    return try await engine.l2Normalize(
      pooled, site: OpSite(layer: after, kind: .normalize, index: 0))
  }
}

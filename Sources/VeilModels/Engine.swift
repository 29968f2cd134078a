// The engine protocol: the operations a Transformer graph needs, written so that one model
// graph (BERT here; GPT-2 and LLaMA later) runs unchanged on every engine — Float64 reference,
// fixed point in the clear, dealer, and party b (DESIGN.md §4). Weights are passed by id and
// each engine resolves them its own way; every call carries an op site, so key records and
// per-op statistics can be labelled and checked.

/// What an operation is, for labels, key-record tags and per-layer-type statistics.
public enum OpKind: String, Sendable, Hashable, CaseIterable {
  case embedding, linear, attentionScores, attentionContext, softmax, gelu, layerNorm, add
  case reshape, pool, normalize
  case rmsNorm, silu, multiply, rotary, argmax
  /// A decoder's final norm and LM head (outside the blocks).
  case head
}

/// Where an operation sits in the graph: its layer (−1 before the first block, `layers` after
/// the last), kind and index within that layer.
public struct OpSite: Sendable, Hashable, CustomStringConvertible {
  public var layer: Int
  public var kind: OpKind
  public var index: Int

  public init(layer: Int, kind: OpKind, index: Int) {
    self.layer = layer
    self.kind = kind
    self.index = index
  }

  public var description: String { "layer \(layer) \(kind.rawValue) #\(index)" }
}

/// A weight tensor by name (its safetensors name). Engines resolve it to whatever they hold:
/// Float64 values, a masked weight and a mask share, or the mask itself at the dealer.
public struct WeightID: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
  public let name: String
  public init(_ name: String) { self.name = name }
  public init(stringLiteral value: String) { self.name = value }
  public var description: String { name }
}

/// The client's tokens as an engine sees them: the count is public (DESIGN §9); the ids are
/// present only in engines that may see them (the plaintext engines and the client).
public struct TokenInput: Sendable, Equatable {
  public let count: Int
  public let ids: [Int]?
  /// Whether the run hides its real length: the ids are padded to `count` (a public bucket),
  /// and which rows are real is a secret input from the client (`SecretPadding`).
  public let hidesLength: Bool
  /// The real token count of a run that hides it, where the ids may be seen (the client and
  /// the plaintext engines); nil elsewhere.
  public let realCount: Int?

  public init(ids: [Int]) {
    self.count = ids.count
    self.ids = ids
    hidesLength = false
    realCount = nil
  }

  /// `ids` padded to a bucket, of which the first `realCount` are the text's: the servers see
  /// only `ids.count`.
  public init(ids: [Int], hidingLength realCount: Int) {
    count = ids.count
    self.ids = ids
    hidesLength = true
    self.realCount = realCount
  }

  public init(hiddenCount count: Int, hidesLength: Bool = false) {
    self.count = count
    self.ids = nil
    self.hidesLength = hidesLength
    realCount = nil
  }
}

/// The client's secret inputs of a run that hides its length: which keys are real and 1/count.
public struct SecretPadding<Value: Sendable>: Sendable {
  /// [1, T]: 1 for a real token, 0 for padding.
  public var keyMask: Value
  /// [1, 1]: 1 / (number of real tokens).
  public var inverseCount: Value

  public init(keyMask: Value, inverseCount: Value) {
    self.keyMask = keyMask
    self.inverseCount = inverseCount
  }
}

/// Which keys a softmax row may attend to.
public struct AttentionMask: Sendable, Equatable {
  /// Keys at positions ≥ this are padding and get probability 0.
  public var validKeys: Int
  /// Decoder models: query i sees keys 0…(queryOffset + i) only.
  public var causal: Bool
  /// The position of query row 0 among the keys: 0 when queries and keys are the same
  /// positions; the cached prefix's length when new queries attend to a KV cache.
  public var queryOffset: Int

  public init(validKeys: Int, causal: Bool = false, queryOffset: Int = 0) {
    self.validKeys = validKeys
    self.causal = causal
    self.queryOffset = queryOffset
  }

  /// How many keys query row `query` (within its matrix) sees.
  public func visibleKeys(query: Int) -> Int {
    causal ? min(validKeys, queryOffset + query + 1) : validKeys
  }
}

/// The operations a Transformer graph is written against. Values are the engine's tensors
/// (plain numbers, masked wires or shares); shapes are public and travel with them.
public protocol InferenceEngine: Sendable {
  associatedtype Value: Sendable

  /// The shape of a value (public in every engine).
  func shape(of value: Value) -> [Int]

  /// Rows of `table` for the client's tokens: [tokens, d]. Secure engines never see the ids.
  func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: OpSite) async throws -> Value

  /// Rows of `table` at public indices (position and token-type embeddings): [rows, d].
  func publicRows(_ table: WeightID, rows: [Int], site: OpSite) async throws -> Value

  /// x·Wᵀ + b for x [T, in] and W [out, in] (PyTorch's layout).
  func linear(_ x: Value, weight: WeightID, bias: WeightID?, site: OpSite) async throws -> Value

  func add(_ a: Value, _ b: Value, site: OpSite) async throws -> Value

  /// LayerNorm over the last axis with learned γ, β and ε.
  func layerNorm(_ x: Value, gamma: WeightID, beta: WeightID, epsilon: Double, site: OpSite)
    async throws
    -> Value

  /// GeLU (erf form).
  func gelu(_ x: Value, site: OpSite) async throws -> Value

  /// GeLU's tanh form, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GPT-2's `gelu_new`). Engines
  /// that approximate GeLU anyway (the recipes) use their GeLU; the Float64 reference computes
  /// the form exactly.
  func geluTanh(_ x: Value, site: OpSite) async throws -> Value

  /// [T, H·dh] → [H, T, dh]: local on shares.
  func splitHeads(_ x: Value, heads: Int, site: OpSite) async throws -> Value

  /// [H, T, dh] → [T, H·dh]: local on shares.
  func mergeHeads(_ x: Value, site: OpSite) async throws -> Value

  /// scale · Q·Kᵀ per head: [H, T, dh] × [H, T, dh] → [H, T, T]. Both operands are secret.
  func attentionScores(_ q: Value, _ k: Value, scale: Double, site: OpSite) async throws -> Value

  /// Softmax over the last axis, with masked keys at probability 0.
  func softmax(_ x: Value, mask: AttentionMask, site: OpSite) async throws -> Value

  /// P·V per head: [H, T, T] × [H, T, dh] → [H, T, dh]. Both operands are secret.
  func attentionContext(_ p: Value, _ v: Value, site: OpSite) async throws -> Value

  /// Mean of the first `validRows` rows: [T, d] → [1, d].
  func meanPool(_ x: Value, validRows: Int, site: OpSite) async throws -> Value

  // MARK: Hidden lengths (a run padded to a bucket, its real length secret)

  /// The client's secret padding inputs for `tokens` (`tokens.hidesLength`).
  func secretPadding(_ tokens: TokenInput, site: OpSite) async throws -> SecretPadding<Value>

  /// Softmax over the last axis where key j counts only if the secret `keyMask` [1, width]
  /// holds 1 there (the others get probability 0).
  func softmax(_ x: Value, keyMask: Value, site: OpSite) async throws -> Value

  /// The mean of the rows the secret key mask keeps: Σ m_i·x_i × (1/count), [T, d] → [1, d].
  func meanPool(_ x: Value, padding: SecretPadding<Value>, site: OpSite) async throws -> Value

  /// Row `index` (public) of [T, d] as [1, d]: local on shares.
  func row(_ x: Value, _ index: Int, site: OpSite) async throws -> Value

  /// Each row divided by its Euclidean norm.
  func l2Normalize(_ x: Value, site: OpSite) async throws -> Value

  // MARK: Decoders (LLaMA, generation)

  /// RMSNorm over the last axis, x / √(mean(x²) + ε) · γ (LLaMA).
  func rmsNorm(_ x: Value, gamma: WeightID, epsilon: Double, site: OpSite) async throws -> Value

  /// SiLU, x·σ(x) (the gate of LLaMA's SwiGLU MLP).
  func silu(_ x: Value, site: OpSite) async throws -> Value

  /// a ⊙ b for two secret values of one shape.
  func multiply(_ a: Value, _ b: Value, site: OpSite) async throws -> Value

  /// Rotary position embedding of [H, T, dh] whose rows are positions firstPosition…, in the
  /// rotate-half layout of Hugging Face's LLaMA: for j < dh/2 and angle p·θ^(−2j/dh),
  /// out_j = x_j·cos − x_(j+dh/2)·sin and out_(j+dh/2) = x_(j+dh/2)·cos + x_j·sin. The angles
  /// are public, so on shares this is local arithmetic and one truncation.
  func rotary(_ x: Value, firstPosition: Int, theta: Double, site: OpSite) async throws -> Value

  /// Heads `indices` of [H, T, dh], in that order (grouped-query attention shares a key/value
  /// head among several query heads): local.
  func heads(_ x: Value, _ indices: [Int], site: OpSite) async throws -> Value

  /// Concatenation along `axis` (the KV cache grows along the positions axis): local.
  func concatenate(_ parts: [Value], axis: Int, site: OpSite) async throws -> Value

  /// The index of the largest element of [1, V], the first one on ties, as [1, 1]: a secret
  /// integer in secure engines (a comparison tree; nobody sees a logit or the index).
  func argmax(_ x: Value, site: OpSite) async throws -> Value

  /// The one-hot row [1, classes] of an index [1, 1], still secret in secure engines.
  func oneHot(_ index: Value, classes: Int, site: OpSite) async throws -> Value

  /// oneHot · table for a one-hot [1, V] and a table [V, d]: the embedding row of a secret
  /// token, [1, d].
  func tableRows(_ oneHot: Value, table: WeightID, site: OpSite) async throws -> Value
}

/// A graph whose block weights are named per layer: the pieces every block is built from,
/// written once for BERT and GPT-2.
protocol LayeredGraph: TransformerGraph {
  func layerWeight(_ layer: Int, _ name: String) -> WeightID
}

extension LayeredGraph {
  /// x·Wᵀ + b with the layer's `name.weight` and `name.bias` (linear site `index`).
  func dense<E: InferenceEngine>(_ x: E.Value, _ name: String, layer: Int, index: Int, engine e: E)
    async throws -> E.Value
  {
    try await e.linear(
      x, weight: layerWeight(layer, name + ".weight"), bias: layerWeight(layer, name + ".bias"),
      site: OpSite(layer: layer, kind: .linear, index: index))
  }

  /// LayerNorm with the layer's `name.weight` (γ) and `name.bias` (β) (layerNorm site `index`).
  func norm<E: InferenceEngine>(_ x: E.Value, _ name: String, layer: Int, index: Int, engine e: E)
    async throws -> E.Value
  {
    try await e.layerNorm(
      x, gamma: layerWeight(layer, name + ".weight"), beta: layerWeight(layer, name + ".bias"),
      epsilon: config.normEpsilon, site: OpSite(layer: layer, kind: .layerNorm, index: index))
  }

  /// The query, key and value projections of x (`linear` sites 0, 1, 2), each split into
  /// [H, T, dh].
  func projectHeads<E: InferenceEngine>(
    _ x: E.Value, _ names: [String], layer: Int, engine e: E
  ) async throws -> [E.Value] {
    var heads: [E.Value] = []
    for (index, name) in names.enumerated() {
      let projected = try await dense(x, name, layer: layer, index: index, engine: e)
      heads.append(
        try await e.splitHeads(
          projected, heads: config.heads,
          site: OpSite(layer: layer, kind: .reshape, index: index)))
    }
    return heads
  }

  /// Multi-head self-attention up to the merged context [T, d], before the output projection:
  /// the query, key and value projections (`linear` sites 0, 1, 2), scaled scores, the masked
  /// softmax and P·V.
  func selfAttention<E: InferenceEngine>(
    _ x: E.Value, names: (query: String, key: String, value: String), mask: AttentionMask,
    keyMask: E.Value? = nil, layer: Int,
    engine e: E
  ) async throws -> E.Value {
    func site(_ kind: OpKind, _ index: Int) -> OpSite {
      OpSite(layer: layer, kind: kind, index: index)
    }
    let heads = try await projectHeads(
      x, [names.query, names.key, names.value], layer: layer, engine: e)
    let scores = try await e.attentionScores(
      heads[0], heads[1], scale: 1 / Double(config.headDimension).squareRoot(),
      site: site(.attentionScores, 0))
    let probabilities =
      if let keyMask {
        try await e.softmax(scores, keyMask: keyMask, site: site(.softmax, 0))
      } else {
        try await e.softmax(scores, mask: mask, site: site(.softmax, 0))
      }
    return try await e.mergeHeads(
      try await e.attentionContext(probabilities, heads[2], site: site(.attentionContext, 0)),
      site: site(.reshape, 3))
  }
}

extension InferenceEngine {
  public func geluTanh(_ x: Value, site: OpSite) async throws -> Value {
    try await gelu(x, site: site)
  }
}

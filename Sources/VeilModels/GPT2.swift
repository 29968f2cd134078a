// GPT-2's decoder stack, written once against `InferenceEngine`: pre-LayerNorm blocks with
// causal self-attention and a GeLU MLP, then the final LayerNorm. Weight names follow Hugging
// Face's GPT2Model where the layout agrees (wte, wpe, h.N.ln_1, h.N.attn.c_proj, h.N.mlp.*,
// ln_f); every matrix is [out, in] as `linear` takes it, and the fused c_attn is three [d, d]
// matrices (attn.query/key/value). A checkpoint loader splits c_attn and transposes HF's
// Conv1D [in, out] matrices; the benchmarks run random weights at these shapes.

/// GPT-2's weight names and graph.
public struct GPT2Model: TransformerGraph, LayeredGraph {
  public let config: ModelConfig

  public init(config: ModelConfig) { self.config = config }

  func layerWeight(_ layer: Int, _ name: String) -> WeightID { WeightID("h.\(layer).\(name)") }

  public var embeddingTables: [WeightID] { ["wte.weight", "wpe.weight"] }

  public var expectedWeights: [(WeightID, [Int])] {
    let d = config.hiddenSize
    let ff = config.intermediateSize
    var out: [(WeightID, [Int])] = [
      ("wte.weight", [config.vocabularySize, d]), ("wpe.weight", [config.maxPositions, d]),
    ]
    for l in 0..<config.layers {
      for (name, shape) in [
        ("attn.query", [d, d]), ("attn.key", [d, d]), ("attn.value", [d, d]),
        ("attn.c_proj", [d, d]),
        ("mlp.c_fc", [ff, d]), ("mlp.c_proj", [d, ff]),
      ] {
        out.append((layerWeight(l, name + ".weight"), shape))
        out.append((layerWeight(l, name + ".bias"), [shape[0]]))
      }
      for norm in ["ln_1", "ln_2"] {
        out.append((layerWeight(l, norm + ".weight"), [d]))
        out.append((layerWeight(l, norm + ".bias"), [d]))
      }
    }
    out.append(("ln_f.weight", [d]))
    out.append(("ln_f.bias", [d]))
    return out
  }

  /// The final hidden states [T, d] (after ln_f) for `tokens`, of which the first
  /// `validTokens` are real; the causal mask keeps padding out of every real token's view.
  public func decode<E: InferenceEngine>(_ tokens: TokenInput, validTokens: Int? = nil, engine e: E)
    async throws
    -> E.Value
  {
    let count = tokens.count
    let valid = try config.check(tokens, validTokens: validTokens)
    let before = -1
    let embedded = try await e.tokenEmbedding(
      tokens, table: "wte.weight", site: OpSite(layer: before, kind: .embedding, index: 0))
    let positions = try await e.publicRows(
      "wpe.weight", rows: Array(0..<count), site: OpSite(layer: before, kind: .embedding, index: 1))
    var x = try await e.add(embedded, positions, site: OpSite(layer: before, kind: .add, index: 0))
    let mask = AttentionMask(validKeys: valid, causal: true)
    for layer in 0..<config.layers { x = try await block(x, layer: layer, mask: mask, engine: e) }
    return try await e.layerNorm(
      x, gamma: "ln_f.weight", beta: "ln_f.bias", epsilon: config.normEpsilon,
      site: OpSite(layer: config.layers, kind: .layerNorm, index: 0))
  }

  /// One block: x + attn(ln_1(x)), then + mlp(ln_2(·)).
  func block<E: InferenceEngine>(_ x: E.Value, layer: Int, mask: AttentionMask, engine e: E)
    async throws -> E.Value
  {
    func site(_ kind: OpKind, _ index: Int) -> OpSite {
      OpSite(layer: layer, kind: kind, index: index)
    }
    let context = try await selfAttention(
      try await norm(x, "ln_1", layer: layer, index: 0, engine: e),
      names: ("attn.query", "attn.key", "attn.value"),
      mask: mask, layer: layer, engine: e)
    let attended = try await e.add(
      x, try await dense(context, "attn.c_proj", layer: layer, index: 3, engine: e),
      site: site(.add, 0))
    let hidden = try await norm(attended, "ln_2", layer: layer, index: 1, engine: e)
    let expanded = try await dense(hidden, "mlp.c_fc", layer: layer, index: 4, engine: e)
    // `activation_function`: "gelu" is the erf form; GPT-2's default "gelu_new" (and its
    // aliases) the tanh form.
    let inner =
      config.hiddenActivation == "gelu"
      ? try await e.gelu(expanded, site: site(.gelu, 0))
      : try await e.geluTanh(expanded, site: site(.gelu, 0))
    return try await e.add(
      attended, try await dense(inner, "mlp.c_proj", layer: layer, index: 5, engine: e),
      site: site(.add, 1))
  }

  /// The LM head (tied to the token embedding): logits [T, vocabulary] of `hidden` [T, d].
  public func logits<E: InferenceEngine>(_ hidden: E.Value, engine e: E) async throws -> E.Value {
    try await e.linear(
      hidden, weight: "wte.weight", bias: nil,
      site: OpSite(layer: config.layers, kind: .linear, index: 0))
  }

  /// The last real token's final hidden state [1, d] (what the LM head reads for the next token).
  public func output<E: InferenceEngine>(_ tokens: TokenInput, validTokens: Int?, engine: E)
    async throws -> E.Value
  {
    let valid = try config.check(tokens, validTokens: validTokens)
    let hidden = try await decode(tokens, validTokens: valid, engine: engine)
    return try await engine.row(
      hidden, valid - 1, site: OpSite(layer: config.layers, kind: .pool, index: 0))
  }
}

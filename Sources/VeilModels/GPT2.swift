// GPT-2's decoder stack, written once against `InferenceEngine`: pre-LayerNorm blocks with
// causal self-attention and a GeLU MLP, then the final LayerNorm. Weight names follow Hugging
// Face's GPT2Model where the layout agrees (wte, wpe, h.N.ln_1, h.N.attn.c_proj, h.N.mlp.*,
// ln_f); every matrix is [out, in] as `linear` takes it, and the fused c_attn is three [d, d]
// matrices (attn.query/key/value). A checkpoint loader splits c_attn and transposes HF's
// Conv1D [in, out] matrices; the benchmarks run random weights at these shapes.

/// GPT-2's weight names and graph.
public struct GPT2Model: DecoderGraph, LayeredGraph {
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

  public var tokenTable: WeightID { "wte.weight" }

  /// wte rows of the tokens plus wpe rows of their positions.
  public func embed<E: InferenceEngine>(_ tokens: TokenInput, firstPosition: Int, engine e: E)
    async throws -> E.Value
  {
    let before = -1
    let embedded = try await e.tokenEmbedding(
      tokens, table: tokenTable, site: OpSite(layer: before, kind: .embedding, index: 0))
    return try await addPositions(embedded, first: firstPosition, engine: e)
  }

  public func embed<E: InferenceEngine>(oneHot: E.Value, position: Int, engine e: E) async throws
    -> E.Value
  {
    let embedded = try await e.tableRows(
      oneHot, table: tokenTable, site: OpSite(layer: -1, kind: .embedding, index: 2))
    return try await addPositions(embedded, first: position, engine: e)
  }

  private func addPositions<E: InferenceEngine>(_ x: E.Value, first: Int, engine e: E)
    async throws -> E.Value
  {
    let rows = e.shape(of: x)[0]
    let positions = try await e.publicRows(
      "wpe.weight", rows: Array(first..<(first + rows)),
      site: OpSite(layer: -1, kind: .embedding, index: 1))
    return try await e.add(x, positions, site: OpSite(layer: -1, kind: .add, index: 0))
  }

  /// The blocks over the new positions, then ln_f; the causal mask keeps padding out of every
  /// real token's view.
  public func forward<E: InferenceEngine>(
    _ x: E.Value, validTokens: Int, cache: inout KVCache<E.Value>, engine e: E
  ) async throws -> E.Value {
    var h = x
    for layer in 0..<config.layers {
      h = try await block(h, layer: layer, validTokens: validTokens, cache: &cache, engine: e)
    }
    cache.advance(by: e.shape(of: x)[0])
    return try await e.layerNorm(
      h, gamma: "ln_f.weight", beta: "ln_f.bias", epsilon: config.normEpsilon,
      site: OpSite(layer: config.layers, kind: .head, index: 0))
  }

  /// One block: x + attn(ln_1(x)), then + mlp(ln_2(·)).
  func block<E: InferenceEngine>(
    _ x: E.Value, layer: Int, validTokens: Int, cache: inout KVCache<E.Value>, engine e: E
  ) async throws -> E.Value {
    func site(_ kind: OpKind, _ index: Int) -> OpSite {
      OpSite(layer: layer, kind: kind, index: index)
    }
    let heads = try await projectHeads(
      try await norm(x, "ln_1", layer: layer, index: 0, engine: e),
      ["attn.query", "attn.key", "attn.value"], layer: layer, engine: e)
    let context = try await attend(
      query: heads[0], key: heads[1], value: heads[2], validTokens: validTokens, layer: layer,
      cache: &cache, engine: e)
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
      hidden, weight: tokenTable, bias: nil,
      site: OpSite(layer: config.layers, kind: .head, index: 1))
  }
}

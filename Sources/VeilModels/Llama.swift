// The LLaMA decoder (LLaMA-2/3, SmolLM2, …), written once against `InferenceEngine`: RMSNorm
// before attention and MLP, rotary position embeddings on queries and keys, grouped-query
// attention over the KV cache, a SwiGLU MLP (SiLU(gate)·up, then down) and a final RMSNorm; the
// LM head is the token table when `tie_word_embeddings` is set, `lm_head` otherwise. Weight
// names are Hugging Face's LlamaForCausalLM (every matrix [out, in], no biases).

/// LLaMA's weight names and graph.
public struct LlamaModel: DecoderGraph {
  public let config: ModelConfig

  public init(config: ModelConfig) { self.config = config }

  func layerWeight(_ layer: Int, _ name: String) -> WeightID {
    WeightID("model.layers.\(layer).\(name).weight")
  }

  public var tokenTable: WeightID { "model.embed_tokens.weight" }
  var headWeight: WeightID { config.tiedEmbeddings ? tokenTable : "lm_head.weight" }

  public var embeddingTables: [WeightID] { [tokenTable] }

  public var expectedWeights: [(WeightID, [Int])] {
    let d = config.hiddenSize
    let ff = config.intermediateSize
    let kv = config.keyValueHeads * config.headDimension
    var out: [(WeightID, [Int])] = [(tokenTable, [config.vocabularySize, d])]
    for l in 0..<config.layers {
      for (name, shape) in [
        ("self_attn.q_proj", [d, d]), ("self_attn.k_proj", [kv, d]), ("self_attn.v_proj", [kv, d]),
        ("self_attn.o_proj", [d, d]), ("mlp.gate_proj", [ff, d]), ("mlp.up_proj", [ff, d]),
        ("mlp.down_proj", [d, ff]), ("input_layernorm", [d]), ("post_attention_layernorm", [d]),
      ] {
        out.append((layerWeight(l, name), shape))
      }
    }
    out.append(("model.norm.weight", [d]))
    if !config.tiedEmbeddings { out.append(("lm_head.weight", [config.vocabularySize, d])) }
    return out
  }

  /// Rows of the token table (positions enter through the rotary embedding instead).
  public func embed<E: InferenceEngine>(_ tokens: TokenInput, firstPosition: Int, engine e: E)
    async throws -> E.Value
  {
    try await e.tokenEmbedding(
      tokens, table: tokenTable, site: OpSite(layer: -1, kind: .embedding, index: 0))
  }

  public func embed<E: InferenceEngine>(oneHot: E.Value, position: Int, engine e: E) async throws
    -> E.Value
  {
    try await e.tableRows(
      oneHot, table: tokenTable, site: OpSite(layer: -1, kind: .embedding, index: 2))
  }

  public func forward<E: InferenceEngine>(
    _ x: E.Value, validTokens: Int, cache: inout KVCache<E.Value>, engine e: E
  ) async throws -> E.Value {
    var h = x
    for layer in 0..<config.layers {
      h = try await block(h, layer: layer, validTokens: validTokens, cache: &cache, engine: e)
    }
    cache.advance(by: e.shape(of: x)[0])
    return try await e.rmsNorm(
      h, gamma: "model.norm.weight", epsilon: config.normEpsilon,
      site: OpSite(layer: config.layers, kind: .head, index: 0))
  }

  /// One block: x + o_proj(attention(rmsNorm(x))), then + down(SiLU(gate(·))·up(·)).
  func block<E: InferenceEngine>(
    _ x: E.Value, layer: Int, validTokens: Int, cache: inout KVCache<E.Value>, engine e: E
  ) async throws -> E.Value {
    func site(_ kind: OpKind, _ index: Int) -> OpSite {
      OpSite(layer: layer, kind: kind, index: index)
    }
    func project(_ v: E.Value, _ name: String, _ index: Int) async throws -> E.Value {
      try await e.linear(
        v, weight: layerWeight(layer, name), bias: nil, site: site(.linear, index))
    }
    let first = cache.length
    let normed = try await e.rmsNorm(
      x, gamma: layerWeight(layer, "input_layernorm"), epsilon: config.normEpsilon,
      site: site(.rmsNorm, 0))
    var heads: [E.Value] = []
    for (index, (name, count)) in [
      ("self_attn.q_proj", config.heads), ("self_attn.k_proj", config.keyValueHeads),
      ("self_attn.v_proj", config.keyValueHeads),
    ].enumerated() {
      let split = try await e.splitHeads(
        try await project(normed, name, index), heads: count, site: site(.reshape, index))
      heads.append(
        index == 2
          ? split
          : try await e.rotary(
            split, firstPosition: first, theta: config.ropeTheta, site: site(.rotary, index)))
    }
    let context = try await attend(
      query: heads[0], key: heads[1], value: heads[2], validTokens: validTokens, layer: layer,
      cache: &cache, engine: e)
    let attended = try await e.add(
      x, try await project(context, "self_attn.o_proj", 3), site: site(.add, 0))
    let hidden = try await e.rmsNorm(
      attended, gamma: layerWeight(layer, "post_attention_layernorm"),
      epsilon: config.normEpsilon, site: site(.rmsNorm, 1))
    let gate = try await e.silu(try await project(hidden, "mlp.gate_proj", 4), site: site(.silu, 0))
    let up = try await project(hidden, "mlp.up_proj", 5)
    let inner = try await e.multiply(gate, up, site: site(.multiply, 0))
    return try await e.add(
      attended, try await project(inner, "mlp.down_proj", 6), site: site(.add, 1))
  }

  public func logits<E: InferenceEngine>(_ hidden: E.Value, engine e: E) async throws -> E.Value {
    try await e.linear(
      hidden, weight: headWeight, bias: nil,
      site: OpSite(layer: config.layers, kind: .head, index: 1))
  }
}

// The engine that runs a model graph with a recipe over any gate back end (DESIGN §4): over
// `ClearBackend` it is the fixed-point in-the-clear engine; over the dealer and party back ends
// it is the secure run, gate for gate the same.
import VeilFSS
import VeilModels
import VeilRing

/// `InferenceEngine` with a recipe over a gate back end.
public struct RecipeEngine<Backend: GateBackend>: InferenceEngine {
  public typealias Value = Backend.Value

  public let recipe: Recipe<Backend>
  public var backend: Backend { recipe.backend }
  public var parameters: RecipeParameters { recipe.parameters }

  public init(backend: Backend, parameters: RecipeParameters) throws(MPCError) {
    recipe = try Recipe(backend: backend, parameters: parameters)
  }

  private func site(_ op: OpSite, _ gate: String) -> GateSite { GateSite(op: op, gate: gate) }

  public func shape(of value: Value) -> [Int] { backend.shape(of: value) }

  public func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site op: OpSite) async throws
    -> Value
  {
    try await backend.tokenEmbedding(tokens, table: table, site: site(op, "embedding.tokens"))
  }

  public func publicRows(_ table: WeightID, rows: [Int], site op: OpSite) async throws -> Value {
    try await backend.weightRows(table, rows: rows, site: site(op, "embedding.rows"))
  }

  public func linear(_ x: Value, weight: WeightID, bias: WeightID?, site op: OpSite) async throws
    -> Value
  {
    try await recipe.linear(x, weight: weight, bias: bias, op: op)
  }

  public func add(_ a: Value, _ b: Value, site op: OpSite) async throws -> Value {
    try await backend.add(a, b, site: site(op, "add"))
  }

  public func layerNorm(
    _ x: Value, gamma: WeightID, beta: WeightID, epsilon: Double, site op: OpSite
  ) async throws
    -> Value
  {
    try await recipe.layerNorm(x, gamma: gamma, beta: beta, epsilon: epsilon, op: op)
  }

  public func gelu(_ x: Value, site op: OpSite) async throws -> Value {
    try await recipe.gelu(x, op: op)
  }

  public func splitHeads(_ x: Value, heads: Int, site op: OpSite) async throws -> Value {
    let shape = backend.shape(of: x)
    guard shape.count == 2, heads > 0, shape[1] % heads == 0 else {
      throw MPCError.badShape(site(op, "splitHeads"), shape, "cannot split into \(heads) heads")
    }
    let (t, d) = (shape[0], shape[1])
    let dh = d / heads
    var indices = [Int](repeating: 0, count: t * d)
    for h in 0..<heads {
      for i in 0..<t {
        for j in 0..<dh { indices[(h * t + i) * dh + j] = i * d + h * dh + j }
      }
    }
    return try await backend.gather(
      x, indices: indices, shape: [heads, t, dh], site: site(op, "splitHeads"))
  }

  public func mergeHeads(_ x: Value, site op: OpSite) async throws -> Value {
    let shape = backend.shape(of: x)
    guard shape.count == 3 else {
      throw MPCError.badShape(site(op, "mergeHeads"), shape, "expected [H, T, dh]")
    }
    let (heads, t, dh) = (shape[0], shape[1], shape[2])
    var indices = [Int](repeating: 0, count: heads * t * dh)
    for h in 0..<heads {
      for i in 0..<t {
        for j in 0..<dh { indices[i * heads * dh + h * dh + j] = (h * t + i) * dh + j }
      }
    }
    return try await backend.gather(
      x, indices: indices, shape: [t, heads * dh], site: site(op, "mergeHeads"))
  }

  public func attentionScores(_ q: Value, _ k: Value, scale: Double, site op: OpSite) async throws
    -> Value
  {
    try await recipe.attentionScores(q, k, scale: scale, op: op)
  }

  public func softmax(_ x: Value, mask: AttentionMask, site op: OpSite) async throws -> Value {
    try await recipe.softmax(x, mask: mask, op: op)
  }

  public func attentionContext(_ p: Value, _ v: Value, site op: OpSite) async throws -> Value {
    try await recipe.attentionContext(p, v, op: op)
  }

  public func secretPadding(_ tokens: TokenInput, site op: OpSite) async throws
    -> SecretPadding<Value>
  {
    try await recipe.secretPadding(tokens, op: op)
  }

  public func softmax(_ x: Value, keyMask: Value, site op: OpSite) async throws -> Value {
    try await recipe.softmax(x, keyMask: keyMask, op: op)
  }

  public func meanPool(_ x: Value, padding: SecretPadding<Value>, site op: OpSite) async throws
    -> Value
  {
    try await recipe.meanPool(x, padding: padding, op: op)
  }

  public func meanPool(_ x: Value, validRows: Int, site op: OpSite) async throws -> Value {
    try await recipe.meanPool(x, validRows: validRows, op: op)
  }

  public func row(_ x: Value, _ index: Int, site op: OpSite) async throws -> Value {
    let shape = backend.shape(of: x)
    guard shape.count == 2, (0..<shape[0]).contains(index) else {
      throw MPCError.badShape(site(op, "row"), shape, "no row \(index)")
    }
    let d = shape[1]
    return try await backend.gather(
      x, indices: Array((index * d)..<((index + 1) * d)), shape: [1, d], site: site(op, "row"))
  }

  public func l2Normalize(_ x: Value, site op: OpSite) async throws -> Value {
    try await recipe.l2Normalize(x, op: op)
  }

  // MARK: Decoders

  public func rmsNorm(_ x: Value, gamma: WeightID, epsilon: Double, site op: OpSite) async throws
    -> Value
  {
    try await recipe.rmsNorm(x, gamma: gamma, epsilon: epsilon, op: op)
  }

  public func silu(_ x: Value, site op: OpSite) async throws -> Value {
    try await recipe.silu(x, op: op)
  }

  public func multiply(_ a: Value, _ b: Value, site op: OpSite) async throws -> Value {
    try await recipe.multiply(a, b, op: op)
  }

  public func rotary(_ x: Value, firstPosition: Int, theta: Double, site op: OpSite) async throws
    -> Value
  {
    try await recipe.rotary(x, firstPosition: firstPosition, theta: theta, op: op)
  }

  public func heads(_ x: Value, _ indices: [Int], site op: OpSite) async throws -> Value {
    let shape = backend.shape(of: x)
    guard shape.count == 3, indices.allSatisfy({ (0..<shape[0]).contains($0) }) else {
      throw MPCError.badShape(site(op, "heads"), shape, "no heads \(indices)")
    }
    let size = shape[1] * shape[2]
    return try await backend.gather(
      x, indices: indices.flatMap { Array(($0 * size)..<(($0 + 1) * size)) },
      shape: [indices.count, shape[1], shape[2]], site: site(op, "heads"))
  }

  public func concatenate(_ parts: [Value], axis: Int, site op: OpSite) async throws -> Value {
    try await backend.concatenate(parts, axis: axis, site: site(op, "concatenate"))
  }

  public func argmax(_ x: Value, site op: OpSite) async throws -> Value {
    try await recipe.argmax(x, op: op)
  }

  public func oneHot(_ index: Value, classes: Int, site op: OpSite) async throws -> Value {
    try await recipe.oneHot(index, classes: classes, op: op)
  }

  public func tableRows(_ oneHot: Value, table: WeightID, site op: OpSite) async throws -> Value {
    try await backend.tableProduct(oneHot, table: table, site: site(op, "tableRows"))
  }
}

/// The fixed-point in-the-clear engine: a recipe on plain integers mod 2^n, bit for bit
/// what the secure run computes, with value ranges and bound violations recorded.
public typealias FixedPointEngine = RecipeEngine<ClearBackend>

extension RecipeEngine where Backend == ClearBackend {
  /// Encodes the weights once at (n, f) from `parameters` (a weight that does not fit is an
  /// error) and builds the engine.
  public init(weights: Float64Weights, parameters: RecipeParameters = RecipeParameters()) throws {
    try parameters.validate()
    let format = try FixedPointFormat(
      bits: parameters.ringBits, fractionalBits: parameters.fractionalBits)
    try self.init(
      backend: ClearBackend(weights: ClearWeights(weights, format: format)), parameters: parameters)
  }

  /// Value ranges and violations of everything this engine has run.
  public var statistics: RangeRecorder { backend.recorder }

  /// The real numbers a value stands for.
  public func decode(_ value: FixedTensor) -> Tensor<Double> { value.decoded() }

  /// The sentence embedding of `ids` (the first `validTokens` real, the rest padding), decoded.
  public func sentenceEmbedding(_ bert: BertModel, ids: [Int], validTokens: Int? = nil) async throws
    -> [Double]
  {
    try await bert.sentenceEmbedding(TokenInput(ids: ids), validTokens: validTokens, engine: self)
      .decoded().scalars
  }
}

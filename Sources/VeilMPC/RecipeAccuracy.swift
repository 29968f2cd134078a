// Per-operation accuracy of a recipe's fixed-point arithmetic against Float64 (issue 8's
// accuracy table), on the fixed-point engine: GeLU on [−8, 8], exp(−z) on [0, 16], softmax rows
// of 128 logits in [−20, 20], the row-sum reciprocal on [1, 128], rsqrt over many octaves, and
// LayerNorm rows of d = 768 at spreads 0.1…30. The secure run computes the same integers (the
// tests check it), so these are the secure errors too.
import Foundation
import VeilModels
import VeilRing

/// The error of one operation over its input set.
public struct OpAccuracy: Sendable, Equatable {
  public var op: String
  /// The inputs, in words.
  public var inputs: String
  /// Absolute errors, or relative ones where `relative` says so.
  public var maxError: Double
  public var meanError: Double
  public var relative: Bool
  public var count: Int
  /// Bound violations the fixed-point engine recorded (a recipe's assumption broken).
  public var violations: Int
}

public enum RecipeAccuracy {
  /// Measures every operation of `parameters`' approximations.
  public static func measure(_ parameters: RecipeParameters, seed: UInt64 = 1) async throws
    -> [OpAccuracy]
  {
    var rows = [try await gelu(parameters)]
    if parameters.gelu != .secformer { rows.append(try await silu(parameters)) }
    return rows + [
      try await softmax(parameters, seed: seed), try await reciprocal(parameters),
      try await rsqrt(parameters, seed: seed), try await layerNorm(parameters, seed: seed),
      try await layerNorm(parameters, seed: seed, rms: true),
    ]
  }

  static let op = OpSite(layer: 0, kind: .add, index: 0)

  static func recipe(_ parameters: RecipeParameters, weights: [WeightID: Tensor<Double>] = [:])
    throws -> Recipe<ClearBackend>
  {
    let format = try FixedPointFormat(
      bits: parameters.ringBits, fractionalBits: parameters.fractionalBits)
    return try Recipe(
      backend: ClearBackend(
        weights: try ClearWeights(Float64Weights(tensors: weights), format: format)),
      parameters: parameters)
  }

  static func encode(
    _ reals: [Double], shape: [Int], _ parameters: RecipeParameters, scale: Int? = nil
  )
    throws -> FixedTensor
  {
    try FixedTensor(
      encoding: reals, shape: shape,
      format: WireFormat(bits: parameters.ringBits, scale: scale ?? parameters.fractionalBits))
  }

  static func summary(
    _ op: String, _ inputs: String, _ errors: [Double], relative: Bool = false,
    _ recipe: Recipe<ClearBackend>
  ) -> OpAccuracy {
    OpAccuracy(
      op: op, inputs: inputs, maxError: errors.max() ?? 0,
      meanError: errors.reduce(0, +) / Double(max(errors.count, 1)), relative: relative,
      count: errors.count, violations: recipe.backend.recorder.totalViolations)
  }

  static func gelu(_ parameters: RecipeParameters) async throws -> OpAccuracy {
    try await activation(parameters, "gelu", { try await $0.gelu($1, op: op) }) {
      0.5 * $0 * (1 + erf($0 / 2.0.squareRoot()))
    }
  }

  static func silu(_ parameters: RecipeParameters) async throws -> OpAccuracy {
    try await activation(parameters, "silu", { try await $0.silu($1, op: op) }) {
      $0 / (1 + exp(-$0))
    }
  }

  static func activation(
    _ parameters: RecipeParameters, _ name: String,
    _ secure: (Recipe<ClearBackend>, FixedTensor) async throws -> FixedTensor,
    reference: (Double) -> Double
  ) async throws -> OpAccuracy {
    let recipe = try recipe(parameters)
    let xs = (0...4096).map { -8 + Double($0) / 256 }
    let x = try encode(xs, shape: [xs.count], parameters)
    let y = try await secure(recipe, x).decoded().scalars
    let errors = zip(x.decoded().scalars, y).map { abs(reference($0) - $1) }
    return summary(name, "x on [−8, 8], step 1/256", errors, recipe)
  }

  static func softmax(_ parameters: RecipeParameters, seed: UInt64) async throws -> OpAccuracy {
    let recipe = try recipe(parameters)
    var rng = SplitMix64(seed: seed)
    let (rows, width) = (16, 128)
    let logits = (0..<(rows * width)).map { _ in Double.random(in: -20...20, using: &rng) }
    let x = try encode(logits, shape: [rows, width], parameters)
    let y = try await recipe.softmax(
      x, mask: AttentionMask(validKeys: width, causal: false), op: op
    ).decoded().scalars
    let decoded = x.decoded().scalars
    var errors: [Double] = []
    for r in 0..<rows {
      let row = decoded[(r * width)..<((r + 1) * width)]
      let top = row.max() ?? 0
      let e = row.map { exp($0 - top) }
      let total = e.reduce(0, +)
      for (j, v) in e.enumerated() { errors.append(abs(v / total - y[r * width + j])) }
    }
    return summary("softmax", "\(rows) rows of \(width) logits in [−20, 20]", errors, recipe)
  }

  static func reciprocal(_ parameters: RecipeParameters) async throws -> OpAccuracy {
    let recipe = try recipe(parameters)
    let terms = 128
    // Exponential sums lie in [1, T]; 2Quad sums of (x + 5)² terms in (0, T·4^q], of which
    // the upper 1/64 (|x + 5| ≳ 2 on average) is measured.
    let (low, high) =
      parameters.softmax == .secformer
      ? (
        Double(terms << (2 * parameters.quadBoundBits)) / 64,
        Double(terms << (2 * parameters.quadBoundBits))
      )
      : (1, Double(terms))
    let sums = (0..<512).map { low + (high - low) * Double($0) / 511 }
    let x = try encode(sums, shape: [sums.count, 1], parameters)
    let r = try await recipe.reciprocal(x, terms: terms, op: op).decoded().scalars
    let errors = zip(x.decoded().scalars, r).map { s, got in abs(got * s - 1) }
    return summary(
      "reciprocal", "row sums on [\(low), \(high)]", errors, relative: true, recipe)
  }

  static func rsqrt(_ parameters: RecipeParameters, seed: UInt64) async throws -> OpAccuracy {
    let recipe = try recipe(parameters)
    // LayerNorm's input: d·var at scale 2f for variances 2^−6 … 2^8 (d = 768).
    let d = 768.0
    let scale = 2 * parameters.fractionalBits
    var rng = SplitMix64(seed: seed)
    let variances = (0..<512).map { _ in exp2(Double.random(in: -6...8, using: &rng)) }
    let v = try encode(
      variances.map { $0 * d }, shape: [variances.count, 1], parameters, scale: scale)
    let r = try await recipe.rsqrt(v, numerator: d, op: op).decoded().scalars
    let errors = zip(variances, r).map { variance, got in abs(got * variance.squareRoot() - 1) }
    return summary(
      "rsqrt", "LayerNorm's d·var, var on [2^−6, 2^8], d = 768", errors, relative: true, recipe)
  }

  /// LayerNorm, or RMSNorm (no mean, no β) with `rms`.
  static func layerNorm(_ parameters: RecipeParameters, seed: UInt64, rms: Bool = false)
    async throws -> OpAccuracy
  {
    let d = 768
    var rng = SplitMix64(seed: seed)
    let gamma = try Tensor(shape: [d], scalars: [Double](repeating: 1, count: d))
    let beta = try Tensor(shape: [d], scalars: [Double](repeating: 0, count: d))
    let recipe = try recipe(parameters, weights: ["g": gamma, "b": beta])
    let spreads: [Double] = [0.1, 0.3, 1, 3, 10, 30]
    var rows: [Double] = []
    for spread in spreads {
      let offset = Double.random(in: -2...2, using: &rng)
      rows += (0..<d).map { _ in offset + spread * Double.random(in: -1.7...1.7, using: &rng) }
    }
    let x = try encode(rows, shape: [spreads.count, d], parameters)
    let normalized =
      try await rms
      ? recipe.rmsNorm(x, gamma: "g", epsilon: 1e-12, op: op)
      : recipe.layerNorm(x, gamma: "g", beta: "b", epsilon: 1e-12, op: op)
    let y = normalized.decoded().scalars
    let decoded = x.decoded().scalars
    var errors: [Double] = []
    for r in 0..<spreads.count {
      let row = decoded[(r * d)..<((r + 1) * d)]
      let mean = rms ? 0 : row.reduce(0, +) / Double(d)
      let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
      for (j, v) in row.enumerated() {
        errors.append(abs((v - mean) / variance.squareRoot() - y[r * d + j]))
      }
    }
    return summary(
      rms ? "rmsNorm" : "layerNorm", "rows of 768, spreads 0.1…30, γ = 1\(rms ? "" : ", β = 0")",
      errors, recipe)
  }
}

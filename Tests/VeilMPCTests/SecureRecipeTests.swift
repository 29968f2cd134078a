import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// One recipe operation, so a test can run it on any back end.
enum RecipeOp: Sendable {
  case gelu
  case softmax(AttentionMask)
  case layerNorm
  case reciprocal(terms: Int)
  case erfAngle
  case silu
  case rmsNorm
  case argmax
  case oneHot(classes: Int)
  case rotary(firstPosition: Int, theta: Double)

  static let gamma = WeightID("encoder.layer.0.output.LayerNorm.weight")
  static let beta = WeightID("encoder.layer.0.output.LayerNorm.bias")

  func apply<B: GateBackend>(_ recipe: Recipe<B>, _ x: B.Value) async throws -> B.Value {
    switch self {
    case .gelu: try await recipe.gelu(x, op: testOp)
    case .silu: try await recipe.silu(x, op: testOp)
    case .rmsNorm: try await recipe.rmsNorm(x, gamma: Self.gamma, epsilon: 1e-6, op: testOp)
    case .softmax(let mask): try await recipe.softmax(x, mask: mask, op: testOp)
    case .layerNorm:
      try await recipe.layerNorm(x, gamma: Self.gamma, beta: Self.beta, epsilon: 1e-12, op: testOp)
    case .reciprocal(let terms): try await recipe.reciprocal(x, terms: terms, op: testOp)
    case .erfAngle: try await recipe.erfAngle(x, op: testOp)
    case .argmax: try await recipe.argmax(x, op: testOp)
    case .oneHot(let classes): try await recipe.oneHot(x, classes: classes, op: testOp)
    case .rotary(let first, let theta):
      try await recipe.rotary(x, firstPosition: first, theta: theta, op: testOp)
    }
  }

  func secure<B: MaskedWireBackend>(_ backend: B, _ parameters: RecipeParameters, _ x: WireTensor)
    async throws -> WireTensor
  {
    try await apply(try Recipe(backend: backend, parameters: parameters), x)
  }
}

/// PUMA's and SecFormer's operations through the dealer and both parties: the reconstruction
/// equals the fixed-point engine (exactly, except SecFormer's sine series, whose products of
/// rounded public sines and rounded shares stay within its documented bound), and each
/// party's opened values are masked — the secure sine's opened angle is uniform modulo the
/// period even when every input is the same.
extension SecureGateTests {
  static func recipeModel(_ parameters: RecipeParameters) async throws -> SecureModel {
    try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
  }

  func clear(_ parameters: RecipeParameters, _ op: RecipeOp, _ input: Input) async throws -> [Int64]
  {
    let recipe = try Recipe(
      backend: try clearBackend(
        bits: parameters.ringBits, fractionalBits: parameters.fractionalBits),
      parameters: parameters)
    return try await op.apply(
      recipe, try FixedTensor(format: input.format, shape: input.shape, values: input.values)
    ).values
  }

  /// The secure output of `op` and the parties' views, with the clear one.
  func run(_ parameters: RecipeParameters, _ model: SecureModel, _ op: RecipeOp, _ input: Input)
    async throws -> (output: [Int64], expected: [Int64], views: [WireTensor])
  {
    let (output, views) = try await secure([input], model: model) { b, v in
      try await op.secure(b, parameters, v[0])
    }
    return (output, try await clear(parameters, op, input), views)
  }

  /// The masked check on the positions a value hides: softmax's padded and causally hidden
  /// keys are public zeros by design (their positions are public).
  func expectMasked(_ view: WireTensor, secret: [Int64], op: RecipeOp) {
    guard case .softmax(let mask) = op, let width = view.shape.last else {
      return expectMasked(view, secret: secret)
    }
    let queries = view.shape.count >= 2 ? view.shape[view.shape.count - 2] : 1
    let hidden = (0..<view.count).filter { i in
      let (query, key) = ((i / width) % queries, i % width)
      return key >= mask.visibleKeys(query: query)
    }
    let shown = view.values.indices.filter { !hidden.contains($0) }.map { view.values[$0] }
    let visible = WireTensor(view.format, [shown.count], shown)
    let kept = secret.indices.filter { !hidden.contains($0) }.map { secret[$0] }
    expectMasked(visible, secret: kept)
    #expect(hidden.allSatisfy { view.values[$0] == 0 && secret[$0] == 0 })
  }

  static func reals(
    _ shape: [Int], _ range: ClosedRange<Double>, scale: Int, bits: Int, seed: UInt64
  )
    -> Input
  {
    var rng = SplitMix64(seed: seed)
    return Input(
      format: WireFormat(bits: bits, scale: scale), shape: shape,
      values: (0..<shape.reduce(1, *)).map { _ in
        fixed(Double.random(in: range, using: &rng), scale: scale)
      })
  }

  @Test func pumaOperationsAreExactOnSecretShares() async throws {
    let parameters = RecipeParameters.preset(.puma)
    let (n, f) = (parameters.ringBits, parameters.fractionalBits)
    let model = try await Self.recipeModel(parameters)
    let cases: [(RecipeOp, Input)] = [
      (.gelu, Self.reals([300], -8...8, scale: f, bits: n, seed: 1)),
      (.silu, Self.reals([300], -10...10, scale: f, bits: n, seed: 11)),
      (.rmsNorm, Self.reals([4, 32], -3...3, scale: f, bits: n, seed: 12)),
      (
        .softmax(AttentionMask(validKeys: 6, causal: true)),
        Self.reals([2, 5, 8], -20...20, scale: f, bits: n, seed: 2)
      ),
      (
        .softmax(AttentionMask(validKeys: 8, causal: false)),
        Self.reals([3, 8], -20...20, scale: f, bits: n, seed: 3)
      ),
      (.layerNorm, Self.reals([6, 32], -6...6, scale: f, bits: n, seed: 4)),
      (.reciprocal(terms: 64), Self.reals([40, 1], 1...64, scale: f, bits: n, seed: 5)),
    ]
    for (op, input) in cases {
      let (output, expected, views) = try await run(parameters, model, op, input)
      #expect(output == expected, "\(op)")
      for view in views { expectMasked(view, secret: expected, op: op) }
    }
  }

  @Test func secFormerOperationsMatchTheFixedPointEngine() async throws {
    let parameters = RecipeParameters.preset(.secformer)
    let (n, f) = (parameters.ringBits, parameters.fractionalBits)
    let model = try await Self.recipeModel(parameters)
    let cases: [(RecipeOp, Input)] = [
      (
        .softmax(AttentionMask(validKeys: 7, causal: true)),
        Self.reals([2, 7, 7], -4...4, scale: f, bits: n, seed: 6)
      ),
      (.layerNorm, Self.reals([6, 32], -6...6, scale: f, bits: n, seed: 7)),
    ]
    for (op, input) in cases {
      let (output, expected, views) = try await run(parameters, model, op, input)
      #expect(output == expected, "\(op)")
      for view in views { expectMasked(view, secret: expected, op: op) }
    }
    // GeLU: erf is within one unit at scale f (the sine bound is ≈ 0.3 units there), so GeLU
    // = x·(1 + erf)/2 is within |x|/2 + 1 units.
    let x = Self.reals([400], -8...8, scale: f, bits: n, seed: 8)
    let (output, expected, views) = try await run(parameters, model, .gelu, x)
    var differing = 0
    for (i, (got, want)) in zip(output, expected).enumerated() {
      let bound = 2 + abs(Double(x.values[i])) / Double(1 << f) / 2
      #expect(Double(abs(got - want)) <= bound, "x = \(Double(x.values[i]) / Double(1 << f))")
      if got != want { differing += 1 }
    }
    print("SecFormer GeLU: \(differing) of \(output.count) outputs differ from the clear engine")
    for view in views { expectMasked(view, secret: expected) }
  }

  @Test func theSecureSineOpensAUniformAngleAndStaysWithinItsBound() async throws {
    let parameters = RecipeParameters.preset(.secformer)
    let (n, f) = (parameters.ringBits, parameters.fractionalBits)
    let model = try await Self.recipeModel(parameters)
    // Every input the same: the opened angle must still be uniform over the whole period.
    let count = 4096
    let same = Input(
      format: WireFormat(bits: n, scale: f), shape: [count],
      values: [Int64](repeating: fixed(1.25, scale: f), count: count))
    let (angles, expected, views) = try await run(parameters, model, .erfAngle, same)
    #expect(angles == expected)
    let angleBits = f + 6
    for view in views {
      var buckets = [Int](repeating: 0, count: 16)
      for v in view.values { buckets[Int(v >> UInt64(angleBits - 4))] += 1 }
      #expect(buckets.allSatisfy { abs($0 - count / 16) < count / 16 / 3 }, "\(buckets)")
    }
    // The series itself on random angles, against the rounded series.
    let coefficients = SecFormerCoefficients.erfSine
    let scale = 2 * (f + 5)
    var rng = SplitMix64(seed: 9)
    let phases = Input(
      format: WireFormat(bits: angleBits, scale: 0), shape: [500],
      values: (0..<500).map { _ in
        signedValue(rng.next() & ringMask(angleBits), bits: angleBits)
      })
    let (series, seriesViews) = try await secure([phases], model: model) { b, v in
      try await b.sineSeries(v[0], coefficients: coefficients, outputScale: scale, site: Self.site)
    }
    // The clear back end at the run's ring: only the ring width of the output matters.
    let reference = try await clearBackend(bits: n, fractionalBits: f).sineSeries(
      try FixedTensor(format: phases.format, shape: phases.shape, values: phases.values),
      coefficients: coefficients, outputScale: scale, site: Self.site
    ).values
    let publicScale = SineSeries.publicScale(scale)
    let bound =
      (coefficients.map(abs).reduce(0, +) + Double(coefficients.count))
      * Double(1 << (scale - publicScale)) + Double(coefficients.count)
    let worst = zip(series, reference).map { Double(abs($0 - $1)) }.max() ?? 0
    print("secure sine: worst difference \(worst) units at scale \(scale) (bound \(bound))")
    #expect(worst <= bound)
    for view in seriesViews { expectMasked(view, secret: reference) }
  }
}

extension SecureGateTests {
  @Test func sigmaSiluIsExactOnSecretShares() async throws {
    let parameters = RecipeParameters()
    let input = Self.reals([300], -20...20, scale: 12, bits: 50, seed: 13)
    let (output, expected, views) = try await run(
      parameters, try await Self.model.value, .silu, input)
    #expect(output == expected)
    for view in views { expectMasked(view, secret: expected) }
  }
}

// The plaintext Float64 reference engine: the exact functions (erf GeLU, exp softmax, sqrt
// LayerNorm) that every approximation is measured against.
import Foundation
import VeilRing

/// Weights as Float64 tensors, by id.
public struct Float64Weights: Sendable {
  public let tensors: [WeightID: Tensor<Double>]

  public init(tensors: [WeightID: Tensor<Double>]) { self.tensors = tensors }

  /// Loads and shape-checks every weight in `expected` from a safetensors file.
  public init(file: SafeTensorsFile, expected: [(WeightID, [Int])]) throws(ModelError) {
    var tensors: [WeightID: Tensor<Double>] = [:]
    for (id, shape) in expected { tensors[id] = try file.floats(id.name, expectedShape: shape) }
    self.tensors = tensors
  }

  public func tensor(_ id: WeightID) throws -> Tensor<Double> {
    guard let t = tensors[id] else { throw EngineError.unknownWeight(id.name) }
    return t
  }
}

/// Errors an engine raises for a graph it cannot run (a programming error in a graph, or a
/// weight set that does not belong to the model).
public enum EngineError: Error, Equatable, CustomStringConvertible {
  case unknownWeight(String)
  case missingTokenIds(OpSite)
  case badShape(OpSite, [Int], String)

  public var description: String {
    switch self {
    case .unknownWeight(let name): return "no weight named '\(name)'"
    case .missingTokenIds(let site): return "\(site): this engine needs the token ids"
    case .badShape(let site, let shape, let why): return "\(site): shape \(shape): \(why)"
    }
  }
}

/// Runs a graph in Float64.
public struct Float64Engine: InferenceEngine {
  public typealias Value = Tensor<Double>
  public let weights: Float64Weights

  public init(weights: Float64Weights) { self.weights = weights }

  public func shape(of value: Value) -> [Int] { value.shape }

  public func tokenEmbedding(_ tokens: TokenInput, table: WeightID, site: OpSite) async throws
    -> Value
  {
    guard let ids = tokens.ids else { throw EngineError.missingTokenIds(site) }
    return try weights.tensor(table).rows(ids)
  }

  public func publicRows(_ table: WeightID, rows: [Int], site: OpSite) async throws -> Value {
    try weights.tensor(table).rows(rows)
  }

  public func linear(_ x: Value, weight: WeightID, bias: WeightID?, site: OpSite) async throws
    -> Value
  {
    let product = try x.matmul(try weights.tensor(weight), transposeB: true)
    guard let bias else { return product }
    return try product.addingRowVector(try weights.tensor(bias))
  }

  public func add(_ a: Value, _ b: Value, site: OpSite) async throws -> Value { try a + b }

  public func layerNorm(_ x: Value, gamma: WeightID, beta: WeightID, epsilon: Double, site: OpSite)
    async throws
    -> Value
  {
    let g = try weights.tensor(gamma).scalars
    let b = try weights.tensor(beta).scalars
    let d = x.shape.last ?? 0
    guard d == g.count, d == b.count, d > 0 else {
      throw EngineError.badShape(site, x.shape, "γ/β have \(g.count)")
    }
    var out = x.scalars
    for start in stride(from: 0, to: x.count, by: d) {
      let row = x.scalars[start..<(start + d)]
      let mean = row.reduce(0, +) / Double(d)
      let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
      let inverse = 1 / (variance + epsilon).squareRoot()
      for j in 0..<d { out[start + j] = (x.scalars[start + j] - mean) * inverse * g[j] + b[j] }
    }
    return try Tensor(shape: x.shape, scalars: out)
  }

  public func gelu(_ x: Value, site: OpSite) async throws -> Value {
    x.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
  }

  public func geluTanh(_ x: Value, site: OpSite) async throws -> Value {
    let c = (2 / Double.pi).squareRoot()
    return x.map { 0.5 * $0 * (1 + tanh(c * ($0 + 0.044715 * $0 * $0 * $0))) }
  }

  public func splitHeads(_ x: Value, heads: Int, site: OpSite) async throws -> Value {
    guard x.rank == 2, heads > 0, x.shape[1] % heads == 0 else {
      throw EngineError.badShape(site, x.shape, "cannot split into \(heads) heads")
    }
    let (t, d) = (x.shape[0], x.shape[1])
    // [T, H, dh] → [H, T, dh]: transpose the first two axes via a [T, H·dh] → [H·dh, T] view.
    let dh = d / heads
    var out = [Double](repeating: 0, count: x.count)
    for i in 0..<t {
      for h in 0..<heads {
        for j in 0..<dh { out[(h * t + i) * dh + j] = x.scalars[i * d + h * dh + j] }
      }
    }
    return try Tensor(shape: [heads, t, dh], scalars: out)
  }

  public func mergeHeads(_ x: Value, site: OpSite) async throws -> Value {
    guard x.rank == 3 else { throw EngineError.badShape(site, x.shape, "expected [H, T, dh]") }
    let (heads, t, dh) = (x.shape[0], x.shape[1], x.shape[2])
    var out = [Double](repeating: 0, count: x.count)
    for h in 0..<heads {
      for i in 0..<t {
        for j in 0..<dh { out[i * heads * dh + h * dh + j] = x.scalars[(h * t + i) * dh + j] }
      }
    }
    return try Tensor(shape: [t, heads * dh], scalars: out)
  }

  public func attentionScores(_ q: Value, _ k: Value, scale: Double, site: OpSite) async throws
    -> Value
  {
    try q.matmul(k, transposeB: true).map { $0 * scale }
  }

  public func softmax(_ x: Value, mask: AttentionMask, site: OpSite) async throws -> Value {
    guard let width = x.shape.last, width > 0, x.rank >= 2 else {
      throw EngineError.badShape(site, x.shape, "softmax needs rows")
    }
    let rowsPerMatrix = x.shape[x.rank - 2]
    var out = [Double](repeating: 0, count: x.count)
    for (r, start) in stride(from: 0, to: x.count, by: width).enumerated() {
      let visible = min(width, mask.visibleKeys(query: r % rowsPerMatrix))
      guard visible > 0 else { continue }
      let row = x.scalars[start..<(start + visible)]
      let maximum = row.max() ?? 0
      var total = 0.0
      for j in 0..<visible {
        let e = exp(x.scalars[start + j] - maximum)
        out[start + j] = e
        total += e
      }
      for j in 0..<visible { out[start + j] /= total }
    }
    return try Tensor(shape: x.shape, scalars: out)
  }

  public func attentionContext(_ p: Value, _ v: Value, site: OpSite) async throws -> Value {
    try p.matmul(v)
  }

  public func meanPool(_ x: Value, validRows: Int, site: OpSite) async throws -> Value {
    guard x.rank == 2, validRows > 0, validRows <= x.shape[0] else {
      throw EngineError.badShape(site, x.shape, "cannot pool \(validRows) rows")
    }
    let d = x.shape[1]
    var out = [Double](repeating: 0, count: d)
    for i in 0..<validRows { for j in 0..<d { out[j] += x.scalars[i * d + j] } }
    return try Tensor(shape: [1, d], scalars: out.map { $0 / Double(validRows) })
  }

  public func secretPadding(_ tokens: TokenInput, site: OpSite) async throws
    -> SecretPadding<Value>
  {
    guard let real = tokens.realCount else { throw EngineError.missingTokenIds(site) }
    return SecretPadding(
      keyMask: try Tensor(
        shape: [1, tokens.count], scalars: (0..<tokens.count).map { $0 < real ? 1 : 0 }),
      inverseCount: try Tensor(shape: [1, 1], scalars: [1 / Double(real)]))
  }

  public func softmax(_ x: Value, keyMask: Value, site: OpSite) async throws -> Value {
    guard let width = x.shape.last, width > 0, x.rank >= 2, keyMask.shape == [1, width] else {
      throw EngineError.badShape(site, x.shape, "softmax needs rows and a key mask of their width")
    }
    var out = [Double](repeating: 0, count: x.count)
    let kept = (0..<width).filter { keyMask.scalars[$0] != 0 }
    for start in stride(from: 0, to: x.count, by: width) where !kept.isEmpty {
      let maximum = kept.map { x.scalars[start + $0] }.max() ?? 0
      var total = 0.0
      for j in kept {
        out[start + j] = exp(x.scalars[start + j] - maximum)
        total += out[start + j]
      }
      for j in kept { out[start + j] /= total }
    }
    return try Tensor(shape: x.shape, scalars: out)
  }

  public func meanPool(_ x: Value, padding: SecretPadding<Value>, site: OpSite) async throws
    -> Value
  {
    guard x.rank == 2, padding.keyMask.shape == [1, x.shape[0]] else {
      throw EngineError.badShape(
        site, x.shape, "cannot pool with a mask of \(padding.keyMask.shape)")
    }
    let d = x.shape[1]
    var out = [Double](repeating: 0, count: d)
    for i in 0..<x.shape[0] {
      let m = padding.keyMask.scalars[i]
      for j in 0..<d { out[j] += m * x.scalars[i * d + j] }
    }
    let inverse = padding.inverseCount.scalars[0]
    return try Tensor(shape: [1, d], scalars: out.map { $0 * inverse })
  }

  public func row(_ x: Value, _ index: Int, site: OpSite) async throws -> Value {
    guard x.rank == 2, (0..<x.shape[0]).contains(index) else {
      throw EngineError.badShape(site, x.shape, "no row \(index)")
    }
    let d = x.shape[1]
    return try Tensor(shape: [1, d], scalars: Array(x.scalars[(index * d)..<((index + 1) * d)]))
  }

  public func l2Normalize(_ x: Value, site: OpSite) async throws -> Value {
    guard let d = x.shape.last, d > 0 else {
      throw EngineError.badShape(site, x.shape, "nothing to normalise")
    }
    var out = x.scalars
    for start in stride(from: 0, to: x.count, by: d) {
      let norm = x.scalars[start..<(start + d)].reduce(0) { $0 + $1 * $1 }.squareRoot()
      // sentence-transformers clamps the norm at 1e-12 (torch.nn.functional.normalize).
      let divisor = max(norm, 1e-12)
      for j in 0..<d { out[start + j] /= divisor }
    }
    return try Tensor(shape: x.shape, scalars: out)
  }

  // MARK: Decoders

  public func rmsNorm(_ x: Value, gamma: WeightID, epsilon: Double, site: OpSite) async throws
    -> Value
  {
    let g = try weights.tensor(gamma).scalars
    let d = x.shape.last ?? 0
    guard d == g.count, d > 0 else { throw EngineError.badShape(site, x.shape, "γ has \(g.count)") }
    var out = x.scalars
    for start in stride(from: 0, to: x.count, by: d) {
      let meanSquare = x.scalars[start..<(start + d)].reduce(0) { $0 + $1 * $1 } / Double(d)
      let inverse = 1 / (meanSquare + epsilon).squareRoot()
      for j in 0..<d { out[start + j] = x.scalars[start + j] * inverse * g[j] }
    }
    return try Tensor(shape: x.shape, scalars: out)
  }

  public func silu(_ x: Value, site: OpSite) async throws -> Value { x.map { $0 / (1 + exp(-$0)) } }

  public func multiply(_ a: Value, _ b: Value, site: OpSite) async throws -> Value {
    guard a.shape == b.shape else {
      throw EngineError.badShape(site, b.shape, "expected \(a.shape)")
    }
    return try a.zip(b, operation: "multiply") { $0 * $1 }
  }

  public func rotary(_ x: Value, firstPosition: Int, theta: Double, site: OpSite) async throws
    -> Value
  {
    guard x.rank == 3, x.shape[2] % 2 == 0 else {
      throw EngineError.badShape(site, x.shape, "rotary needs [H, T, dh] with dh even")
    }
    let (heads, t, dh) = (x.shape[0], x.shape[1], x.shape[2])
    let half = dh / 2
    var out = x.scalars
    for i in 0..<t {
      for j in 0..<half {
        let angle = RotaryAngles.angle(
          position: firstPosition + i, pair: j, headDimension: dh, theta: theta)
        let (c, s) = (cos(angle), sin(angle))
        for h in 0..<heads {
          let base = (h * t + i) * dh
          let (a, b) = (x.scalars[base + j], x.scalars[base + j + half])
          out[base + j] = a * c - b * s
          out[base + j + half] = b * c + a * s
        }
      }
    }
    return try Tensor(shape: x.shape, scalars: out)
  }

  public func heads(_ x: Value, _ indices: [Int], site: OpSite) async throws -> Value {
    guard x.rank == 3, indices.allSatisfy({ (0..<x.shape[0]).contains($0) }) else {
      throw EngineError.badShape(site, x.shape, "no heads \(indices)")
    }
    let size = x.shape[1] * x.shape[2]
    var out: [Double] = []
    out.reserveCapacity(indices.count * size)
    for h in indices { out.append(contentsOf: x.scalars[(h * size)..<((h + 1) * size)]) }
    return try Tensor(shape: [indices.count, x.shape[1], x.shape[2]], scalars: out)
  }

  public func concatenate(_ parts: [Value], axis: Int, site: OpSite) async throws -> Value {
    try Tensor.concatenate(parts, axis: axis)
  }

  public func argmax(_ x: Value, site: OpSite) async throws -> Value {
    guard x.rank == 2, x.shape[0] == 1, x.count > 0 else {
      throw EngineError.badShape(site, x.shape, "argmax takes [1, V]")
    }
    var best = 0
    for (j, v) in x.scalars.enumerated() where v > x.scalars[best] { best = j }
    return try Tensor(shape: [1, 1], scalars: [Double(best)])
  }

  public func oneHot(_ index: Value, classes: Int, site: OpSite) async throws -> Value {
    guard index.count == 1, let i = Int(exactly: index.scalars[0]), (0..<classes).contains(i) else {
      throw EngineError.badShape(site, index.shape, "no class \(index.scalars) of \(classes)")
    }
    var out = [Double](repeating: 0, count: classes)
    out[i] = 1
    return try Tensor(shape: [1, classes], scalars: out)
  }

  public func tableRows(_ oneHot: Value, table: WeightID, site: OpSite) async throws -> Value {
    try oneHot.matmul(try weights.tensor(table))
  }
}

/// The rotary embedding's angles, shared by every engine so that they all rotate by the same
/// numbers: position p, pair j of a head of dh, p · θ^(−2j/dh) (Hugging Face's inv_freq).
public enum RotaryAngles {
  public static func angle(position: Int, pair j: Int, headDimension dh: Int, theta: Double)
    -> Double
  {
    Double(position) / pow(theta, Double(2 * j) / Double(dh))
  }
}

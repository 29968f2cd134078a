// The public description of one weight setup (DESIGN §3, §7, §10), which the owner announces
// and every role stores: the setup id, the architecture, the recipe and ring, and each weight's
// name, shape and layout. From it come the canonical, versioned model digest and graph digest
// that bind every key stream, and the graph a role walks. It holds no secret.
import Crypto
import Foundation
import VeilModels
import VeilRing

/// One weight as the setup shares it.
public struct SetupTensor: Codable, Sendable, Equatable {
  public var name: String
  public var shape: [Int]
  /// Shared in the transposed ([in, out]) layout that `linear` reads.
  public var transposed: Bool

  public var count: Int { shape.reduce(1, *) }
  /// Chunks of `WeightSetup.chunkElements`, each masked with its own seeds.
  public var chunkCount: Int { (count + WeightSetup.chunkElements - 1) / WeightSetup.chunkElements }
}

/// What every role knows of a setup.
public struct SetupManifest: Codable, Sendable, Equatable {
  public static let schema = "veil.setup/1"
  public var schema = SetupManifest.schema
  /// 32 hexadecimal digits, drawn by the owner from the system CSPRNG.
  public var setupID: String
  public var config: ModelConfig
  /// BERT's weight-name prefix ("" or "bert.").
  public var weightPrefix: String
  public var parameters: RecipeParameters
  /// Sorted by name: the order of the setup's messages and of every state file.
  public var tensors: [SetupTensor]

  /// The manifest of `model` with `weights`' shapes, under a fresh setup id.
  public init(model: any TransformerGraph, shapes: [WeightID: [Int]], parameters: RecipeParameters)
  {
    var generator = SystemRandomNumberGenerator()
    setupID = hex((0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    config = model.config
    weightPrefix = (model as? BertModel)?.prefix ?? ""
    self.parameters = parameters
    let tables = Set(model.embeddingTables)
    tensors = shapes.keys.sorted { $0.name < $1.name }.map { id in
      let shape = shapes[id] ?? []
      return SetupTensor(
        name: id.name, shape: shape, transposed: shape.count == 2 && !tables.contains(id))
    }
  }

  public var setupIDBytes: [UInt8] { bytes(hex: setupID) ?? [] }

  /// The graph the setup's weights belong to (public: config and prefix).
  public func graph() throws(MPCError) -> any TransformerGraph {
    switch config.architecture {
    case .bert: return BertModel(config: config, prefix: weightPrefix)
    case .gpt2: return GPT2Model(config: config)
    case .llama: return LlamaModel(config: config)
    }
  }

  /// Checks what a role must check before it trusts a manifest from a peer: its weights are
  /// those of `graph` (by default the graph its config names).
  public func validate(graph: (any TransformerGraph)? = nil) throws(MPCError) {
    guard schema == Self.schema else { throw .invalidParameters("setup schema \(schema)") }
    guard setupIDBytes.count == 16 else { throw .invalidParameters("setup id '\(setupID)'") }
    try parameters.validate()
    let checked: any TransformerGraph
    if let graph { checked = graph } else { checked = try self.graph() }
    let expected = checked.expectedWeights
    let mine = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.shape) })
    guard mine.count == tensors.count, mine.count == expected.count,
      expected.allSatisfy({ mine[$0.0.name] == $0.1 })
    else {
      throw .invalidParameters("the setup's weights do not fit its \(config.architecture) graph")
    }
    guard tensors.map(\.name) == tensors.map(\.name).sorted() else {
      throw .invalidParameters("the setup's weights are not in name order")
    }
  }

  /// Model digest = H(setup id ‖ config ‖ shapes ‖ n ‖ f ‖ recipe) (DESIGN §7), over a
  /// canonical, versioned encoding of public facts only: two builds on any machines agree.
  public var modelDigest: [UInt8] {
    var d = CanonicalDigest("veil.model-digest/1")
    d.bytes(setupIDBytes)
    d.string(config.architecture.rawValue)
    for v in [
      config.vocabularySize, config.hiddenSize, config.layers, config.heads, config.keyValueHeads,
      config.intermediateSize, config.maxPositions, config.typeVocabularySize,
      config.maxSequenceLength ?? 0, config.tiedEmbeddings ? 1 : 0,
    ] { d.int(v) }
    d.double(config.normEpsilon)
    d.double(config.ropeTheta)
    d.string(config.hiddenActivation)
    d.string(weightPrefix)
    d.parameters(parameters)
    d.int(tensors.count)
    for t in tensors {
      d.string(t.name)
      d.int(t.shape.count)
      for s in t.shape { d.int(s) }
      d.int(t.transposed ? 1 : 0)
    }
    return d.finish()
  }
}

/// SHA-256 over a tagged, length-prefixed, little-endian encoding (never Swift's
/// `description`, which may change between compiler versions).
struct CanonicalDigest {
  private var hasher = SHA256()

  init(_ tag: String) { string(tag) }

  mutating func bytes(_ b: [UInt8]) {
    int(b.count)
    hasher.update(data: b)
  }
  /// Memory as it is (little-endian words on every platform Veil builds for).
  mutating func raw(_ p: UnsafeRawBufferPointer) { hasher.update(bufferPointer: p) }
  mutating func string(_ s: String) { bytes(Array(s.utf8)) }
  mutating func int(_ v: Int) {
    hasher.update(
      data: withUnsafeBytes(of: UInt64(bitPattern: Int64(v)).littleEndian) { Array($0) })
  }
  mutating func double(_ v: Double) { int(Int(Int64(bitPattern: v.bitPattern))) }
  mutating func parameters(_ p: RecipeParameters) {
    string(p.recipeName)
    string(p.gelu.rawValue)
    string(p.softmax.rawValue)
    string(p.normalization.rawValue)
    int(Int(p.productTruncation.rawValue))
    int(p.roundProducts ? 1 : 0)
    for v in [
      p.ringBits, p.fractionalBits, p.geluInputScale, p.geluIndexBits, p.siluIndexBits,
      p.geluReducedBits,
      p.softmaxRingBits, p.expInputScale, p.expClipBits, p.reciprocalInputScale,
      p.reciprocalOutputScale, p.rsqrtMantissaBits, p.rsqrtOutputScale, p.layerNormSquareShift,
      p.expIterations, p.expCutoff, p.reciprocalIterations, p.divisionIterations,
      p.rsqrtIterations, p.rsqrtDeflationBits, p.quadBoundBits,
    ] { int(v) }
  }
  mutating func finish() -> [UInt8] { Array(hasher.finalize()) }
}

/// Lowercase hexadecimal digits of `b`.
public func hex(_ b: [UInt8]) -> String {
  let digits = Array("0123456789abcdef".utf8)
  return String(
    decoding: b.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
}

/// The bytes of an even-length hexadecimal string; nil if it is not one.
public func bytes(hex text: String) -> [UInt8]? {
  let digits = Array(text.utf8)
  guard digits.count % 2 == 0 else { return nil }
  var out: [UInt8] = []
  out.reserveCapacity(digits.count / 2)
  for i in stride(from: 0, to: digits.count, by: 2) {
    guard let high = hexDigit(digits[i]), let low = hexDigit(digits[i + 1]) else { return nil }
    out.append(high << 4 | low)
  }
  return out
}

private func hexDigit(_ c: UInt8) -> UInt8? {
  switch c {
  case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
  case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
  default: nil
  }
}

import Foundation
import Testing
import VeilFSS
import VeilModels
import VeilNet
import VeilRing
import VeilTestSupport

@testable import VeilMPC

/// Every gate of the dealer and party back ends on random secret inputs: the reconstruction
/// (a party's masked output minus the dealer's mask) equals the clear back end, and what a
/// party holds is masked (never the secret, top bits balanced).
@Suite(.serialized) struct SecureGateTests {
  static let config = TinyBert.config()
  static let weights = TinyBert.weights(config, seed: 5)
  static let parameters = RecipeParameters()
  static let model = Task {
    try await SecureModel(
      model: BertModel(config: config), weights: weights, parameters: parameters)
  }

  var format: WireFormat { WireFormat(bits: 50, scale: 12) }

  func clearBackend(bits: Int = 50, fractionalBits: Int = 12) throws -> ClearBackend {
    ClearBackend(
      weights: try ClearWeights(
        Self.weights, format: try FixedPointFormat(bits: bits, fractionalBits: fractionalBits)))
  }

  /// Secret inputs: signed values of a format and shape.
  struct Input: Sendable {
    let format: WireFormat
    let shape: [Int]
    let values: [Int64]
  }

  static func random(
    _ shape: [Int], magnitude: Int64, format: WireFormat = WireFormat(bits: 50, scale: 12),
    seed: UInt64
  )
    -> Input
  {
    var rng = SplitMix64(seed: seed)
    return Input(
      format: format, shape: shape,
      values: (0..<shape.reduce(1, *)).map { _ in
        Int64.random(in: -magnitude...magnitude, using: &rng)
      })
  }

  /// What each side ended with.
  actor Collected {
    var masks: WireTensor?
    var masked: [Int: WireTensor] = [:]
    func set(mask: WireTensor) { masks = mask }
    var recorders: [TranscriptChannel] = []
    func set(party: Int, _ value: WireTensor) { masked[party] = value }
    func set(recorders: [TranscriptChannel]) { self.recorders = recorders }
  }

  /// Runs `gate` at the dealer (on masks) and at both parties (on masked inputs) and returns
  /// the unmasked output and both parties' masked outputs.
  func secure(
    _ inputs: [Input], model: SecureModel? = nil,
    _ gate: @escaping @Sendable (any MaskedWireBackend, [WireTensor]) async throws -> WireTensor
  ) async throws -> (output: [Int64], views: [WireTensor]) {
    let model = if let model { model } else { try await Self.model.value }
    var random = try SecureRandom()
    let masks = inputs.map { input in
      WireTensor(
        input.format, input.shape, random.elements(input.values.count, bits: input.format.bits))
    }
    let masked = zip(inputs, masks).map { input, mask in
      WireTensor(
        input.format, input.shape,
        zip(input.values, mask.values).map {
          (UInt64(bitPattern: $0) &+ $1) & ringMask(input.format.bits)
        })
    }
    let collected = Collected()
    let zeros = inputs.map {
      WireTensor($0.format, $0.shape, [UInt64](repeating: 0, count: $0.values.count))
    }
    _ = try await model.run(
      tokens: 1, valid: 1, census: { _ = try await gate($0, zeros) }, options: RunOptions(),
      dealer: { dealer in await collected.set(mask: try await gate(dealer, masks)) },
      party: { party in await collected.set(party: party.party, try await gate(party, masked)) },
      client: { keys, _, _ in
        try await keys.finish(afterOp: 0)
        return []
      })
    let mask = try #require(await collected.masks)
    let views = await [collected.masked[0]!, collected.masked[1]!]
    #expect(views[0] == views[1], "both parties hold the same masked wire")
    let bits = mask.format.bits
    let output = zip(views[0].values, mask.values).map {
      signedValue(($0 &- $1) & ringMask(bits), bits: bits)
    }
    return (output, views)
  }

  /// The clear back end on the same inputs.
  func clear(_ inputs: [Input], _ gate: (ClearBackend, [FixedTensor]) async throws -> FixedTensor)
    async throws
    -> [Int64]
  {
    let tensors = try inputs.map {
      try FixedTensor(format: $0.format, shape: $0.shape, values: $0.values)
    }
    return try await gate(try clearBackend(), tensors).values
  }

  /// A masked wire never shows the secret and its top bit is balanced.
  func expectMasked(
    _ view: WireTensor, secret: [Int64], sourceLocation: SourceLocation = #_sourceLocation
  ) {
    let bits = view.format.bits
    let plain = secret.map { UInt64(bitPattern: $0) & ringMask(bits) }
    let equal = zip(view.values, plain).filter { $0 == $1 }.count
    #expect(
      equal <= max(1, view.count / 100), "\(equal) of \(view.count) masked values equal the secret",
      sourceLocation: sourceLocation)
    if view.count >= 200 && bits >= 8 {
      let top = view.values.filter { ($0 >> UInt64(bits - 1)) & 1 == 1 }.count
      let fraction = Double(top) / Double(view.count)
      #expect(
        abs(fraction - 0.5) < 0.12, "top bit set in \(fraction) of masked values",
        sourceLocation: sourceLocation)
    }
  }

  func check(
    _ inputs: [Input],
    secure gate:
      @escaping @Sendable (any MaskedWireBackend, [WireTensor]) async throws -> WireTensor,
    clear reference: (ClearBackend, [FixedTensor]) async throws -> FixedTensor,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    let (output, views) = try await secure(inputs, gate)
    let expected = try await clear(inputs, reference)
    #expect(output == expected, sourceLocation: sourceLocation)
    for view in views { expectMasked(view, secret: expected, sourceLocation: sourceLocation) }
  }

  static let site = GateSite(op: OpSite(layer: 0, kind: .linear, index: 0), gate: "test")
  static let query = WeightID("encoder.layer.0.attention.self.query.weight")
  static let gamma = WeightID("encoder.layer.0.output.LayerNorm.weight")
  static let bias = WeightID("encoder.layer.0.intermediate.dense.bias")

  @Test func linearWithOnceMaskedWeights() async throws {
    let x = Self.random([7, 32], magnitude: 1 << 14, seed: 1)
    try await check(
      [x], secure: { b, v in try await b.linear(v[0], weight: Self.query, site: Self.site) },
      clear: { b, v in try await b.linear(v[0], weight: Self.query, site: Self.site) })
  }

  @Test func weightProductAndBias() async throws {
    let x = Self.random([9, 32], magnitude: 1 << 14, seed: 2)
    try await check(
      [x],
      secure: { b, v in try await b.multiplyWeight(v[0], weight: Self.gamma, site: Self.site) },
      clear: { b, v in try await b.multiplyWeight(v[0], weight: Self.gamma, site: Self.site) })
    let y = Self.random([3, 128], magnitude: 1 << 14, seed: 3)
    try await check(
      [y], secure: { b, v in try await b.addWeight(v[0], bias: Self.bias, site: Self.site) },
      clear: { b, v in try await b.addWeight(v[0], bias: Self.bias, site: Self.site) })
  }

  @Test func productsOfTwoSecrets() async throws {
    let a = Self.random([6, 40], magnitude: 1 << 16, seed: 4)
    let b = Self.random([6, 40], magnitude: 1 << 16, seed: 5)
    try await check(
      [a, b], secure: { be, v in try await be.multiply(v[0], v[1], site: Self.site) },
      clear: { be, v in try await be.multiply(v[0], v[1], site: Self.site) })
    try await check(
      [a], secure: { be, v in try await be.square(v[0], site: Self.site) },
      clear: { be, v in try await be.square(v[0], site: Self.site) })
    let q = Self.random([2, 5, 8], magnitude: 1 << 14, seed: 6)
    let k = Self.random([2, 7, 8], magnitude: 1 << 14, seed: 7)
    let v = Self.random([2, 5, 3], magnitude: 1 << 14, seed: 8)
    try await check(
      [q, k],
      secure: { be, t in try await be.matmul(t[0], t[1], transposeB: true, site: Self.site) },
      clear: { be, t in try await be.matmul(t[0], t[1], transposeB: true, site: Self.site) })
    let p = Self.random([2, 7, 5], magnitude: 1 << 12, seed: 9)
    try await check(
      [p, v],
      secure: { be, t in try await be.matmul(t[0], t[1], transposeB: false, site: Self.site) },
      clear: { be, t in try await be.matmul(t[0], t[1], transposeB: false, site: Self.site) })
  }

  @Test(arguments: [TruncationKind.reduce, .slack, .signExtend])
  func exactTruncations(kind: TruncationKind) async throws {
    let (shift, outputBits, magnitude): (Int, Int, Int64) =
      switch kind {
      case .reduce: (12, 38, 1 << 40)
      case .slack: (12, 50, 1 << 40)
      case .signExtend: (0, 64, 1 << 40)
      }
    let x = Self.random([500], magnitude: magnitude, seed: 10)
    try await check(
      [x],
      secure: { b, v in
        try await b.truncate(
          v[0], kind: kind, shift: shift, outputBits: outputBits, site: Self.site)
      },
      clear: { b, v in
        try await b.truncate(
          v[0], kind: kind, shift: shift, outputBits: outputBits, site: Self.site)
      })
  }

  @Test func compareSelectAndLookup() async throws {
    let x = Self.random([400], magnitude: 1 << 20, seed: 11)
    let offsets: [Int64] = [0, -(1 << 19), 1 << 19]
    // compare → select: the selected values reveal the comparison bits through the clear check.
    for i in offsets.indices {
      try await check(
        [x],
        secure: { b, v in
          let bits = try await b.compare(v[0], offsets: offsets, site: Self.site)
          let one = try await b.gather(
            bits: bits, indices: (0..<400).map { $0 * 3 + i }, shape: [400], site: Self.site)
          return try await b.select(one, v[0], site: Self.site)
        },
        clear: { b, v in
          let bits = try await b.compare(v[0], offsets: offsets, site: Self.site)
          let one = try await b.gather(
            bits: bits, indices: (0..<400).map { $0 * 3 + i }, shape: [400], site: Self.site)
          return try await b.select(one, v[0], site: Self.site)
        })
    }
    let table = try LookupTable(
      name: "test", inputBits: 8, output: WireFormat(bits: 50, scale: 12),
      entries: (0..<256).map { Int64($0 * $0) - 30_000 })
    let index = Self.random([300], magnitude: 127, format: WireFormat(bits: 8, scale: 0), seed: 12)
    try await check(
      [index], secure: { b, v in try await b.lookup(v[0], table: table, site: Self.site) },
      clear: { b, v in try await b.lookup(v[0], table: table, site: Self.site) })
  }

  @Test func batchedLookupsAndDeferredOpenings() async throws {
    let square = try LookupTable(
      name: "square", inputBits: 8, output: WireFormat(bits: 50, scale: 12),
      entries: (0..<256).map { Int64($0 * $0) - 30_000 })
    let cube = try LookupTable(
      name: "cube", inputBits: 6, output: WireFormat(bits: 50, scale: 12),
      entries: (0..<64).map { Int64($0 * $0 * $0) - 100_000 })
    let first = Self.random([300], magnitude: 127, format: WireFormat(bits: 8, scale: 0), seed: 14)
    let second = Self.random([300], magnitude: 31, format: WireFormat(bits: 6, scale: 0), seed: 15)
    // Two tables in one batch, opened together; their difference equals the clear one.
    try await check(
      [first, second],
      secure: { b, v in
        let out = try await b.lookups(v, tables: [square, cube], open: true, site: Self.site)
        return try await b.subtract(out[0], out[1], site: Self.site)
      },
      clear: { b, v in
        try await b.subtract(
          try await b.lookup(v[0], table: square, site: Self.site),
          try await b.lookup(v[1], table: cube, site: Self.site),
          site: Self.site)
      })
    // A select and a lookup left unopened, subtracted, opened once (GeLU's ending).
    let x = Self.random([300], magnitude: 1 << 20, seed: 16)
    let index = Self.random([300], magnitude: 127, format: WireFormat(bits: 8, scale: 0), seed: 17)
    try await check(
      [x, index],
      secure: { b, v in
        let bits = try await b.gather(
          bits: try await b.compare(v[0], offsets: [0], site: Self.site), indices: Array(0..<300),
          shape: [300],
          site: Self.site)
        let relu = try await b.selectUnopened(bits, v[0], site: Self.site)
        let table = try await b.lookups([v[1]], tables: [square], open: false, site: Self.site)[0]
        return try await b.open(try await b.subtract(relu, table, site: Self.site), site: Self.site)
      },
      clear: { b, v in
        let bits = try await b.gather(
          bits: try await b.compare(v[0], offsets: [0], site: Self.site), indices: Array(0..<300),
          shape: [300],
          site: Self.site)
        return try await b.subtract(
          try await b.select(bits, v[0], site: Self.site),
          try await b.lookup(v[1], table: square, site: Self.site),
          site: Self.site)
      })
  }

  /// Tensors above `keyChunkElements` take several key records per gate (bounded memory) and
  /// still open once: compare + select, truncation and a batch of lookups, against the clear
  /// back end.
  @Test func gatesLargerThanAKeyChunkSpanSeveralRecords() async throws {
    let count = 2 * keyChunkElements + 5
    let x = Self.random([count], magnitude: 1 << 20, seed: 19)
    try await check(
      [x],
      secure: { b, v in
        let bits = try await b.gather(
          bits: try await b.compare(v[0], offsets: [0, 1 << 19], site: Self.site),
          indices: (0..<count).map { 2 * $0 + 1 }, shape: [count], site: Self.site)
        let selected = try await b.select(bits, v[0], site: Self.site)
        return try await b.truncate(
          selected, kind: .slack, shift: 12, outputBits: 50, site: Self.site)
      },
      clear: { b, v in
        let bits = try await b.gather(
          bits: try await b.compare(v[0], offsets: [0, 1 << 19], site: Self.site),
          indices: (0..<count).map { 2 * $0 + 1 }, shape: [count], site: Self.site)
        let selected = try await b.select(bits, v[0], site: Self.site)
        return try await b.truncate(
          selected, kind: .slack, shift: 12, outputBits: 50, site: Self.site)
      })
    let table = try LookupTable(
      name: "ramp", inputBits: 8, output: WireFormat(bits: 50, scale: 12),
      entries: (0..<256).map { Int64($0) * 7 - 900 })
    let index = Self.random(
      [count], magnitude: 127, format: WireFormat(bits: 8, scale: 0), seed: 20)
    try await check(
      [index, index],
      secure: { b, v in
        let out = try await b.lookups(v, tables: [table, table], open: true, site: Self.site)
        return try await b.add(out[0], out[1], site: Self.site)
      },
      clear: { b, v in
        let one = try await b.lookup(v[0], table: table, site: Self.site)
        return try await b.add(one, one, site: Self.site)
      })
  }

  @Test func anUnopenedValueIsRefusedWhereAWireIsNeeded() async throws {
    let x = Self.random([20], magnitude: 1 << 20, seed: 18)
    let misuses:
      [@Sendable (any MaskedWireBackend, WireTensor, WireTensor) async throws -> WireTensor] = [
        { b, unopened, x in try await b.multiply(unopened, x, site: Self.site) },
        { b, unopened, x in try await b.add(unopened, x, site: Self.site) },
        { b, unopened, _ in try await b.addConstant(unopened, 1, site: Self.site) },
      ]
    for misuse in misuses {
      // Both sides refuse (the dealer first), and the run ends instead of leaving a role waiting.
      let error = await #expect(throws: MPCError.self) {
        _ = try await secure([x]) { b, v in
          let bits = try await b.gather(
            bits: try await b.compare(v[0], offsets: [0], site: Self.site), indices: Array(0..<20),
            shape: [20],
            site: Self.site)
          return try await misuse(b, try await b.selectUnopened(bits, v[0], site: Self.site), v[0])
        }
      }
      #expect(error.map { "\($0)".contains("unopened") } == true, "\(String(describing: error))")
    }
  }

  /// Records what one end sends (the client's masked one-hot rows) and forwards everything.
  /// The secure embedding lookup: the client's output equals the clear rows; the message each
  /// server gets from the client is a masked one-hot matrix (no 0/1 pattern, balanced top bit,
  /// fresh per run, so equal ids give unrelated messages); the parties' masked rows are masked.
  @Test func embeddingLookupHidesTheTokenIDs() async throws {
    let model = try await Self.model.value
    let table = WeightID("embeddings.word_embeddings.weight")
    let vocabulary = Self.config.vocabularySize
    let ids = (0..<64).map { $0 < 2 ? 3 : ($0 * 7) % vocabulary }
    let tokens = TokenInput(ids: ids)
    let expected = try await clear([]) { b, _ in
      try await b.tokenEmbedding(tokens, table: table, site: Self.site)
    }
    var messages: [[UInt64]] = []
    for _ in 0..<2 {
      let collected = Collected()
      let (output, _) = try await model.run(
        tokens: ids.count, valid: ids.count,
        census: { walker in
          let rows = try await walker.tokenEmbedding(
            TokenInput(hiddenCount: ids.count), table: table, site: Self.site)
          _ = try await walker.reveal(rows, site: Self.site)
        }, options: RunOptions(),
        dealer: { dealer in
          let rows = try await dealer.tokenEmbedding(
            TokenInput(hiddenCount: ids.count), table: table, site: Self.site)
          await collected.set(mask: rows)
          _ = try await dealer.reveal(rows, site: Self.site)
        },
        party: { party in
          let rows = try await party.tokenEmbedding(
            TokenInput(hiddenCount: ids.count), table: table, site: Self.site)
          await collected.set(party: party.party, rows)
          _ = try await party.reveal(rows, site: Self.site)
        },
        client: { keys, parties, _ in
          let recording = parties.map { TranscriptChannel($0) }
          await collected.set(recorders: recording)
          return try await SecureClient.run(
            ids: ids, vocabulary: vocabulary, bits: 50, keys: keys, parties: recording)
        })
      #expect(output == expected, "the client reconstructs the clear embedding rows")
      for view in await [collected.masked[0]!, collected.masked[1]!] {
        expectMasked(view, secret: expected)
      }
      let sent = await collected.recorders.map { $0.sent }
      #expect(
        sent.count == 2 && sent[0].count == 1 && sent[0] == sent[1],
        "one masked matrix, the same to both servers")
      let hat = BitPacking.unpack(sent[0][0], bits: 50, count: ids.count * vocabulary)
      let oneHotLike = hat.filter { $0 <= 1 }.count
      #expect(oneHotLike <= 1, "\(oneHotLike) of \(hat.count) masked one-hot entries are 0 or 1")
      let atIDs = ids.enumerated().map { hat[$0.offset * vocabulary + $0.element] }
      #expect(!atIDs.contains(1), "a token's own entry is masked")
      let top = hat.filter { $0 >> 49 == 1 }.count
      #expect(
        abs(Double(top) / Double(hat.count) - 0.5) < 0.05,
        "top bit set in \(top) of \(hat.count) entries")
      messages.append(hat)
    }
    let same = zip(messages[0], messages[1]).filter { $0 == $1 }.count
    #expect(same <= 1, "two runs on the same ids send unrelated messages (\(same) equal entries)")
  }

  @Test func aPartyRefusesAKeyOfAnotherGate() async throws {
    let x = Self.random([10], magnitude: 1 << 20, seed: 13)
    let model = try await Self.model.value
    let mask = WireTensor(x.format, x.shape, [UInt64](repeating: 0, count: 10))
    let masked = WireTensor(
      x.format, x.shape, x.values.map { UInt64(bitPattern: $0) & ringMask(50) })
    await #expect(throws: MPCError.self) {
      _ = try await model.run(
        tokens: 1, valid: 1, census: { _ = try await $0.square(mask, site: Self.site) },
        options: RunOptions(),
        dealer: { dealer in _ = try await dealer.square(mask, site: Self.site) },
        party: { party in _ = try await party.compare(masked, offsets: [0], site: Self.site) },
        client: { keys, _, _ in
          try await keys.finish(afterOp: 0)
          return []
        })
    }
  }
}

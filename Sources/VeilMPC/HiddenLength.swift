// HiddenLength owns a run that hides its real length (issue 18): the text is padded to a
// public bucket, and which rows are real is a secret input of the client's, never a public
// parameter. Two client inputs enter the graph before the embedding — the key mask m ∈ {0,1}^T
// (scale 0) and 1/count (scale f) — and the recipe uses them in two places:
// - every softmax adds B·(m − 1) to each row's scores (local), so a padded key sits B below the
//   real ones: the max is a real key's and a padded key's exp(−z) falls past the exp clip
//   (SIGMA's table gives exactly 0, PUMA's iteration exp(−cutoff)); SecFormer's 2Quad has no
//   clip and is refused;
// - the pooling takes Σ m_i·x_i (one secret product per element, m at scale 0: no truncation)
//   times 1/count (one product and one exact truncation).
// B = 2^(softmaxRingBits − 3) units keeps the biased scores inside the softmax ring's input
// bound while real scores stay below 2^(softmaxRingBits − 3) (the fixed-point engine's range
// check reports any that do not), and puts a padded key ≥ 2^(softmaxRingBits − 4) units
// (1024 at SIGMA's ring and scale) below the max, far past the clip.
import VeilFSS
import VeilModels

/// The values of a hidden-length run's client inputs, computed alike by the client (which masks
/// and sends them) and the fixed-point engine (which reads them in the clear).
public enum HiddenLengthInputs {
  /// `ids` padded with `padID` to the next multiple of `bucket` (at most `limit`): what every
  /// role but the client sees of the text is that bucket.
  public static func pad(_ ids: [Int], to bucket: Int, limit: Int, padID: Int) throws(MPCError)
    -> [Int]
  {
    guard bucket >= 1 else { throw .invalidParameters("--pad-to must be at least 1") }
    guard !ids.isEmpty, ids.count <= limit else {
      throw .invalidParameters("\(ids.count) tokens cannot be padded within the model's \(limit)")
    }
    let padded = min(limit, (ids.count + bucket - 1) / bucket * bucket)
    return ids + [Int](repeating: padID, count: padded - ids.count)
  }

  /// The key mask [1, count] (1 for the first `real` rows) and round(2^f / real) [1, 1].
  public static func values(real: Int, count: Int, fractionalBits f: Int) -> [[Int64]] {
    [
      (0..<count).map { $0 < real ? 1 : 0 },
      [(Int64(1) << Int64(f) + Int64(real) / 2) / Int64(real)],
    ]
  }
}

extension Recipe {
  /// The client's two inputs, key mask then 1/count; their values only where the ids are seen.
  public func secretPadding(_ tokens: TokenInput, op: OpSite) async throws
    -> SecretPadding<Backend.Value>
  {
    guard tokens.hidesLength else {
      throw MPCError.protocolViolation("\(op): padding inputs of a run that shows its length")
    }
    guard parameters.softmax != .secformer else {
      throw MPCError.invalidParameters(
        "hiding the length needs a softmax that clips exp (SIGMA or PUMA), not SecFormer's 2Quad")
    }
    let f = parameters.fractionalBits
    let values = tokens.realCount.map {
      HiddenLengthInputs.values(real: $0, count: tokens.count, fractionalBits: f)
    }
    let bits = b.inputFormat.bits
    let keyMask = try await b.clientInput(
      values?[0], shape: [1, tokens.count], format: WireFormat(bits: bits, scale: 0),
      site: site(op, "padding.keyMask"))
    let inverse = try await b.clientInput(
      values?[1], shape: [1, 1], format: WireFormat(bits: bits, scale: f),
      site: site(op, "padding.inverseCount"))
    return SecretPadding(keyMask: keyMask, inverseCount: inverse)
  }

  /// Softmax with the secret key mask: B·(m − 1) added to every row (local), then the ordinary
  /// softmax over all keys.
  public func softmax(_ x: Backend.Value, keyMask: Backend.Value, op: OpSite) async throws
    -> Backend.Value
  {
    let shape = b.shape(of: x)
    guard shape.count >= 2, let width = shape.last, b.shape(of: keyMask) == [1, width] else {
      throw MPCError.badShape(site(op, "softmax.keyMask"), shape, "a key mask of another width")
    }
    let rows = shape.reduce(1, *) / width
    let gap = Int64(1) << Int64(parameters.softmaxRingBits - 3)
    let scaled = try await b.withScale(
      try await b.multiplyConstant(
        keyMask, gap, fractionalBits: 0, site: site(op, "softmax.keyMask")),
      b.format(of: x).scale, site: site(op, "softmax.keyMask"))
    let bias = try await b.addConstant(scaled, -gap, site: site(op, "softmax.keyMask"))
    let spread = try await b.gather(
      bias, indices: (0..<(rows * width)).map { $0 % width }, shape: [rows, width],
      site: site(op, "softmax.keyMask"))
    let biased = try await b.add(
      try await reshape(x, [rows, width], op), spread, site: site(op, "softmax.keyMask"))
    let probabilities = try await softmax(biased, mask: AttentionMask(validKeys: width), op: op)
    return try await reshape(probabilities, shape, op)
  }

  /// Σ_i m_i·x_i over [T, d] (secret products with m at scale 0), times 1/count, truncated.
  public func meanPool(_ x: Backend.Value, padding: SecretPadding<Backend.Value>, op: OpSite)
    async throws -> Backend.Value
  {
    let shape = b.shape(of: x)
    guard shape.count == 2, b.shape(of: padding.keyMask) == [1, shape[0]] else {
      throw MPCError.badShape(site(op, "pool"), shape, "a key mask of another length")
    }
    let (t, d) = (shape[0], shape[1])
    let rowMask = try await b.gather(
      padding.keyMask, indices: (0..<(t * d)).map { $0 / d }, shape: [t, d],
      site: site(op, "pool.mask"))
    let kept = try await b.multiply(x, rowMask, site: site(op, "pool.mask"))
    let sums = try await columnSums(kept, rows: t, op: op)
    let inverse = try await b.gather(
      padding.inverseCount, indices: [Int](repeating: 0, count: d), shape: b.shape(of: sums),
      site: site(op, "pool.inverse"))
    let product = try await b.multiply(sums, inverse, site: site(op, "pool.mean"))
    let mean = try await truncateProduct(
      product, by: b.format(of: inverse).scale, gate: "pool.meanTruncate", op: op)
    return try await reshape(mean, [1, d], op)
  }
}

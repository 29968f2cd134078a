// The decoder's steps over a gate back end (LLaMA and generation): the secret elementwise
// product, rotary position embeddings as local arithmetic with public angles, and the secure
// next token — an argmax tree that carries the index beside the value, the index's one-hot row
// from one DReLU key, and that row times the embedding table. Nothing here opens a logit, an
// index or a token: the parties only ever see masked wires.
import Foundation
import VeilFSS
import VeilModels

extension Recipe {
  /// a ⊙ b at a's scale: one Beaver product and one exact truncation.
  public func multiply(_ a: Backend.Value, _ c: Backend.Value, op: OpSite) async throws
    -> Backend.Value
  {
    let product = try await b.multiply(a, c, site: site(op, "multiply.product"))
    return try await truncateProduct(
      product, by: b.format(of: c).scale, gate: "multiply.truncate", op: op)
  }

  /// Rotary embedding of [H, T, dh] (rotate-half layout, positions firstPosition…): x·cos plus
  /// the half-swapped x times ∓sin, both with public fixed-point coefficients at scale f (local),
  /// then one truncation by f. The angles are the ones every engine uses (`RotaryAngles`).
  public func rotary(_ x: Backend.Value, firstPosition: Int, theta: Double, op: OpSite)
    async throws -> Backend.Value
  {
    let shape = b.shape(of: x)
    guard shape.count == 3, shape[2] % 2 == 0, firstPosition >= 0 else {
      throw MPCError.badShape(site(op, "rotary"), shape, "rotary needs [H, T, dh] with dh even")
    }
    let (heads, t, dh) = (shape[0], shape[1], shape[2])
    let half = dh / 2
    let f = parameters.fractionalBits
    let count = heads * t * dh
    var cosines = [Int64](repeating: 0, count: count)
    var sines = [Int64](repeating: 0, count: count)
    var swapped = [Int](repeating: 0, count: count)
    for i in 0..<t {
      for j in 0..<half {
        let angle = RotaryAngles.angle(
          position: firstPosition + i, pair: j, headDimension: dh, theta: theta)
        let (c, s) = (fixed(cos(angle), scale: f), fixed(sin(angle), scale: f))
        for h in 0..<heads {
          let base = (h * t + i) * dh
          cosines[base + j] = c
          cosines[base + j + half] = c
          // out_j = x_j·cos − x_(j+half)·sin; out_(j+half) = x_(j+half)·cos + x_j·sin.
          sines[base + j] = -s
          sines[base + j + half] = s
          swapped[base + j] = base + j + half
          swapped[base + j + half] = base + j
        }
      }
    }
    let direct = try await b.multiplyConstants(
      x, cosines, fractionalBits: f, site: site(op, "rotary.cos"))
    let partner = try await b.gather(
      x, indices: swapped, shape: shape, site: site(op, "rotary.swap"))
    let crossed = try await b.multiplyConstants(
      partner, sines, fractionalBits: f, site: site(op, "rotary.sin"))
    return try await truncateProduct(
      try await b.add(direct, crossed, site: site(op, "rotary.sum")), by: f,
      gate: "rotary.truncate", op: op)
  }

  /// The index of the largest of [1, V] (the first on ties) as a secret [1, 1] integer at
  /// scale 0, in the softmax ring (bounded as softmax's scores are): a tree of ⌈log2 V⌉
  /// levels over neighbouring pairs, so the left candidate always holds the lower indices and
  /// "left ≥ right keeps left" is the first maximum. Each level is one DReLU on the value
  /// differences and one select on the value and index differences together.
  public func argmax(_ x: Backend.Value, op: OpSite) async throws -> Backend.Value {
    let shape = b.shape(of: x)
    guard shape.count == 2, shape[0] == 1, shape[1] >= 1 else {
      throw MPCError.badShape(site(op, "argmax"), shape, "argmax takes [1, V]")
    }
    var width = shape[1]
    var values = x
    let ringBits = parameters.softmaxRingBits
    if ringBits < b.format(of: values).bits {
      let bound = Int64(1) << Int64(ringBits - 2)
      try await b.assertRange(
        values, (-bound + 1)...(bound - 1), site: site(op, "argmax.inputBound"))
      values = try await b.reduceRing(values, bits: ringBits, site: site(op, "argmax.reduce"))
    }
    let valueFormat = b.format(of: values)
    var indices = try await b.constant(
      (0..<width).map(Int64.init), shape: [1, width], format: valueFormat,
      site: site(op, "argmax.indices"))
    func pick(_ v: Backend.Value, _ parity: Int, _ pairs: Int) async throws -> Backend.Value {
      try await b.gather(
        v, indices: (0..<pairs).map { 2 * $0 + parity }, shape: [1, pairs],
        site: site(op, "argmax.pairs"))
    }
    while width > 1 {
      let pairs = width / 2
      let (leftValues, rightValues) = (
        try await pick(values, 0, pairs), try await pick(values, 1, pairs)
      )
      let (leftIndices, rightIndices) = (
        try await pick(indices, 0, pairs), try await pick(indices, 1, pairs)
      )
      let valueGap = try await b.subtract(
        leftValues, rightValues, site: site(op, "argmax.difference"))
      let indexGap = try await b.subtract(
        leftIndices, rightIndices, site: site(op, "argmax.difference"))
      let keepLeft = try await singleBits(
        try await b.compare(valueGap, offsets: [0], site: site(op, "argmax.compare")), [1, pairs],
        op)
      let bothBits = try await b.gather(
        bits: keepLeft, indices: Array(0..<pairs) + Array(0..<pairs), shape: [1, 2 * pairs],
        site: site(op, "argmax.bits"))
      let gaps = try await b.concatenate(
        [valueGap, indexGap], axis: 1, site: site(op, "argmax.gaps"))
      let chosen = try await b.select(bothBits, gaps, site: site(op, "argmax.select"))
      var winners = try await b.add(
        rightValues, try await columns(chosen, 0..<pairs, op), site: site(op, "argmax.combine"))
      var winnerIndices = try await b.add(
        rightIndices, try await columns(chosen, pairs..<(2 * pairs), op),
        site: site(op, "argmax.combine"))
      if width % 2 == 1 {
        let last = (width - 1)..<width
        winners = try await b.concatenate(
          [winners, try await columns(values, last, op)], axis: 1, site: site(op, "argmax.carry"))
        winnerIndices = try await b.concatenate(
          [winnerIndices, try await columns(indices, last, op)], axis: 1,
          site: site(op, "argmax.carry"))
      }
      values = winners
      indices = winnerIndices
      width = pairs + width % 2
    }
    return try await b.withScale(indices, 0, site: site(op, "argmax.index"))
  }

  /// The one-hot row [1, classes] at (n, 0) of a secret index in [0, classes) ([1, 1], any
  /// ring wider than log2(classes) + 1): its interval code against 0, 1, …, classes (one DReLU
  /// key) is the one-hot bits, and a select of public ones puts them on a wire of the input
  /// ring.
  public func oneHot(_ index: Backend.Value, classes: Int, op: OpSite) async throws
    -> Backend.Value
  {
    let shape = b.shape(of: index)
    guard shape.reduce(1, *) == 1, classes >= 1,
      Int64(classes) < Int64(1) << Int64(b.format(of: index).bits - 2)
    else {
      throw MPCError.badShape(site(op, "oneHot"), shape, "no one-hot of \(classes) classes")
    }
    try await b.assertRange(index, 0...Int64(classes - 1), site: site(op, "oneHot.inputBound"))
    let bits = try await intervalCode(
      index, offsets: (0...classes).map(Int64.init), gate: "oneHot", op: op)
    let ones = try await b.constant(
      [Int64](repeating: 1, count: classes), shape: [1, classes],
      format: WireFormat(bits: b.inputFormat.bits, scale: 0), site: site(op, "oneHot.ones"))
    return try await b.select(bits, ones, site: site(op, "oneHot.select"))
  }
}

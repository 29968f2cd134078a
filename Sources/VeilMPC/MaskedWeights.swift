// Weights masked once (DESIGN §3). Setup, per model and scale: the dealer draws
// r_W = G(t_0) + G(t_1) from two fresh seeds and gives P_b the seed t_b; the owner sends P_b an
// additive share [W]_b; P0 and P1 open Ŵ = W + r_W to each other in Z_2^64 (never to the
// dealer, who knows r_W). Afterwards a party holds Ŵ and its own W_b (W_0 = Ŵ − [r_W]_0,
// W_1 = −[r_W]_1, so W_0 + W_1 = W), the dealer holds r_W, all reduced mod 2^n once. Large
// weights go through in chunks, each chunk with its own mask seeds; P1 keeps only its seeds
// for W_1 and the dealer only the seeds of r_W, and both re-derive them when a gate needs them.
// Per inference the key material of a linear layer is then output-sized, not weight-sized.
import Foundation
import VeilFSS
import VeilModels
import VeilNet
import VeilRing

/// A weight a role does not keep but re-derives from its chunks' mask seeds when a gate needs
/// it (input-independent work): base ± Σ_s G(seeds[i][s]) over chunk i — r_W = G(t_0) + G(t_1)
/// at the dealer, W_0 = Ŵ − G(t_0) and W_1 = −G(t_1) at the parties (the base Ŵ is the kept
/// array itself, not a copy).
struct DerivedWeight: Sendable {
  let count: Int
  let chunkSeeds: [[[UInt8]]]
  let negated: Bool
  var base: [UInt64]? = nil
}

/// Weights at one ring, as a run reads them: reduced mod 2^n, the matrices that feed `linear`
/// (x·Wᵀ) laid out transposed ([in, out]) from the setup on — no second copy — and every other
/// tensor as stored. A weight is either kept (Ŵ) or derived from seeds each time it is read
/// (the dealer's r_W and both parties' W_b): one kept copy of the model. Built once per model
/// by the setup, read by every run.
final class RunWeights: Sendable {
  let shapes: [WeightID: [Int]]
  private let values: [WeightID: [UInt64]]
  private let derived: [WeightID: DerivedWeight]
  private let transposedIDs: Set<WeightID>
  private let bits: Int

  /// `values` are already reduced; those named in `transposed` are [in, out] matrices.
  init(
    shapes: [WeightID: [Int]], values: [WeightID: [UInt64]],
    derived: [WeightID: DerivedWeight] = [:],
    transposed: Set<WeightID>, bits: Int
  ) {
    self.shapes = shapes
    self.values = values
    self.derived = derived
    transposedIDs = transposed
    self.bits = bits
  }

  func shape(_ id: WeightID) throws(MPCError) -> [Int] {
    guard let shape = shapes[id] else { throw .unknownWeight(id.name) }
    return shape
  }

  private func stored(_ id: WeightID, transposed: Bool) throws(MPCError) -> [UInt64] {
    guard transposedIDs.contains(id) == transposed else {
      throw .unknownWeight("\(id.name) (kept \(transposed ? "as stored" : "transposed") only)")
    }
    if let v = values[id] { return v }
    guard let d = derived[id] else { throw .unknownWeight(id.name) }
    let m = ringMask(bits)
    var out: [UInt64] = []
    out.reserveCapacity(d.count)
    let chunk = WeightSetup.chunkElements
    for (i, seeds) in d.chunkSeeds.enumerated() {
      let length = min(chunk, d.count - i * chunk)
      var sum = [UInt64](repeating: 0, count: length)
      for seed in seeds {
        // Seeds come from the setup's own CSPRNG (16 bytes each), so expansion cannot fail.
        guard let g = try? ShareBundle.expand(seed: seed, lengths: [length], bits: 64)[0] else {
          throw .unknownWeight("\(id.name) (mask seed)")
        }
        for j in 0..<length { sum[j] &+= g[j] }
      }
      let offset = i * chunk
      if let base = d.base {
        for j in 0..<length {
          sum[j] = d.negated ? base[offset + j] &- sum[j] : base[offset + j] &+ sum[j]
        }
      } else if d.negated {
        for j in 0..<length { sum[j] = 0 &- sum[j] }
      }
      out += sum.lazy.map { $0 & m }
    }
    return out
  }

  /// The weight mod 2^n, row-major as stored (vectors and embedding tables).
  func plain(_ id: WeightID) throws(MPCError) -> [UInt64] { try stored(id, transposed: false) }

  /// A linear layer's [out, in] matrix mod 2^n, transposed to [in, out].
  func transposed(_ id: WeightID) throws(MPCError) -> [UInt64] { try stored(id, transposed: true) }

  /// W as the right operand B of a product x·B, B = Wᵀ (`linear`, transposed) or B = W
  /// (`tableProduct`), in whichever layout the weight is kept: a tied embedding table is kept
  /// as stored and still feeds the LM head, by a product with B read transposed.
  func operand(_ id: WeightID, transposed want: Bool) throws(MPCError) -> (
    values: [UInt64], transposeB: Bool
  ) {
    let kept = transposedIDs.contains(id)
    return (try stored(id, transposed: kept), kept != want)
  }

  /// Rows of a [rows, d] table mod 2^n.
  func rows(_ id: WeightID, _ indices: [Int], _ site: GateSite) throws(MPCError) -> (
    values: [UInt64], d: Int
  ) {
    let shape = try self.shape(id)
    guard shape.count == 2, indices.allSatisfy({ $0 >= 0 && $0 < shape[0] }) else {
      throw .badShape(site, shape, "cannot take rows \(indices.prefix(4))…")
    }
    let table = try plain(id)
    let d = shape[1]
    var out = [UInt64](repeating: 0, count: indices.count * d)
    for (i, r) in indices.enumerated() { for j in 0..<d { out[i * d + j] = table[r * d + j] } }
    return (out, d)
  }
}

/// The one-time weight setup of DESIGN §3, one weight at a time (so that no more than one
/// weight's Z_2^64 intermediates exist at once).
public enum WeightSetup {
  /// The owner's additive shares of one weight, encoded at the run's format, in Z_2^64.
  static func ownerShares(_ encoded: [Int64], random: inout SecureRandom) -> ([UInt64], [UInt64]) {
    let first = random.elements(encoded.count, bits: 64)
    return (first, zip(encoded, first).map { UInt64(bitPattern: $0) &- $1 })
  }

  /// Party b's side of one weight's opening: sends [W]_b + [r_W]_b, receives the peer's, and
  /// returns Ŵ and W_b (W_0 = Ŵ − [r_W]_0, W_1 = −[r_W]_1), both in Z_2^64.
  static func open(
    party: Int, id: WeightID, ownerShare w: [UInt64], maskSeed: [UInt8], peer: any Channel
  )
    async throws -> (masked: [UInt64], share: [UInt64])
  {
    let r = try ShareBundle.expand(seed: maskSeed, lengths: [w.count], bits: 64)[0]
    let mine = zip(w, r).map { $0 &+ $1 }
    let received = try await peer.exchange(BitPacking.pack(mine, bits: 64))
    guard received.count == 8 * w.count else {
      throw MPCError.protocolViolation(
        "the peer sent \(received.count) bytes for weight '\(id)', expected \(8 * w.count)")
    }
    let opened = zip(mine, BitPacking.unpack(received, bits: 64, count: w.count)).map { $0 &+ $1 }
    return (opened, party == 0 ? zip(opened, r).map { $0 &- $1 } : r.map { 0 &- $0 })
  }

  /// Weights go through the setup in chunks of this many elements (32 MiB per Z_2^64 copy).
  static let chunkElements = 1 << 22

  /// One weight through the whole setup, as one process plays every role: the owner's shares,
  /// the dealer's mask and the parties' opening, chunk by chunk (each chunk with its own mask
  /// seeds, so a large table's Z_2^64 intermediates never exist whole). A linear layer's matrix
  /// is shared in its transposed layout, so nothing is ever transposed again. Returns Ŵ (both
  /// parties must open the same) reduced mod 2^n and each chunk's seeds (t_0, t_1): W_0, W_1
  /// and r_W are derived from them when needed.
  static func setUp(
    _ id: WeightID, _ tensor: Tensor<Double>, format: FixedPointFormat, transpose: Bool,
    random: inout SecureRandom, peers: (any Channel, any Channel)
  ) async throws -> (masked: [UInt64], chunkSeeds: [[[UInt8]]]) {
    let scalars = transpose ? try tensor.transposed().scalars : tensor.scalars
    var masked: [UInt64] = []
    masked.reserveCapacity(scalars.count)
    var chunkSeeds: [[[UInt8]]] = []
    let m = ringMask(format.ring.bits)
    for lower in stride(from: 0, to: scalars.count, by: chunkElements) {
      let upper = min(lower + chunkElements, scalars.count)
      let part = try Tensor(shape: [upper - lower], scalars: Array(scalars[lower..<upper]))
      let (owner0, owner1) = ownerShares(
        try ClearWeights.encode(id, part, format: format).scalars, random: &random)
      let seeds = [random.bytes(16), random.bytes(16)]
      async let opened0 = open(
        party: 0, id: id, ownerShare: owner0, maskSeed: seeds[0], peer: peers.0)
      async let opened1 = open(
        party: 1, id: id, ownerShare: owner1, maskSeed: seeds[1], peer: peers.1)
      let opened = try await [opened0, opened1]
      guard opened[0].masked == opened[1].masked else {
        throw MPCError.protocolViolation(
          "P0 and P1 opened different masked values of weight '\(id)'")
      }
      masked += opened[0].masked.lazy.map { $0 & m }
      chunkSeeds.append(seeds)
    }
    return (masked, chunkSeeds)
  }
}

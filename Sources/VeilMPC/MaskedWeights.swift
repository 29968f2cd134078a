// Weights masked once (DESIGN §3). Setup, per model and scale: the dealer draws
// r_W = G(t_0) + G(t_1) from two fresh seeds and gives P_b the seed t_b; the owner sends P_b an
// additive share [W]_b; P0 and P1 open Ŵ = W + r_W to each other in Z_2^64 (never to the
// dealer, who knows r_W). Afterwards a party holds Ŵ and its own W_b (W_0 = Ŵ − [r_W]_0,
// W_1 = −[r_W]_1, so W_0 + W_1 = W), the dealer holds r_W, all reduced mod 2^n once. Large
// weights go through in chunks, each chunk with its own mask seeds.
// Per inference the key material of a linear layer is then output-sized, not weight-sized.
import Foundation
import VeilFSS
import VeilModels
import VeilNet
import VeilRing

/// Weights at one ring, as a run reads them: reduced mod 2^n, the matrices that feed `linear`
/// (x·Wᵀ) stored transposed only — no second copy — and every other tensor as stored. Built
/// once per model by the setup, read by every run.
final class RunWeights: Sendable {
  let shapes: [WeightID: [Int]]
  private let values: [WeightID: [UInt64]]
  private let transposedIDs: Set<WeightID>

  /// `values` are already reduced; those named in `transposed` are [in, out] matrices.
  init(shapes: [WeightID: [Int]], values: [WeightID: [UInt64]], transposed: Set<WeightID>) {
    self.shapes = shapes
    self.values = values
    transposedIDs = transposed
  }

  func shape(_ id: WeightID) throws(MPCError) -> [Int] {
    guard let shape = shapes[id] else { throw .unknownWeight(id.name) }
    return shape
  }

  private func stored(_ id: WeightID, transposed: Bool) throws(MPCError) -> [UInt64] {
    guard let v = values[id] else { throw .unknownWeight(id.name) }
    guard transposedIDs.contains(id) == transposed else {
      throw .unknownWeight("\(id.name) (kept \(transposed ? "as stored" : "transposed") only)")
    }
    return v
  }

  /// The weight mod 2^n, row-major as stored (vectors and embedding tables).
  func plain(_ id: WeightID) throws(MPCError) -> [UInt64] { try stored(id, transposed: false) }

  /// A linear layer's [out, in] matrix mod 2^n, transposed to [in, out].
  func transposed(_ id: WeightID) throws(MPCError) -> [UInt64] { try stored(id, transposed: true) }

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

  /// The dealer's mask r_W = G(t_0) + G(t_1) of one weight and the seeds t_b for P_b.
  static func dealMask(count: Int, random: inout SecureRandom) throws -> (
    mask: [UInt64], seeds: [[UInt8]]
  ) {
    let seeds = [random.bytes(16), random.bytes(16)]
    let g0 = try ShareBundle.expand(seed: seeds[0], lengths: [count], bits: 64)[0]
    let g1 = try ShareBundle.expand(seed: seeds[1], lengths: [count], bits: 64)[0]
    return (zip(g0, g1).map { $0 &+ $1 }, seeds)
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
  /// seeds, so a large table's Z_2^64 intermediates never exist whole). Returns r_W, Ŵ (both
  /// parties must open the same) and W_0, W_1, reduced mod 2^n and, for a linear layer's
  /// matrix, transposed.
  static func setUp(
    _ id: WeightID, _ tensor: Tensor<Double>, format: FixedPointFormat, transpose: Bool,
    random: inout SecureRandom, peers: (any Channel, any Channel)
  ) async throws -> (mask: [UInt64], masked: [UInt64], shares: [[UInt64]]) {
    var kept: [[UInt64]] = Array(repeating: [], count: 4)  // r_W, Ŵ, W_0, W_1
    for k in kept.indices { kept[k].reserveCapacity(tensor.count) }
    let m = ringMask(format.ring.bits)
    for lower in stride(from: 0, to: tensor.count, by: chunkElements) {
      let upper = min(lower + chunkElements, tensor.count)
      let part = try Tensor(shape: [upper - lower], scalars: Array(tensor.scalars[lower..<upper]))
      let (share0, share1) = ownerShares(
        try ClearWeights.encode(id, part, format: format).scalars, random: &random)
      let (mask, seeds) = try dealMask(count: share0.count, random: &random)
      async let opened0 = open(
        party: 0, id: id, ownerShare: share0, maskSeed: seeds[0], peer: peers.0)
      async let opened1 = open(
        party: 1, id: id, ownerShare: share1, maskSeed: seeds[1], peer: peers.1)
      let opened = try await [opened0, opened1]
      guard opened[0].masked == opened[1].masked else {
        throw MPCError.protocolViolation(
          "P0 and P1 opened different masked values of weight '\(id)'")
      }
      for (k, values) in [mask, opened[0].masked, opened[0].share, opened[1].share].enumerated() {
        kept[k] += values.lazy.map { $0 & m }
      }
    }
    if transpose {
      let shape = tensor.shape
      kept = kept.map { RingMath.transposeBatch($0, batch: 1, rows: shape[0], columns: shape[1]) }
    }
    return (kept[0], kept[1], [kept[2], kept[3]])
  }
}

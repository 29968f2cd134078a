// Weights masked once (DESIGN §3). Setup, per model and scale: the dealer draws
// r_W = G(t_0) + G(t_1) from two fresh seeds and gives P_b the seed t_b; the owner sends P_b an
// additive share [W]_b; P0 and P1 open Ŵ = W + r_W to each other in Z_2^64 (never to the
// dealer, who knows r_W). Afterwards a party holds Ŵ and its own W_b (W_0 = Ŵ − [r_W]_0,
// W_1 = −[r_W]_1, so W_0 + W_1 = W), the dealer holds r_W; each run reduces them mod 2^n.
// Per inference the key material of a linear layer is then output-sized, not weight-sized.
import Foundation
import VeilFSS
import VeilModels
import VeilNet
import VeilRing

/// Weight tensors as flat Z_2^64 arrays with their shapes, by id.
public struct RingWeights: Sendable {
  public let shapes: [WeightID: [Int]]
  let values: [WeightID: [UInt64]]

  init(shapes: [WeightID: [Int]], values: [WeightID: [UInt64]]) {
    self.shapes = shapes
    self.values = values
  }

  /// The ids in a fixed order (both parties must open weights in the same order).
  var orderedIDs: [WeightID] { shapes.keys.sorted { $0.name < $1.name } }

  func shape(_ id: WeightID) throws(MPCError) -> [Int] {
    guard let shape = shapes[id] else { throw .unknownWeight(id.name) }
    return shape
  }

  func tensor(_ id: WeightID) throws(MPCError) -> [UInt64] {
    guard let v = values[id] else { throw .unknownWeight(id.name) }
    return v
  }
}

/// What the dealer keeps from the setup: the weight masks r_W and the setup's id.
public struct DealerWeights: Sendable {
  public let setupID: [UInt8]
  public let masks: RingWeights
}

/// What party b keeps from the setup: the opened Ŵ and its share W_b of the weights.
public struct PartyWeights: Sendable {
  public let party: Int
  public let setupID: [UInt8]
  public let masked: RingWeights
  public let share: RingWeights
}

/// Weights at one ring: reduced mod 2^n once (the Z_2^64 originals are not kept), matrices
/// also transposed for `x·Wᵀ` on first use and cached, for every run of a model.
final class RunWeights: Sendable {
  private let reduced: RingWeights
  private let transposes = OnceCache<WeightID, [UInt64]>()

  init(_ source: RingWeights, bits: Int) {
    let m = ringMask(bits)
    reduced = RingWeights(shapes: source.shapes, values: source.values.mapValues { $0.map { $0 & m } })
  }

  func shape(_ id: WeightID) throws(MPCError) -> [Int] { try reduced.shape(id) }

  /// Transposes now, as part of the setup, every matrix `isLinear` names.
  func transposeMatrices(where isLinear: (WeightID) -> Bool) throws(MPCError) {
    for (id, shape) in reduced.shapes where shape.count == 2 && isLinear(id) { _ = try transposed(id) }
  }

  /// The weight mod 2^n, row-major as stored.
  func plain(_ id: WeightID) throws(MPCError) -> [UInt64] { try reduced.tensor(id) }

  /// A [out, in] matrix mod 2^n, transposed to [in, out].
  func transposed(_ id: WeightID) throws(MPCError) -> [UInt64] {
    try transposes.value(id) { () throws(MPCError) in
      let shape = try reduced.shape(id)
      guard shape.count == 2 else {
        throw .badShape(GateSite(op: OpSite(layer: 0, kind: .linear, index: 0), gate: id.name), shape, "not a matrix")
      }
      return RingMath.transposeBatch(try plain(id), batch: 1, rows: shape[0], columns: shape[1])
    }
  }

  /// Rows of a [rows, d] table mod 2^n.
  func rows(_ id: WeightID, _ indices: [Int], _ site: GateSite) throws(MPCError) -> (values: [UInt64], d: Int) {
    let shape = try reduced.shape(id)
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

/// The one-time weight setup of DESIGN §3.
public enum WeightSetup {
  /// The owner's additive shares of its weights, encoded at `format` and read in Z_2^64.
  public static func ownerShares(_ weights: ClearWeights, random: inout SecureRandom) -> (RingWeights, RingWeights) {
    var shapes: [WeightID: [Int]] = [:]
    var first: [WeightID: [UInt64]] = [:]
    var second: [WeightID: [UInt64]] = [:]
    for (id, tensor) in weights.tensors {
      shapes[id] = tensor.shape
      let share = random.elements(tensor.count, bits: 64)
      first[id] = share
      second[id] = zip(tensor.scalars, share).map { UInt64(bitPattern: $0) &- $1 }
    }
    return (RingWeights(shapes: shapes, values: first), RingWeights(shapes: shapes, values: second))
  }

  /// The dealer's masks r_W = G(t_0) + G(t_1) and each party's seeds t_b, per weight.
  public static func dealMasks(shapes: [WeightID: [Int]], random: inout SecureRandom) throws -> (
    DealerWeights, seeds: [[WeightID: [UInt8]]]
  ) {
    var masks: [WeightID: [UInt64]] = [:]
    var seeds: [[WeightID: [UInt8]]] = [[:], [:]]
    for (id, shape) in shapes {
      let count = shape.reduce(1, *)
      let t0 = random.bytes(16)
      let t1 = random.bytes(16)
      seeds[0][id] = t0
      seeds[1][id] = t1
      let g0 = try ShareBundle.expand(seed: t0, lengths: [count], bits: 64)[0]
      let g1 = try ShareBundle.expand(seed: t1, lengths: [count], bits: 64)[0]
      masks[id] = zip(g0, g1).map { $0 &+ $1 }
    }
    return (DealerWeights(setupID: random.bytes(16), masks: RingWeights(shapes: shapes, values: masks)), seeds)
  }

  /// Party b's side of the opening: sends [W]_b + [r_W]_b for every weight (in id order),
  /// receives the peer's, and keeps Ŵ and W_b.
  public static func open(
    party: Int, setupID: [UInt8], ownerShare: RingWeights, maskSeeds: [WeightID: [UInt8]], peer: any Channel
  ) async throws -> PartyWeights {
    var masked: [WeightID: [UInt64]] = [:]
    var share: [WeightID: [UInt64]] = [:]
    for id in ownerShare.orderedIDs {
      guard let seed = maskSeeds[id] else { throw MPCError.unknownWeight(id.name) }
      let w = try ownerShare.tensor(id)
      let r = try ShareBundle.expand(seed: seed, lengths: [w.count], bits: 64)[0]
      let mine = zip(w, r).map { $0 &+ $1 }
      let received = try await peer.exchange(BitPacking.pack(mine, bits: 64))
      guard received.count == 8 * w.count else {
        throw MPCError.protocolViolation("the peer sent \(received.count) bytes for weight '\(id)', expected \(8 * w.count)")
      }
      let opened = zip(mine, BitPacking.unpack(received, bits: 64, count: w.count)).map { $0 &+ $1 }
      masked[id] = opened
      share[id] = party == 0 ? zip(opened, r).map { $0 &- $1 } : r.map { 0 &- $0 }
    }
    return PartyWeights(
      party: party, setupID: setupID, masked: RingWeights(shapes: ownerShare.shapes, values: masked),
      share: RingWeights(shapes: ownerShare.shapes, values: share))
  }
}

// The one-time weight setup split into its roles (DESIGN §3, §10), each half beside the others:
// the owner shares W (P0 gets [W]_0 chunk by chunk, P1 one seed per chunk), the dealer draws
// the mask seeds (t_0, t_1) of every chunk and hands each server its own, and P0 and P1 open
// Ŵ = W + r_W to each other and agree on H(Ŵ). Every role keeps only its part: the dealer the
// seeds, P_b Ŵ and t_b, the owner nothing.
import Crypto
import Foundation
import VeilFSS
import VeilModels
import VeilNet
import VeilRing

/// The dealer's secrets of one setup: each chunk's mask seeds t_0 ‖ t_1 (32 bytes), per tensor
/// in manifest order. As sensitive as the weights: stored only sealed (`DealerStateStore`).
public struct DealerSetupSecrets: Codable, Sendable, CustomStringConvertible {
  public let manifest: SetupManifest
  let chunkSeeds: [[Data]]

  /// Fresh seeds for every chunk of `manifest` from the system CSPRNG.
  init(manifest: SetupManifest) throws {
    var random = try SecureRandom()
    self.manifest = manifest
    chunkSeeds = manifest.tensors.map { t in (0..<t.chunkCount).map { _ in Data(random.bytes(32)) } }
  }

  /// Party b's seeds t_b, 16 bytes per chunk in manifest order.
  func seeds(party b: Int) -> [UInt8] {
    chunkSeeds.flatMap { $0.flatMap { Array($0[(16 * b)..<(16 * b + 16)]) } }
  }

  /// r_W at the setup's ring, derived chunk by chunk when a gate needs it.
  func runWeights() -> RunWeights {
    var derived: [WeightID: DerivedWeight] = [:]
    for (t, seeds) in zip(manifest.tensors, chunkSeeds) {
      derived[WeightID(t.name)] = DerivedWeight(
        count: t.count, chunkSeeds: seeds.map { [Array($0.prefix(16)), Array($0.suffix(16))] },
        negated: false)
    }
    return manifest.runWeights(values: [:], derived: derived)
  }

  public var description: String { "DealerSetupSecrets(setup \(manifest.setupID), redacted)" }
}

/// What server b keeps of a setup: Ŵ at the run's ring and its mask seeds t_b.
public struct ServerSetupState: Sendable, CustomStringConvertible {
  public let party: Int
  public let manifest: SetupManifest
  /// Ŵ mod 2^n per tensor (public between P0 and P1), manifest order.
  let masked: [[UInt64]]
  /// t_b per chunk, 16 bytes each, manifest order.
  let seeds: [[[UInt8]]]
  /// H(Ŵ), which P0 and P1 compared at the end of the setup.
  public let maskedDigest: [UInt8]

  init(party: Int, manifest: SetupManifest, masked: [[UInt64]], seeds: [[[UInt8]]]) {
    self.party = party
    self.manifest = manifest
    self.masked = masked
    self.seeds = seeds
    var d = CanonicalDigest("veil.masked-weights/1")
    d.bytes(manifest.modelDigest)
    for values in masked {
      d.int(values.count)
      values.withUnsafeBytes { d.raw($0) }
    }
    maskedDigest = d.finish()
  }

  /// The same state reading another's Ŵ arrays (one process playing both servers keeps one
  /// copy); refused unless both opened the same Ŵ.
  func sharingMasked(with other: ServerSetupState) throws -> ServerSetupState {
    guard other.maskedDigest == maskedDigest else {
      throw MPCError.protocolViolation("P0 and P1 opened different masked weights")
    }
    return ServerSetupState(party: party, manifest: manifest, masked: other.masked, seeds: seeds)
  }

  /// Ŵ and W_b (W_0 = Ŵ − G(t_0), W_1 = −G(t_1)) as a run reads them.
  func runWeights() -> (masked: RunWeights, share: RunWeights) {
    var values: [WeightID: [UInt64]] = [:]
    var derived: [WeightID: DerivedWeight] = [:]
    for (i, t) in manifest.tensors.enumerated() {
      let id = WeightID(t.name)
      values[id] = masked[i]
      derived[id] = DerivedWeight(
        count: t.count, chunkSeeds: seeds[i].map { [$0] }, negated: true,
        base: party == 0 ? masked[i] : nil)
    }
    return (manifest.runWeights(values: values, derived: [:]), manifest.runWeights(values: [:], derived: derived))
  }

  public var description: String { "ServerSetupState(p\(party), setup \(manifest.setupID), redacted)" }
}

extension SetupManifest {
  func runWeights(values: [WeightID: [UInt64]], derived: [WeightID: DerivedWeight]) -> RunWeights {
    var shapes: [WeightID: [Int]] = [:]
    var transposed = Set<WeightID>()
    for t in tensors {
      shapes[WeightID(t.name)] = t.shape
      if t.transposed { transposed.insert(WeightID(t.name)) }
    }
    return RunWeights(
      shapes: shapes, values: values, derived: derived, transposed: transposed,
      bits: parameters.ringBits)
  }

  var totalChunks: Int { tensors.reduce(0) { $0 + $1.chunkCount } }
}



/// The setup's halves.
public enum SetupRoles {
  /// The owner: announces the setup to both servers and, once both are ready, to the dealer,
  /// then streams their
  /// shares of each chunk of each weight, encoded at the setup's format: P1's [W]_1 = G(s) from
  /// a fresh seed per chunk, P0's [W]_0 = W − [W]_1 explicitly. Returns H(Ŵ) as both servers
  /// report it.
  public static func owner(
    manifest: SetupManifest, weights: Float64Weights, publicFiles: [String: [UInt8]] = [:],
    graph: (any TransformerGraph)? = nil, dealer: any Channel, servers: [any Channel]
  ) async throws -> [UInt8] {
    try manifest.validate(graph: graph)
    // Both servers say they can take the setup before the dealer draws anything for it.
    for server in servers { try await server.send(.setup(manifest)) }
    for server in servers {
      guard case .ready = try await server.receiveReply() else {
        throw RoleError.unexpected(peer: server.peerDescription, message: "another reply to a setup")
      }
    }
    try await dealer.send(.setup(manifest))
    guard case .setupDone = try await dealer.receiveReply() else {
      throw RoleError.unexpected(peer: dealer.peerDescription, message: "another reply to a setup")
    }
    let names = publicFiles.keys.sorted()
    for server in servers {
      try await server.send(.modelCard(ModelCard(manifest: manifest, files: names)))
      for name in names { try await server.send(publicFiles[name] ?? []) }
    }
    let format = try FixedPointFormat(
      bits: manifest.parameters.ringBits, fractionalBits: manifest.parameters.fractionalBits)
    var random = try SecureRandom()
    let p1Seeds = (0..<manifest.totalChunks).map { _ in random.bytes(16) }
    try await servers[1].send(p1Seeds.flatMap { $0 })
    var chunk = 0
    for t in manifest.tensors {
      guard let tensor = weights.tensors[WeightID(t.name)], tensor.shape == t.shape else {
        throw MPCError.unknownWeight(t.name)
      }
      let scalars = t.transposed ? try tensor.transposed().scalars : tensor.scalars
      for lower in stride(from: 0, to: scalars.count, by: WeightSetup.chunkElements) {
        let upper = min(lower + WeightSetup.chunkElements, scalars.count)
        let part = try Tensor(shape: [upper - lower], scalars: Array(scalars[lower..<upper]))
        let encoded = try ClearWeights.encode(WeightID(t.name), part, format: format).scalars
        let second = try ShareBundle.expand(seed: p1Seeds[chunk], lengths: [encoded.count], bits: 64)[0]
        let first = zip(encoded, second).map { UInt64(bitPattern: $0) &- $1 }
        try await servers[0].send(BitPacking.pack(first, bits: 64))
        chunk += 1
      }
    }
    var digests: [String] = []
    for server in servers {
      guard case .setupDone(let digest) = try await server.receiveReply() else {
        throw RoleError.unexpected(peer: server.peerDescription, message: "another reply to a setup")
      }
      digests.append(digest)
    }
    guard digests[0] == digests[1], let digest = bytes(hex: digests[0]) else {
      throw MPCError.protocolViolation("P0 and P1 report different masked weights")
    }
    return digest
  }

  /// The dealer's answer to a server's seed request: its t_b, then nothing more.
  public static func dealerSendSeeds(_ secrets: DealerSetupSecrets, party: Int, to server: any Channel)
    async throws
  {
    try await server.send(secrets.seeds(party: party))
  }

  /// Server b's half: takes the owner's announced `manifest` (already received and checked
  /// against what the server holds), says it is ready, fetches t_b from the dealer, receives its owner shares and opens Ŵ with the peer chunk by chunk, then
  /// checks H(Ŵ) with the peer. The caller stores the state and then reports `setupDone`.
  public static func server(
    party b: Int, manifest: SetupManifest, graph: (any TransformerGraph)? = nil, owner: any Channel,
    dealer: any Channel, peer: any Channel
  ) async throws -> (state: ServerSetupState, publicFiles: [String: [UInt8]]) {
    try manifest.validate(graph: graph)
    try await owner.send(.ready)
    guard case .modelCard(let card) = try await owner.receiveMessage(), card.manifest == manifest,
      card.files.count <= 64
    else { throw MPCError.protocolViolation("the owner sent no model card with the setup") }
    var publicFiles: [String: [UInt8]] = [:]
    for name in card.files {
      let data = try await owner.receive()
      guard data.count <= 64 << 20 else {
        throw MPCError.protocolViolation("the public file '\(name.prefix(40))' exceeds 64 MiB")
      }
      publicFiles[try StateFiles.safeName(name)] = data
    }
    try await dealer.send(.setupSeeds(setupID: manifest.setupID, party: b))
    let total = manifest.totalChunks
    let seedBytes = try await dealer.receive()
    guard seedBytes.count == 16 * total else {
      throw MPCError.protocolViolation(
        "\(dealer.peerDescription) sent \(seedBytes.count) bytes of seeds for \(total) chunks")
    }
    var ownerSeeds: [UInt8] = []
    if b == 1 {
      ownerSeeds = try await owner.receive()
      guard ownerSeeds.count == 16 * total else {
        throw MPCError.protocolViolation(
          "\(owner.peerDescription) sent \(ownerSeeds.count) bytes of share seeds for \(total) chunks")
      }
    }
    let m = ringMask(manifest.parameters.ringBits)
    var masked: [[UInt64]] = []
    var seeds: [[[UInt8]]] = []
    var chunk = 0
    for t in manifest.tensors {
      var values: [UInt64] = []
      values.reserveCapacity(t.count)
      var tensorSeeds: [[UInt8]] = []
      for lower in stride(from: 0, to: t.count, by: WeightSetup.chunkElements) {
        let length = min(WeightSetup.chunkElements, t.count - lower)
        let share: [UInt64]
        if b == 0 {
          let message = try await owner.receive()
          guard message.count == 8 * length else {
            throw MPCError.protocolViolation(
              "\(owner.peerDescription) sent \(message.count) bytes for a chunk of \(length) of '\(t.name)'")
          }
          share = BitPacking.unpack(message, bits: 64, count: length)
        } else {
          share = try ShareBundle.expand(
            seed: Array(ownerSeeds[(16 * chunk)..<(16 * chunk + 16)]), lengths: [length], bits: 64)[0]
        }
        let maskSeed = Array(seedBytes[(16 * chunk)..<(16 * chunk + 16)])
        let opened = try await WeightSetup.open(
          party: b, id: WeightID(t.name), ownerShare: share, maskSeed: maskSeed, peer: peer)
        values += opened.masked.lazy.map { $0 & m }
        tensorSeeds.append(maskSeed)
        chunk += 1
      }
      masked.append(values)
      seeds.append(tensorSeeds)
    }
    let state = ServerSetupState(party: b, manifest: manifest, masked: masked, seeds: seeds)
    guard try await peer.exchange(state.maskedDigest) == state.maskedDigest else {
      throw MPCError.protocolViolation("P0 and P1 opened different masked weights")
    }
    return (state, publicFiles)
  }
}

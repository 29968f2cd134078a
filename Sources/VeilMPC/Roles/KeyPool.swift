// Key pools (issue 18, DESIGN §10 "Keys ahead of time"): while the servers are idle the dealer
// deals whole runs ahead for the shapes an operator names, each server's stream sealed to that
// server's pool key (`SealedKeyStream`) and written to its disk pool, the client's stream kept
// sealed by the dealer. A request of a pooled shape then takes a stream from the pool instead
// of waiting for one: no key crosses the network while it runs. A pooled run id is as
// single-use as any other: the stream is moved out of the pool when taken, deleted after its
// run, and its id burnt in the durable ledger before the first key is used, so a stream that
// reappears (a restored backup, a copy) is dropped at start-up and refused if ordered.
import Foundation
import VeilFSS
import VeilNet

/// The public shape of a run a pool holds streams for.
public struct PoolShape: Codable, Sendable, Hashable, CustomStringConvertible {
  public var tokens: Int
  /// A bucket whose real length is the client's secret (`--pad-to`).
  public var hidesLength: Bool
  /// Greedy tokens after a prompt of `tokens` (a decoder, cached), or 0 for the model's output.
  public var newTokens: Int

  public init(tokens: Int, hidesLength: Bool = false, newTokens: Int = 0) {
    self.tokens = tokens
    self.hidesLength = hidesLength
    self.newTokens = newTokens
  }

  /// "128": a run of exactly 128 tokens; "16h": a bucket of 16, its length hidden; "32+8": 8
  /// tokens generated after a prompt of 32.
  public init?(_ text: String) {
    if text.hasSuffix("h"), let tokens = Int(text.dropLast()), tokens > 0 {
      self.init(tokens: tokens, hidesLength: true)
    } else if let plus = text.firstIndex(of: "+"), let tokens = Int(text[..<plus]),
      let new = Int(text[text.index(after: plus)...]), tokens > 0, new > 0
    {
      self.init(tokens: tokens, newTokens: new)
    } else if let tokens = Int(text), tokens > 0 {
      self.init(tokens: tokens)
    } else {
      return nil
    }
  }

  public var description: String {
    hidesLength ? "\(tokens)h" : newTokens > 0 ? "\(tokens)+\(newTokens)" : "\(tokens)"
  }

  /// The shape of a request, nil when no pool serves it (some rows invalid, an uncached
  /// generation).
  public init?(request: EmbedRequest) {
    guard request.validTokens == request.tokens, request.generation?.cache ?? true else {
      return nil
    }
    self.init(
      tokens: request.tokens, hidesLength: request.hidesLength,
      newTokens: request.generation?.newTokens ?? 0)
  }

  /// A pooled order of this shape under `manifest`.
  public func order(runID: RunID, manifest: SetupManifest) -> RunOrder {
    var order = RunOrder(
      runID: runID.description, setupID: manifest.setupID, modelDigest: hex(manifest.modelDigest),
      tokens: tokens, validTokens: tokens,
      generation: newTokens > 0 ? GenerationPlan(promptTokens: tokens, newTokens: newTokens) : nil,
      hidesLength: hidesLength)
    order.pooled = true
    return order
  }

  /// Refuses a shape `manifest`'s model cannot run.
  public func check(_ manifest: SetupManifest) async throws {
    _ = try await order(runID: RunID.random(), manifest: manifest).context(manifest)
  }
}

/// How many streams of one shape the dealer keeps in the servers' pools.
public struct PoolTarget: Codable, Sendable, Equatable {
  public var shape: PoolShape
  public var count: Int

  public init(shape: PoolShape, count: Int) {
    self.shape = shape
    self.count = count
  }

  /// "16h:4,128:2": four streams of the hidden-length bucket 16, two of exactly 128 tokens.
  public static func parse(_ spec: String) throws -> [PoolTarget] {
    try spec.split(separator: ",").map { item in
      let parts = item.split(separator: ":")
      guard parts.count == 2, let shape = PoolShape(String(parts[0])), let count = Int(parts[1]),
        count > 0
      else {
        throw RoleError.state(
          "'\(item.prefix(40))' is not SHAPE:COUNT (SHAPE: 128, 16h for a hidden-length bucket, or 32+8 for a generation)"
        )
      }
      return PoolTarget(shape: shape, count: count)
    }
  }
}

/// A server's disk pool of sealed streams (`veil serve --key-pool DIR --key-pool-gb N`).
public final class ServerKeyPool: Sendable {
  /// One stored stream.
  public struct Entry: Sendable {
    public let order: RunOrder
    public let shape: PoolShape
    public let bytes: Int
    let path: String
  }

  public let directory: String
  public let limitBytes: Int
  public let key: PoolRecipientKey
  let party: Int
  private struct Contents {
    /// Available streams, oldest first.
    var available: [Entry] = []
    /// Streams taken by a run that has not ended, by run id.
    var taken: [String: Entry] = [:]
  }
  private let contents = Locked(Contents())
  /// Bytes a stream of each shape needs: the last one stored, or more than the room a write
  /// overflowed.
  private let estimates = Locked<[PoolShape: Int]>([:])
  /// Why streams found at start-up were dropped (for the log; no secret).
  public let dropped: [String]

  /// Opens the pool in `directory` (created, 0700) with its key `pool.key`; drops unfinished
  /// writes, streams taken before a restart, streams of another setup, and streams whose run id
  /// the ledger holds.
  public init(
    directory: String, limitBytes: Int, party: Int, setupID: String?, ledger: RunLedger
  ) throws {
    self.directory = directory
    self.limitBytes = limitBytes
    self.party = party
    try StateFiles.makeDirectory(directory)
    key = try PoolRecipientKey.loadOrCreate(at: directory + "/pool.key")
    var found: [(Date, Entry)] = []
    var dropped: [String] = []
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for name in names where name != "pool.key" {
      let path = directory + "/" + name
      guard name.hasSuffix(".stream") else {
        if name.hasSuffix(".taken") {
          dropped.append("\(name.prefix(12)): taken by a run before the restart")
        }
        unlink(path)
        continue
      }
      let reason: String?
      if let header = try? SealedStreamReader.header(at: path), header.party == party,
        let id = RunID(hex: header.order.runID), header.order.pooled == true,
        let shape = PoolShape(request: header.order.request)
      {
        if ledger.contains(runID: id.bytes) {
          reason = "run already used (the ledger holds it)"
        } else if setupID != header.order.setupID {
          reason = "a stream of another setup"
        } else {
          let attributes = try? FileManager.default.attributesOfItem(atPath: path)
          let size = (attributes?[.size] as? Int) ?? 0
          let date = (attributes?[.modificationDate] as? Date) ?? .distantPast
          found.append((date, Entry(order: header.order, shape: shape, bytes: size, path: path)))
          reason = nil
        }
      } else {
        reason = "not a sealed stream of p\(party)"
      }
      if let reason {
        dropped.append("\(name.prefix(12)): \(reason)")
        unlink(path)
      }
    }
    self.dropped = dropped
    contents.withLock { $0.available = found.sorted { $0.0 < $1.0 }.map(\.1) }
    for (_, entry) in found { estimates.withLock { $0[entry.shape] = entry.bytes } }
  }

  /// Streams per shape, available now.
  public var counts: [PoolShape: Int] {
    contents.withLock { Dictionary($0.available.map { ($0.shape, 1) }, uniquingKeysWith: +) }
  }

  /// Every run id the pool holds, available or taken.
  public var runIDs: [String] {
    contents.withLock { $0.available.map(\.order.runID) + Array($0.taken.keys) }
  }

  /// Bytes on disk, available and taken streams.
  public var usedBytes: Int {
    contents.withLock {
      $0.available.reduce(0) { $0 + $1.bytes } + $0.taken.values.reduce(0) { $0 + $1.bytes }
    }
  }

  /// "2 × 16h, 1 × 128: 412 of 2000 MB", for logs.
  public var summary: String {
    let shapes = counts.sorted { $0.key.description < $1.key.description }
      .map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
    return
      "\(shapes.isEmpty ? "empty" : shapes): \(usedBytes / 1_000_000) of \(limitBytes / 1_000_000) MB"
  }

  /// What a stream of `shape` is expected to need, if known.
  public func estimate(_ shape: PoolShape) -> Int? { estimates.withLock { $0[shape] } }

  /// Takes the oldest stream of `shape` out of the pool (moved aside on disk first, so a
  /// restart drops it), or nil.
  public func take(_ shape: PoolShape) -> Entry? { take { $0.shape == shape } }

  /// Takes the stream of run `runID` out of the pool, or nil.
  public func take(runID: String) -> Entry? { take { $0.order.runID == runID } }

  private func take(where matches: (Entry) -> Bool) -> Entry? {
    contents.withLock { contents -> Entry? in
      while let i = contents.available.firstIndex(where: matches) {
        let entry = contents.available.remove(at: i)
        let moved = Entry(
          order: entry.order, shape: entry.shape, bytes: entry.bytes,
          path: String(entry.path.dropLast(".stream".count)) + ".taken")
        guard rename(entry.path, moved.path) == 0 else { continue }
        contents.taken[entry.order.runID] = moved
        return moved
      }
      return nil
    }
  }

  /// Removes a taken stream from disk once its run has ended, however it ended.
  public func finish(_ entry: Entry) {
    unlink(entry.path)
    _ = contents.withLock { $0.taken.removeValue(forKey: entry.order.runID) }
  }

  /// Deletes the available streams whose run id is not in `runIDs` (P1 keeps what P0 holds).
  public func keepOnly(_ runIDs: Set<String>) {
    let stale = contents.withLock { contents -> [Entry] in
      let stale = contents.available.filter { !runIDs.contains($0.order.runID) }
      contents.available.removeAll { !runIDs.contains($0.order.runID) }
      return stale
    }
    for entry in stale { unlink(entry.path) }
  }

  /// Receives the sealed stream of pooled run `order` from the dealer on `channel` into a
  /// pending file (not yet in the pool), refusing to pass the pool's limit.
  public func receive(_ order: RunOrder, from channel: any Channel) async throws
    -> PendingPoolStream
  {
    guard order.pooled == true, let shape = PoolShape(request: order.request),
      RunID(hex: order.runID) != nil
    else { throw RoleError.state("not a pooled run order") }
    let first = try await channel.receive()
    if let reason = RoleMessage.failureReason(in: first) {
      throw RoleError.peerFailed(peer: channel.peerDescription, reason: reason)
    }
    guard first.count == 32 else {
      throw MPCError.protocolViolation("\(channel.peerDescription) sent no encapsulated key")
    }
    let file = try SealedStreamFile(
      path: directory + "/\(order.runID).stream",
      header: SealedKeyStream.Header(order: order, party: party, encapsulatedKey: hex(first)),
      limit: limitBytes - usedBytes)
    do {
      while true {
        let record = try await channel.receive()
        if record.isEmpty { break }
        if let reason = RoleMessage.failureReason(in: record) {
          throw RoleError.peerFailed(peer: channel.peerDescription, reason: reason)
        }
        try file.appendRecord(record)
      }
    } catch {
      if file.overflowed { estimates.withLock { $0[shape] = max($0[shape] ?? 0, file.limit + 1) } }
      file.abandon()
      throw error
    }
    return PendingPoolStream(pool: self, file: file, order: order, shape: shape)
  }

  fileprivate func commit(_ pending: PendingPoolStream) throws {
    do { try pending.file.finish() } catch {
      pending.file.abandon()
      throw error
    }
    let entry = Entry(
      order: pending.order, shape: pending.shape, bytes: pending.file.bytes,
      path: pending.file.path)
    contents.withLock { $0.available.append(entry) }
    estimates.withLock { $0[entry.shape] = entry.bytes }
  }

  /// The segments of a taken stream, read and opened ahead of the run.
  func segments(_ entry: Entry) throws -> PooledSegmentSource {
    let reader = try SealedStreamReader(path: entry.path, key: key)
    guard reader.header.order == entry.order, reader.header.party == party else {
      throw MPCError.protocolViolation("\(entry.path) holds another run's stream")
    }
    return PooledSegmentSource(reader)
  }
}

/// A stream written but not yet in the pool (P0 adds its own once P1 has stored its half).
public struct PendingPoolStream: Sendable {
  let pool: ServerKeyPool
  let file: SealedStreamFile
  public let order: RunOrder
  let shape: PoolShape

  public var bytes: Int { file.bytes }
  /// Adds the stream to the pool (a stream that cannot be stored is removed).
  public func commit() throws { try pool.commit(self) }
  public func abandon() { file.abandon() }
}

extension RunOrder {
  /// The request this order answers (for its pool shape).
  public var request: EmbedRequest {
    EmbedRequest(
      tokens: tokens, validTokens: validTokens, setupID: setupID, generation: generation,
      hidesLength: hidesLength)
  }
}

// MARK: The dealer's side

extension DealerStateStore {
  private func poolFolder(_ setupID: String) throws -> String {
    guard let id = bytes(hex: setupID), id.count == 16 else {
      throw RoleError.state("setup id '\(setupID.prefix(40))' is not 32 hexadecimal digits")
    }
    return directory + "/pool/" + setupID
  }

  private func clientStreamPath(_ order: RunOrder) throws -> String {
    guard RunID(hex: order.runID) != nil else { throw RoleError.state("a malformed run id") }
    return try poolFolder(order.setupID) + "/\(order.runID).client"
  }

  /// Deletes the client streams of `setupID` whose run is not in `runIDs` (P0 holds no server
  /// stream for them any more).
  public func keepPooledClientStreams(setupID: String, only runIDs: Set<String>) throws {
    let folder = try poolFolder(setupID)
    for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    where !runIDs.contains(String(name.prefix(32))) {
      unlink(folder + "/" + name)
    }
  }

  /// Sends the client's stream of pooled run `order` on `channel`, once: the file is moved
  /// aside before the first chunk and deleted after the last.
  public func sendPooledClientStream(_ order: RunOrder, to channel: any Channel) async throws {
    let path = try clientStreamPath(order)
    let taken = path + ".taken"
    guard rename(path, taken) == 0 else {
      throw RoleError.state(
        "the dealer holds no pooled client stream for run \(order.runID.prefix(12))")
    }
    defer { unlink(taken) }
    let reader = try SealedStreamReader(path: taken, key: poolKey)
    guard reader.header.order == order, reader.header.party == 2 else {
      throw MPCError.protocolViolation("the pooled client stream belongs to another run")
    }
    while let chunk = try reader.next() { try await channel.send(chunk) }
    try await channel.send([])
  }

  /// Deals pooled run `order` ahead: P0's and P1's streams sealed to `recipients` (their pool
  /// keys, hexadecimal) on `channels`, the client's sealed to this store and kept here.
  public func dealPooled(
    _ order: RunOrder, context: RunContext, setup: DealerSetupSecrets, channels: [any Channel],
    recipients: [String], body: @Sendable (DealerBackend) async throws -> Void
  ) async throws -> DealerRun.Result {
    guard order.pooled == true, channels.count == 2, recipients.count == 2 else {
      throw RoleError.state("a pooled run goes to two servers")
    }
    let sinks = try (0..<2).map { b in
      SealingChannelSink(
        channel: channels[b],
        sealer: try StreamSealer(recipient: recipients[b], runID: order.runID, party: b))
    }
    for sink in sinks { try await sink.start() }
    let clientSealer = try StreamSealer(recipient: poolKey.publicKey, runID: order.runID, party: 2)
    try StateFiles.makeDirectory(try poolFolder(order.setupID))
    let file = try SealedStreamFile(
      path: try clientStreamPath(order),
      header: SealedKeyStream.Header(
        order: order, party: 2, encapsulatedKey: hex(clientSealer.encapsulatedKey)),
      limit: Int.max)
    do {
      return try await DealerRun.run(
        context, masks: setup.runWeights(),
        sinks: sinks + [SealingFileSink(file: file, sealer: clientSealer)],
        segmentBytes: RunOptions().segmentBytes, alternating: [], body: body)
    } catch {
      file.abandon()
      throw error
    }
  }
}

extension ServerRoleState {
  /// Runs party b's half with its key stream taken from the pool.
  public func run(
    _ context: RunContext, party: Int, peer: any Channel, client: any Channel,
    pooled entry: ServerKeyPool.Entry, from pool: ServerKeyPool,
    body: @Sendable (PartyBackend) async throws -> Void
  ) async throws -> PartyRun.Result {
    try await PartyRun.run(
      context, party: party, masked: masked, share: share, peer: peer, client: client,
      segments: try pool.segments(entry), ledger: ledger, body: body)
  }
}

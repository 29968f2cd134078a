import Foundation
import Testing
import VeilFSS
import VeilNet

@testable import VeilMPC

/// Key pools (issue 18): a stream sealed to a server's pool key lies on disk unreadable to
/// anyone else, comes back chunk for chunk, and is refused when altered, cut short or opened
/// with another key; the pool is single-use across restarts and bounded on disk.
@Suite struct KeyPoolTests {
  static let shape = PoolShape(tokens: 16, hidesLength: true)

  static func order(_ run: UInt8, setup: UInt8 = 3) -> RunOrder {
    var order = RunOrder(
      runID: hex([UInt8](repeating: run, count: 16)),
      setupID: hex([UInt8](repeating: setup, count: 16)),
      modelDigest: hex([UInt8](repeating: 1, count: 32)), tokens: 16, validTokens: 16,
      hidesLength: true)
    order.pooled = true
    return order
  }

  /// Recognisable chunks: a sealing that leaked them would show them in the file.
  static let chunks: [[UInt8]] = (0..<3).map { i in
    Array("key material \(i) ".utf8) + [UInt8](repeating: UInt8(0x41 + i), count: 5000)
  }

  static func folder() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("veil-pool-\(UUID().uuidString)")
      .path
  }

  static func pool(_ directory: String, limit: Int = 1 << 30, ledger: RunLedger = RunLedger())
    throws -> ServerKeyPool
  {
    try ServerKeyPool(
      directory: directory, limitBytes: limit, party: 0,
      setupID: hex([UInt8](repeating: 3, count: 16)), ledger: ledger)
  }

  /// The dealer's side of a pooled stream, fed through a channel into `pool.receive`.
  static func deal(
    _ chunks: [[UInt8]], order: RunOrder, to pool: ServerKeyPool, endMarker: Bool = true
  ) async throws -> PendingPoolStream {
    let (dealerEnd, serverEnd) = InMemoryChannel.makePair(.p0, .dealer)
    let sink = SealingChannelSink(
      channel: dealerEnd,
      sealer: try StreamSealer(recipient: pool.key.publicKey, runID: order.runID, party: 0))
    async let pending = pool.receive(order, from: serverEnd)
    try await sink.start()
    for chunk in chunks { try await sink.push(chunk) }
    if endMarker {
      try await sink.close()
    } else {
      try await dealerEnd.send([])
    }
    return try await pending
  }

  static func read(_ entry: ServerKeyPool.Entry, from pool: ServerKeyPool) async throws
    -> [[UInt8]]
  {
    let source = try pool.segments(entry)
    var read: [[UInt8]] = []
    while let chunk = try await source.pop() { read.append(chunk) }
    return read
  }

  @Test func aSealedStreamComesBackWholeAndIsNotInTheClearOnDisk() async throws {
    let directory = Self.folder()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let pool = try Self.pool(directory)
    try await Self.deal(Self.chunks, order: Self.order(7), to: pool).commit()
    #expect(pool.counts == [Self.shape: 1])
    let file = try Data(
      contentsOf: URL(fileURLWithPath: directory + "/" + Self.order(7).runID + ".stream"))
    for chunk in Self.chunks {
      #expect(file.range(of: Data(chunk.prefix(32))) == nil, "a chunk lies in the clear")
    }
    let entry = try #require(pool.take(Self.shape))
    #expect(pool.take(Self.shape) == nil, "a stream was taken twice")
    #expect(try await Self.read(entry, from: pool) == Self.chunks)
    pool.finish(entry)
    #expect(pool.usedBytes == 0)
  }

  @Test func analteredCutOrForeignStreamIsRefused() async throws {
    let directory = Self.folder()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let pool = try Self.pool(directory)
    let path = { (run: UInt8) in directory + "/" + Self.order(run).runID + ".stream" }

    // One byte flipped in the middle of a record.
    try await Self.deal(Self.chunks, order: Self.order(1), to: pool).commit()
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(1))))
    bytes[bytes.count - 4000] ^= 1
    try Data(bytes).write(to: URL(fileURLWithPath: path(1)))
    let altered = try #require(pool.take(runID: Self.order(1).runID))
    await #expect(throws: MPCError.self) { _ = try await Self.read(altered, from: pool) }

    // No sealed end: the stream was cut short.
    try await Self.deal(Self.chunks, order: Self.order(2), to: pool, endMarker: false).commit()
    let cut = try #require(pool.take(runID: Self.order(2).runID))
    await #expect(throws: KeyStreamError.self) { _ = try await Self.read(cut, from: pool) }

    // A stream sealed to this pool, carried into another server's pool: its key cannot open it.
    try await Self.deal(Self.chunks, order: Self.order(3), to: pool).commit()
    let otherDirectory = Self.folder()
    defer { try? FileManager.default.removeItem(atPath: otherDirectory) }
    try FileManager.default.createDirectory(
      atPath: otherDirectory, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
      atPath: path(3), toPath: otherDirectory + "/" + Self.order(3).runID + ".stream")
    let other = try Self.pool(otherDirectory)
    let foreign = try #require(other.take(Self.shape))
    await #expect(throws: MPCError.self) { _ = try await Self.read(foreign, from: other) }

    // A stream renamed to another run: its header names the run it was sealed for.
    try await Self.deal(Self.chunks, order: Self.order(4), to: pool).commit()
    let moved = try #require(pool.take(runID: Self.order(4).runID))
    let forged = ServerKeyPool.Entry(
      order: Self.order(5), shape: moved.shape, bytes: moved.bytes, path: moved.path)
    #expect(throws: MPCError.self) { _ = try pool.segments(forged) }
  }

  /// A stream whose run was used, one taken before a crash, one of another setup, an
  /// unfinished write: all dropped when the server starts again, the rest kept.
  @Test func aRestartDropsUsedTakenAndForeignStreams() async throws {
    let directory = Self.folder()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let ledgerDirectory = Self.folder()
    defer { try? FileManager.default.removeItem(atPath: ledgerDirectory) }
    let ledger = try RunLedger(directory: ledgerDirectory)
    let pool = try Self.pool(directory, ledger: ledger)
    for run: UInt8 in 1...4 {
      try await Self.deal(Self.chunks, order: Self.order(run), to: pool).commit()
    }
    let key = try String(contentsOfFile: directory + "/pool.key", encoding: .isoLatin1)
    // Run 1 is used (its id burnt as a run burns it), and a copy of its stream restored.
    let copy = directory + "/copy"
    try FileManager.default.copyItem(
      atPath: directory + "/\(Self.order(1).runID).stream", toPath: copy)
    let used = try #require(pool.take(runID: Self.order(1).runID))
    try ledger.consume(runID: [UInt8](repeating: 1, count: 16))
    pool.finish(used)
    try FileManager.default.moveItem(
      atPath: copy, toPath: directory + "/\(Self.order(1).runID).stream")
    // Run 2 is taken and the server dies before its run ends.
    _ = try #require(pool.take(runID: Self.order(2).runID))
    // An unfinished write.
    FileManager.default.createFile(atPath: directory + "/half.stream.partial", contents: Data([1]))

    let again = try Self.pool(directory, ledger: ledger)
    #expect(again.counts == [Self.shape: 2])
    #expect(again.dropped.contains { $0.contains("already used") }, "\(again.dropped)")
    #expect(again.dropped.contains { $0.contains("taken by a run") }, "\(again.dropped)")
    #expect(again.take(runID: Self.order(1).runID) == nil)
    #expect(again.take(runID: Self.order(2).runID) == nil)
    #expect(!FileManager.default.fileExists(atPath: directory + "/half.stream.partial"))
    #expect(try String(contentsOfFile: directory + "/pool.key", encoding: .isoLatin1) == key)

    // The same folder under another setup keeps nothing.
    let otherSetup = try ServerKeyPool(
      directory: directory, limitBytes: 1 << 30, party: 0,
      setupID: hex([UInt8](repeating: 9, count: 16)), ledger: ledger)
    #expect(otherSetup.counts.isEmpty)
    #expect(otherSetup.dropped.filter { $0.contains("another setup") }.count == 2)
  }

  @Test func thePoolStaysWithinItsLimitAndKeepsWhatTheLeaderHolds() async throws {
    let directory = Self.folder()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let small = try Self.pool(directory, limit: 8000)
    await #expect(throws: RoleError.self) {
      _ = try await Self.deal(Self.chunks, order: Self.order(1), to: small)
    }
    #expect(small.usedBytes == 0 && (small.estimate(Self.shape) ?? 0) > 8000)
    let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory)
    #expect(leftovers == ["pool.key"], "\(leftovers)")

    let pool = try Self.pool(directory)
    for run: UInt8 in 1...3 {
      try await Self.deal(Self.chunks, order: Self.order(run), to: pool).commit()
    }
    pool.keepOnly([Self.order(2).runID])
    #expect(pool.runIDs == [Self.order(2).runID])
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 2)
  }

  @Test func shapesAndTargetsParse() throws {
    #expect(PoolShape("128") == PoolShape(tokens: 128))
    #expect(PoolShape("16h") == PoolShape(tokens: 16, hidesLength: true))
    #expect(PoolShape("32+8") == PoolShape(tokens: 32, newTokens: 8))
    for bad in ["0", "h", "16x", "-3", "32+0", ""] { #expect(PoolShape(bad) == nil, "\(bad)") }
    let targets = try PoolTarget.parse("16h:4,128:2")
    #expect(targets.map(\.shape.description) == ["16h", "128"] && targets.map(\.count) == [4, 2])
    for bad in ["16h", "16h:0", "abc:2", "16h:2:3"] {
      #expect(throws: RoleError.self) { _ = try PoolTarget.parse(bad) }
    }
    let generation = EmbedRequest(
      tokens: 32, validTokens: 32, generation: GenerationPlan(promptTokens: 32, newTokens: 8))
    #expect(PoolShape(request: generation) == PoolShape("32+8"))
    #expect(PoolShape(request: EmbedRequest(tokens: 16, validTokens: 9)) == nil)
  }
}

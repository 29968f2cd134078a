import Crypto
import Foundation
import Testing
import VeilRing
import VeilTestSupport

@testable import VeilFSS

@Suite struct KeyStreamTests {
  let prg = try! TreePRG(runKey: Array("key stream tests".utf8))
  let macKey = SymmetricKey(size: .bits256)

  /// A stream header; `opCount` is the records its stream holds (6 in the default `stream`
  /// and `segmented`).
  func header(runID: [UInt8] = (0..<16).map { UInt8($0) }, party: Int = 0, opCount: Int = 6)
    -> KeyStreamHeader
  {
    KeyStreamHeader(
      kind: .inference, party: party, runID: runID, modelSetupID: [UInt8](repeating: 9, count: 16),
      modelDigest: Array(SHA256.hash(data: Data("model".utf8))),
      graphDigest: Array(SHA256.hash(data: Data("graph".utf8))),
      recipe: "sigma", recipeVersion: 1, ringBits: 50, fractionalBits: 12, sequenceLength: 16,
      batch: 1, opCount: opCount,
      prgKeyID: prg.keyID)
  }

  /// `count` DReLU keys over `elements` elements each.
  func keys(_ count: Int, elements: Int = 8) throws -> [DReLUKey] {
    var random = try SecureRandom()
    return try (0..<count).map { _ in
      try DReLUGate.gen(
        ring: try Ring(bits: 50), offsets: [0], inputMasks: random.elements(elements, bits: 50),
        outputMasks: random.bits(elements), prg: prg, random: &random
      ).0
    }
  }

  /// Six DReLU records for party 0, ops 0…5, in one final segment.
  func stream(order: [Int] = Array(0..<6), header: KeyStreamHeader? = nil) throws -> (
    [UInt8], [DReLUKey]
  ) {
    var writer = KeyStreamWriter(header: header ?? self.header(), macKey: macKey)
    let made = try keys(order.count)
    for (op, key) in zip(order, made) {
      writer.append(opIndex: op, record: key.serialized(party: 0))
    }
    return (writer.finish(), made)
  }

  /// A stream in pieces: `parts[0]` is the encoded header, then one sealed segment per entry of
  /// `segments` (how many records each holds; ops numbered from 0 across them), the last one
  /// final, or an empty final segment after them when `emptyFinal`.
  func segmented(
    _ segments: [Int] = [2, 1, 3], emptyFinal: Bool = false, header: KeyStreamHeader? = nil,
    records given: [[UInt8]]? = nil
  ) throws -> (parts: [[UInt8]], records: [[UInt8]]) {
    let header = header ?? self.header(opCount: given?.count ?? segments.reduce(0, +))
    let records =
      try given
      ?? keys(segments.reduce(0, +), elements: 2).map { $0.serialized(party: header.party) }
    var writer = KeyStreamWriter(header: header, macKey: macKey)
    var parts: [[UInt8]] = []
    var op = 0
    for (i, count) in segments.enumerated() {
      for _ in 0..<count {
        writer.append(opIndex: op, record: records[op])
        op += 1
      }
      parts.append(writer.seal(final: !emptyFinal && i == segments.count - 1))
    }
    if emptyFinal { parts.append(writer.seal(final: true)) }
    let headerSize = header.encoded().count
    parts.replaceSubrange(
      0...0, with: [Array(parts[0].prefix(headerSize)), Array(parts[0].dropFirst(headerSize))])
    return (parts, records)
  }

  /// A party's keys are slices of their segment and keep its whole allocation alive, so a
  /// segment carries little spare capacity: not the room of a larger segment sealed before it,
  /// nor doubling growth's, nor (when it starts a stream) its header's copy.
  @Test func segmentsCarryLittleSpareCapacity() throws {
    let big = try keys(1, elements: 60_000)[0].serialized(party: 0)
    let smaller = try keys(1, elements: 20_000)[0].serialized(party: 0)
    let small = try keys(1, elements: 2)[0].serialized(party: 0)
    var writer = KeyStreamWriter(header: header(), macKey: macKey)
    var segments: [[UInt8]] = []
    writer.append(opIndex: 0, record: big)
    segments.append(writer.seal(final: false))
    writer.append(opIndex: 1, record: smaller)
    segments.append(writer.seal(final: false))
    for op in 2..<40 { writer.append(opIndex: op, record: op == 39 ? smaller : small) }
    segments.append(writer.seal(final: true))
    #expect(big.count > 8 << 20, "the first record is larger than the spare capacity allowed")
    for segment in segments {
      #expect(segment.capacity <= segment.count + KeyStreamWriter.spareCapacity + 4096)
    }
    #expect(segments[1].capacity < segments[0].count / 2)
  }

  /// Takes every record available now, numbering ops after those already taken.
  func drain(_ reader: inout KeyStreamReader, into taken: inout [[UInt8]]) throws {
    while let record = try reader.next(opIndex: taken.count) { taken.append(Array(record)) }
  }

  /// Feeds `bytes` in `chunk`-sized pieces, taking records as they come; returns the records
  /// taken and the refusal, if any (after the end of input has been signalled).
  func feedInChunks(
    _ bytes: [UInt8], chunk: Int, expected: KeyStreamHeader? = nil, ledger: RunLedger = RunLedger()
  ) -> (taken: [[UInt8]], error: KeyStreamError?) {
    var reader = KeyStreamReader(expected: expected ?? header(), macKey: macKey, ledger: ledger)
    var taken: [[UInt8]] = []
    do throws(KeyStreamError) {
      for start in stride(from: 0, to: bytes.count, by: chunk) {
        try reader.feed(Array(bytes[start..<Swift.min(start + chunk, bytes.count)]))
        while let record = try reader.next(opIndex: taken.count) { taken.append(Array(record)) }
      }
      try reader.endOfInput()
      return (taken, nil)
    } catch {
      return (taken, error)
    }
  }

  // MARK: - Round trips

  @Test func recordsComeBackInOpOrder() throws {
    let (bytes, keys) = try stream()
    var reader = try KeyStreamReader(
      bytes: bytes, expected: header(), macKey: macKey, ledger: RunLedger())
    for op in 0..<6 {
      let record = try #require(try reader.next(opIndex: op))
      #expect(try DReLUKey(record: record, party: 0, inputBits: 50) == keys[op])
    }
    #expect(try reader.next(opIndex: 6) == nil)
    #expect(reader.isFinished && !reader.hasPendingRecords)
    #expect(reader.header == header())
  }

  @Test func segmentedStreamsSurviveAnyChunking() throws {
    for emptyFinal in [false, true] {
      let (parts, records) = try segmented([2, 1, 3], emptyFinal: emptyFinal)
      let bytes = Array(parts.joined())
      var sizes = [1, 2, 7, 17, 49, 113, 1000, bytes.count]
      var random = SplitMix64(seed: 42)
      for _ in 0..<8 { sizes.append(Int.random(in: 1...bytes.count, using: &random)) }
      for size in sizes {
        let (taken, error) = feedInChunks(bytes, chunk: size)
        #expect(error == nil, "chunk \(size)")
        #expect(taken == records, "chunk \(size)")
      }
      // Chunks of varying size, split anywhere (inside headers and MACs too).
      for seed in UInt64(1)...12 {
        var random = SplitMix64(seed: seed)
        var reader = KeyStreamReader(expected: header(), macKey: macKey, ledger: RunLedger())
        var taken: [[UInt8]] = []
        var start = 0
        while start < bytes.count {
          let most = seed.isMultiple(of: 2) ? 64 : 4096
          let end = Swift.min(bytes.count, start + Int.random(in: 1...most, using: &random))
          try reader.feed(Array(bytes[start..<end]))
          try drain(&reader, into: &taken)
          start = end
        }
        try reader.endOfInput()
        #expect(reader.isFinished)
        #expect(taken == records, "seed \(seed)")
        #expect(try DReLUKey(record: taken[5], party: 0, inputBits: 50).count == 2)
      }
    }
  }

  @Test func recordsOfAVerifiedSegmentArriveBeforeTheStreamEnds() throws {
    let (parts, records) = try segmented([2, 1, 3])
    var reader = KeyStreamReader(expected: header(), macKey: macKey, ledger: RunLedger())
    try reader.feed(parts[0])
    #expect(reader.header == header())
    #expect(try reader.next(opIndex: 0) == nil)
    // All of segment 0 but its last MAC byte: nothing yet.
    try reader.feed(Array(parts[1].dropLast()))
    #expect(!reader.hasPendingRecords)
    #expect(try reader.next(opIndex: 0) == nil)
    try reader.feed(Array(parts[1].suffix(1)))
    #expect(reader.hasPendingRecords)
    #expect(try reader.next(opIndex: 0).map(Array.init) == records[0])
    #expect(try reader.next(opIndex: 1).map(Array.init) == records[1])
    #expect(try reader.next(opIndex: 2) == nil)
    #expect(!reader.isFinished)
    #expect(throws: KeyStreamError.truncated) { try reader.endOfInput() }
    try reader.feed(parts[2] + parts[3])
    #expect(reader.isFinished)
    #expect(try reader.next(opIndex: 2).map(Array.init) == records[2])
    try reader.endOfInput()
  }

  @Test func theWriterShipsTheHeaderOnceAndCountsPendingBytes() throws {
    let records = try keys(2, elements: 2).map { $0.serialized(party: 0) }
    var writer = KeyStreamWriter(header: header(opCount: 2), macKey: macKey)
    #expect(writer.pendingBytes == 0)
    writer.append(opIndex: 0, record: records[0])
    #expect(writer.pendingBytes == 4 + records[0].count)
    let first = writer.seal(final: false)
    #expect(writer.pendingBytes == 0)
    let headerSize = header().encoded().count
    #expect(
      first.count == headerSize + KeyStreamSegment.headerSize + 4 + records[0].count
        + KeyStreamSegment.macSize)
    writer.append(opIndex: 1, record: records[1])
    let second = writer.seal(final: false)
    #expect(
      second.count == KeyStreamSegment.headerSize + 4 + records[1].count + KeyStreamSegment.macSize)
    let last = writer.finish()
    #expect(last.count == KeyStreamSegment.headerSize + KeyStreamSegment.macSize)
    var reader = try KeyStreamReader(
      bytes: first + second + last, expected: header(opCount: 2), macKey: macKey,
      ledger: RunLedger())
    #expect(try reader.next(opIndex: 0).map(Array.init) == records[0])
    #expect(try reader.next(opIndex: 1).map(Array.init) == records[1])
  }

  // MARK: - Run ledger

  @Test func aReusedRunIsRefusedEvenAcrossRestarts() throws {
    let (bytes, _) = try stream()
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-ledger-\(UUID().uuidString)"
    ).path
    _ = try KeyStreamReader(
      bytes: bytes, expected: header(), macKey: macKey, ledger: try RunLedger(directory: path))
    // A new process (a fresh ledger object over the same file) still refuses the run.
    #expect(throws: KeyStreamError.runAlreadyUsed("000102030405060708090a0b0c0d0e0f")) {
      try KeyStreamReader(
        bytes: bytes, expected: self.header(), macKey: self.macKey,
        ledger: try RunLedger(directory: path))
    }
    try? FileManager.default.removeItem(atPath: path)
  }

  /// Two ledger objects over one folder (two server processes sharing a ledger, or one process
  /// restarted) racing for the same run ids: each id is granted exactly once.
  @Test func aSharedLedgerFolderGrantsEachRunOnce() async throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "veil-ledger-\(UUID().uuidString)"
    ).path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let ids = (0..<64).map { i in (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) } }
    let ledgers = [try RunLedger(directory: path), try RunLedger(directory: path)]
    let granted = await withTaskGroup(of: Int.self) { group in
      for ledger in ledgers {
        group.addTask {
          ids.filter { (try? ledger.consume(runID: $0)) != nil }.count
        }
      }
      return await group.reduce(0, +)
    }
    #expect(granted == ids.count)
    let restarted = try RunLedger(directory: path)
    #expect(ids.allSatisfy { restarted.contains(runID: $0) })
    #expect(throws: KeyStreamError.self) { try restarted.consume(runID: ids[5]) }
  }

  @Test func theRunIsBurntWhenTheFirstSegmentVerifies() throws {
    let (parts, records) = try segmented([2, 1, 3])
    let ledger = RunLedger()
    // Header alone, or a first segment that does not verify: nothing burnt.
    var early = KeyStreamReader(expected: header(), macKey: macKey, ledger: ledger)
    try early.feed(parts[0] + parts[1].dropLast())
    var forged = parts[1]
    forged[forged.count - 1] ^= 0x80
    var bad = KeyStreamReader(expected: header(), macKey: macKey, ledger: ledger)
    #expect(throws: KeyStreamError.badMAC) { try bad.feed(parts[0] + forged) }
    // A header that does not match: nothing burnt either.
    var other = header()
    other.batch = 4
    #expect(throws: KeyStreamError.mismatch(field: "batch")) {
      try KeyStreamReader(
        bytes: Array(parts.joined()), expected: other, macKey: self.macKey, ledger: ledger)
    }
    // The first verified segment burns the run, before any record is taken...
    var first = KeyStreamReader(expected: header(), macKey: macKey, ledger: ledger)
    try first.feed(parts[0] + parts[1])
    #expect(try first.next(opIndex: 0).map(Array.init) == records[0])
    // ...so a second reader on the same ledger is refused at its first segment, whole or streamed.
    var second = KeyStreamReader(expected: header(), macKey: macKey, ledger: ledger)
    try second.feed(parts[0])
    #expect(throws: KeyStreamError.runAlreadyUsed("000102030405060708090a0b0c0d0e0f")) {
      try second.feed(parts[1])
    }
    #expect(throws: KeyStreamError.runAlreadyUsed("000102030405060708090a0b0c0d0e0f")) {
      try second.next(opIndex: 0)
    }
    let (taken, error) = feedInChunks(Array(parts.joined()), chunk: 5, ledger: ledger)
    #expect(taken.isEmpty && error == .runAlreadyUsed("000102030405060708090a0b0c0d0e0f"))
  }

  // MARK: - Header binding

  @Test func streamsOfAnotherModelShapeOrRingAreRefusedByField() throws {
    let (bytes, _) = try stream()
    let changes: [(String, (inout KeyStreamHeader) -> Void)] = [
      ("kind", { $0.kind = .setup }),
      ("party", { $0.party = 1 }),
      ("model setup", { $0.modelSetupID = [UInt8](repeating: 8, count: 16) }),
      ("model digest", { $0.modelDigest = Array(SHA256.hash(data: Data("other model".utf8))) }),
      ("graph digest", { $0.graphDigest = Array(SHA256.hash(data: Data("other graph".utf8))) }),
      ("recipe", { $0.recipe = "puma" }),
      ("recipe", { $0.recipeVersion = 2 }),
      ("ring width", { $0.ringBits = 37 }),
      ("fractional bits", { $0.fractionalBits = 16 }),
      ("sequence length", { $0.sequenceLength = 128 }),
      ("batch", { $0.batch = 2 }),
      ("op count", { $0.opCount = 7 }),
      ("PRG key", { $0.prgKeyID = [UInt8](repeating: 1, count: 8) }),
    ]
    let headerSize = header().encoded().count
    for (field, change) in changes {
      var expected = header()
      change(&expected)
      #expect(throws: KeyStreamError.mismatch(field: field)) {
        try KeyStreamReader(
          bytes: bytes, expected: expected, macKey: self.macKey, ledger: RunLedger())
      }
      // Streamed: refused as soon as the header is complete, before any segment.
      var reader = KeyStreamReader(expected: expected, macKey: macKey, ledger: RunLedger())
      try reader.feed(Array(bytes.prefix(headerSize - 1)))
      #expect(throws: KeyStreamError.mismatch(field: field)) {
        try reader.feed([bytes[headerSize - 1]])
      }
    }
    // The run id is new per run: another one is no mismatch.
    let fresh = header(runID: [UInt8](repeating: 7, count: 16))
    #expect(throws: Never.self) {
      try KeyStreamReader(bytes: bytes, expected: fresh, macKey: self.macKey, ledger: RunLedger())
    }
  }

  @Test func otherFormatsAreRefusedFromTheirFirstBytes() throws {
    let (bytes, _) = try stream()
    var reader = KeyStreamReader(expected: header(), macKey: macKey, ledger: RunLedger())
    #expect(throws: KeyStreamError.record(.corruptKey("not a Veil key stream (bad magic)"))) {
      try reader.feed(Array("VKR1".utf8))
    }
    // Version 1 (a single trailing MAC) is no longer read.
    var old = bytes
    old[4] = 1
    var v1 = KeyStreamReader(expected: header(), macKey: macKey, ledger: RunLedger())
    #expect(throws: KeyStreamError.record(.unsupportedVersion(1))) {
      try v1.feed(Array(old.prefix(6)))
    }
  }

  // MARK: - Truncation, tampering, reordering, splicing

  @Test func truncatedTamperedOrForeignStreamsAreRefused() throws {
    let (bytes, _) = try stream()
    for length in stride(from: 0, to: bytes.count, by: 7) {
      #expect(throws: KeyStreamError.truncated) {
        try KeyStreamReader(
          bytes: Array(bytes.prefix(length)), expected: self.header(), macKey: self.macKey,
          ledger: RunLedger())
      }
    }
    #expect(throws: KeyStreamError.truncated) {
      try KeyStreamReader(
        bytes: Array(bytes.dropLast(40)), expected: self.header(), macKey: self.macKey,
        ledger: RunLedger())
    }
    var tampered = bytes
    tampered[tampered.count / 2] ^= 1
    #expect(throws: KeyStreamError.badMAC) {
      try KeyStreamReader(
        bytes: tampered, expected: self.header(), macKey: self.macKey, ledger: RunLedger())
    }
    #expect(throws: KeyStreamError.badMAC) {
      try KeyStreamReader(
        bytes: bytes, expected: self.header(), macKey: SymmetricKey(size: .bits256),
        ledger: RunLedger())
    }
  }

  @Test func aStreamWithoutItsFinalSegmentIsTruncated() throws {
    for emptyFinal in [false, true] {
      let (parts, records) = try segmented([2, 1, 3], emptyFinal: emptyFinal)
      let cut = Array(parts.dropLast().joined())
      #expect(throws: KeyStreamError.truncated) {
        try KeyStreamReader(
          bytes: cut, expected: self.header(), macKey: self.macKey, ledger: RunLedger())
      }
      // Streamed, the verified segments' records still come out; the end of input is refused.
      let (taken, error) = feedInChunks(cut, chunk: 100)
      #expect(error == .truncated)
      #expect(taken == Array(records.prefix(emptyFinal ? 6 : 3)))
    }
  }

  @Test func reorderedOrReplayedSegmentsAreRefused() throws {
    let (parts, _) = try segmented([2, 1, 3])
    let refusals: [([[UInt8]], KeyStreamError)] = [
      ([parts[0], parts[2], parts[1], parts[3]], .segmentOutOfOrder(expected: 0, found: 1)),
      ([parts[0], parts[1], parts[3], parts[2]], .segmentOutOfOrder(expected: 1, found: 2)),
      (
        [parts[0], parts[1], parts[1], parts[2], parts[3]],
        .segmentOutOfOrder(expected: 1, found: 0)
      ),
      (
        [parts[0], parts[1], parts[2], parts[2], parts[3]],
        .segmentOutOfOrder(expected: 2, found: 1)
      ),
    ]
    for (pieces, error) in refusals {
      #expect(throws: error) {
        try KeyStreamReader(
          bytes: Array(pieces.joined()), expected: self.header(), macKey: self.macKey,
          ledger: RunLedger())
      }
    }
  }

  @Test func segmentsSplicedFromAnotherStreamAreRefused() throws {
    let (parts, records) = try segmented([2, 1, 3])
    // Same dealer key and records, another run; and the other party's stream of this run.
    let (otherRun, _) = try segmented(
      [2, 1, 3], header: header(runID: [UInt8](repeating: 0xAA, count: 16)), records: records)
    let (otherParty, _) = try segmented([2, 1, 3], header: header(party: 1))
    // Another run's header before this run's segments: the first segment's MAC fails.
    let (taken, error) = feedInChunks(
      Array(([otherRun[0]] + parts.dropFirst()).joined()), chunk: 333)
    #expect(taken.isEmpty && error == .badMAC)
    for foreign in [otherRun, otherParty] {
      for i in 1..<parts.count {
        var pieces = parts
        pieces[i] = foreign[i]
        let (taken, error) = feedInChunks(Array(pieces.joined()), chunk: 333)
        #expect(error == .badMAC, "segment \(i - 1)")
        #expect(taken == Array(records.prefix([0, 0, 2, 3][i])))
      }
    }
  }

  @Test func noTamperedByteYieldsAWrongRecord() throws {
    let (parts, records) = try segmented([2, 1, 3])
    let bytes = Array(parts.joined())
    let headerSize = parts[0].count
    // Where each segment header starts.
    var segmentStarts: [Int] = []
    var at = headerSize
    for part in parts.dropFirst() {
      segmentStarts.append(at)
      at += part.count
    }
    for i in 0..<bytes.count {
      var tampered = bytes
      tampered[i] ^= UInt8(1 << (i % 8))
      let (taken, error) = feedInChunks(tampered, chunk: 1 + i % 700)
      #expect(error != nil, "byte \(i)")
      #expect(taken == Array(records.prefix(taken.count)), "byte \(i)")
      let inSegmentHeader = segmentStarts.contains {
        (0..<KeyStreamSegment.headerSize).contains(i - $0)
      }
      let inRunID = (8..<24).contains(i)
      if i >= headerSize && !inSegmentHeader || inRunID {
        #expect(error == .badMAC, "byte \(i)")
      }
    }
  }

  @Test func everyBitFlipInASegmentHeaderIsRefused() throws {
    let (parts, records) = try segmented([2, 1, 3])
    let start = parts[0].count + parts[1].count  // segment 1's header
    let bytes = Array(parts.joined())
    for byte in 0..<KeyStreamSegment.headerSize {
      for bit in 0..<8 {
        var tampered = bytes
        tampered[start + byte] ^= UInt8(1 << bit)
        // Segment 0 verifies and its records come out; the flip refuses the rest.
        var reader = KeyStreamReader(expected: header(), macKey: macKey, ledger: RunLedger())
        try reader.feed(Array(tampered.prefix(start)))
        var taken: [[UInt8]] = []
        try drain(&reader, into: &taken)
        #expect(taken == Array(records.prefix(2)))
        let refused: KeyStreamError
        do throws(KeyStreamError) {
          try reader.feed(Array(tampered.dropFirst(start)))
          try reader.endOfInput()
          Issue.record("byte \(byte) bit \(bit) was accepted")
          continue
        } catch {
          refused = error
        }
        if refused != .truncated {  // refused by feed: nothing more comes out
          #expect(throws: refused) { try reader.next(opIndex: 2) }
        }
        switch byte {
        case 0..<4:
          #expect(refused == .segmentOutOfOrder(expected: 1, found: 1 ^ (1 << (8 * byte + bit))))
        case 4:
          #expect(
            refused
              == (bit == 0 ? .badMAC : .record(.corruptKey("segment 1 has final flag \(1 << bit)")))
          )
        case 5..<9: #expect(refused == .badMAC)
        default:
          // The payload length: too large, past the end of the stream, or misplacing the MAC.
          let length = UInt64(
            parts[2].count - KeyStreamSegment.headerSize - KeyStreamSegment.macSize)
          let flipped = length ^ (1 << UInt64(8 * (byte - 9) + bit))
          let limit = KeyStreamReader.defaultMaximumSegmentBytes
          let available =
            bytes.count - start - KeyStreamSegment.headerSize - KeyStreamSegment.macSize
          let expected: KeyStreamError =
            flipped > UInt64(limit)
            ? .segmentTooLarge(declared: flipped, limit: limit)
            : flipped > UInt64(available) ? .truncated : .badMAC
          #expect(refused == expected, "byte \(byte) bit \(bit)")
        }
      }
    }
  }

  @Test func bytesAfterTheFinalSegmentAreRefused() throws {
    let (parts, _) = try segmented([2, 1, 3])
    let bytes = Array(parts.joined())
    for extra in [[0], Array(parts[1]), bytes] as [[UInt8]] {
      #expect(throws: KeyStreamError.dataAfterFinalSegment) {
        try KeyStreamReader(
          bytes: bytes + extra, expected: self.header(), macKey: self.macKey, ledger: RunLedger())
      }
    }
    var reader = try KeyStreamReader(
      bytes: bytes, expected: header(), macKey: macKey, ledger: RunLedger())
    try reader.feed([])
    #expect(throws: KeyStreamError.dataAfterFinalSegment) { try reader.feed([1]) }
    #expect(!reader.isFinished)
    #expect(throws: KeyStreamError.dataAfterFinalSegment) { try reader.endOfInput() }
  }

  @Test func anOversizeSegmentIsRefusedFromItsHeader() throws {
    let (parts, _) = try segmented([2, 1, 3])
    // A declared payload of 2^60 bytes: refused on its 17-byte header, with no payload sent.
    var w = ByteWriter()
    w.u32(0)
    w.u8(1)
    w.u32(1)
    w.u64(1 << 60)
    var reader = KeyStreamReader(expected: header(), macKey: macKey, ledger: RunLedger())
    try reader.feed(parts[0] + w.bytes.prefix(16))
    #expect(
      throws: KeyStreamError.segmentTooLarge(
        declared: 1 << 60, limit: KeyStreamReader.defaultMaximumSegmentBytes)
    ) {
      try reader.feed([w.bytes[16]])
    }
    // A caller's lower limit applies to genuine segments too.
    let limit = parts[1].count - KeyStreamSegment.headerSize - KeyStreamSegment.macSize - 1
    #expect(throws: KeyStreamError.segmentTooLarge(declared: UInt64(limit + 1), limit: limit)) {
      try KeyStreamReader(
        bytes: Array(parts.joined()), expected: self.header(), macKey: self.macKey,
        ledger: RunLedger(),
        maximumSegmentBytes: limit)
    }
  }

  @Test func authenticSegmentsThatDoNotHoldWholeRecordsAreRefused() throws {
    // Malformed segments correctly MACed with the dealer's key: a dealer bug, still refused.
    let record = try keys(1, elements: 2)[0].serialized(party: 0)
    let encoded = header().encoded()
    let digest = Array(SHA256.hash(data: encoded))
    var tagged = ByteWriter()
    tagged.u32(0)
    tagged.raw(record)
    let cases: [(count: Int, payload: [UInt8], error: KeyStreamError)] = [
      (2, tagged.bytes, .record(.corruptKey("segment 0 declares 2 records but holds 1"))),
      (1, Array(tagged.bytes.dropLast()), .record(.corruptKey("segment 0 ends inside a record"))),
      (2, tagged.bytes + [0, 0, 0], .record(.corruptKey("segment 0 ends inside a record"))),
      (
        2, tagged.bytes + tagged.bytes.prefix(40),
        .record(.corruptKey("segment 0 ends inside a record"))
      ),
    ]
    for (count, payload, error) in cases {
      let segment = KeyStreamSegment.seal(
        index: 0, final: true, recordCount: count, payload: payload, headerDigest: digest,
        macKey: macKey)
      #expect(throws: error) {
        try KeyStreamReader(
          bytes: encoded + segment, expected: self.header(), macKey: self.macKey,
          ledger: RunLedger())
      }
    }
  }

  @Test func recordsOutOfOrderAreRefused() throws {
    let (bytes, _) = try stream(order: [1, 0, 2], header: header(opCount: 3))
    var reader = try KeyStreamReader(
      bytes: bytes, expected: header(opCount: 3), macKey: macKey, ledger: RunLedger())
    #expect(throws: KeyStreamError.outOfOrder(expected: 0, found: 1)) {
      try reader.next(opIndex: 0)
    }
  }
}

extension KeyStreamTests {
  /// The header's op count is the graph's: a stream with a record more, or one fewer, is
  /// refused when its segment verifies.
  @Test func aStreamOfAnotherRecordCountIsRefused() throws {
    for (records, announced) in [(6, 5), (5, 6)] {
      let (bytes, _) = try stream(order: Array(0..<records), header: header(opCount: announced))
      #expect(throws: KeyStreamError.recordCount(announced: announced, found: records)) {
        _ = try KeyStreamReader(
          bytes: bytes, expected: self.header(opCount: announced), macKey: self.macKey,
          ledger: RunLedger())
      }
    }
  }
}

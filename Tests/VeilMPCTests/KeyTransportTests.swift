import Crypto
import Foundation
import Testing
import VeilFSS
import VeilModels

@testable import VeilMPC

/// The streams between the dealer and a party: a party refuses keys from another run, model or
/// shape, a replayed run and a truncated stream, each with a clear error; the dealer's buffer
/// stays bounded.
@Suite struct KeyTransportTests {
  /// A stream header; `opCount` is the records its stream holds (`stream`'s default 3).
  static func header(sequenceLength: Int = 8, model: UInt8 = 1, run: UInt8 = 7, opCount: Int = 3)
    -> KeyStreamHeader
  {
    KeyStreamHeader(
      kind: .inference, party: 0, runID: [UInt8](repeating: run, count: 16),
      modelSetupID: [UInt8](repeating: 3, count: 16),
      modelDigest: [UInt8](repeating: model, count: 32),
      graphDigest: [UInt8](repeating: 4, count: 32), recipe: "sigma", recipeVersion: 1,
      ringBits: 50,
      fractionalBits: 12, sequenceLength: sequenceLength, batch: 1, opCount: opCount,
      prgKeyID: [UInt8](repeating: 5, count: 8))
  }

  static let record = ShareBundle(bits: 50, explicit: [[1, 2, 3]]).serialized(party: 0)

  /// A dealer writing `records` records under `header` into a fresh pipe; the stream is closed
  /// with its final segment unless `truncate`.
  static func stream(
    _ header: KeyStreamHeader, key: SymmetricKey, records: Int = 3, truncate: Bool = false
  )
    async throws -> KeyPipe
  {
    let pipe = KeyPipe(capacity: 1 << 20)
    let streams = DealerKeyStreams(
      headers: [header], macKeys: [key], pipes: [pipe], segmentBytes: 1)
    for op in 0..<records { try await streams.append([(0, op, record)]) }
    if truncate { await pipe.close() } else { try await streams.ship(final: true) }
    return pipe
  }

  @Test func aFullStreamIsReadInOrder() async throws {
    let key = SymmetricKey(size: .bits256)
    let source = KeySource(
      pipe: try await Self.stream(Self.header(), key: key), expected: Self.header(), macKey: key,
      ledger: RunLedger())
    for op in 0..<3 { #expect(Array(try await source.next(opIndex: op)) == Self.record) }
    try await source.finish(afterOp: 3)
  }

  @Test func anotherShapeOrModelIsRefusedNamingTheField() async throws {
    let key = SymmetricKey(size: .bits256)
    for (dealt, field) in [
      (Self.header(sequenceLength: 9), "sequence length"), (Self.header(model: 2), "model digest"),
    ] {
      let source = KeySource(
        pipe: try await Self.stream(dealt, key: key), expected: Self.header(), macKey: key,
        ledger: RunLedger())
      await #expect(throws: KeyStreamError.mismatch(field: field)) {
        _ = try await source.next(opIndex: 0)
      }
    }
  }

  @Test func aReplayedRunIsRefused() async throws {
    let key = SymmetricKey(size: .bits256)
    let ledger = RunLedger()
    let first = KeySource(
      pipe: try await Self.stream(Self.header(), key: key), expected: Self.header(), macKey: key,
      ledger: ledger)
    _ = try await first.next(opIndex: 0)
    let replay = KeySource(
      pipe: try await Self.stream(Self.header(), key: key), expected: Self.header(), macKey: key,
      ledger: ledger)
    await #expect(throws: KeyStreamError.runAlreadyUsed(String(repeating: "07", count: 16))) {
      _ = try await replay.next(opIndex: 0)
    }
  }

  @Test func aTruncatedStreamIsRefused() async throws {
    let key = SymmetricKey(size: .bits256)
    let source = KeySource(
      pipe: try await Self.stream(Self.header(), key: key, truncate: true), expected: Self.header(),
      macKey: key,
      ledger: RunLedger())
    for op in 0..<3 { _ = try await source.next(opIndex: op) }
    await #expect(throws: KeyStreamError.truncated) { try await source.finish(afterOp: 3) }
    await #expect(throws: KeyStreamError.truncated) { _ = try await source.next(opIndex: 3) }
  }

  @Test func aForeignKeyOrAnExtraRecordIsRefused() async throws {
    let source = KeySource(
      pipe: try await Self.stream(Self.header(), key: SymmetricKey(size: .bits256)),
      expected: Self.header(),
      macKey: SymmetricKey(size: .bits256), ledger: RunLedger())
    await #expect(throws: KeyStreamError.badMAC) { _ = try await source.next(opIndex: 0) }
    let key = SymmetricKey(size: .bits256)
    let longer = KeySource(
      pipe: try await Self.stream(Self.header(), key: key, records: 4), expected: Self.header(),
      macKey: key,
      ledger: RunLedger())
    for op in 0..<3 { _ = try await longer.next(opIndex: op) }
    await #expect(throws: KeyStreamError.recordCount(announced: 3, found: 4)) {
      try await longer.finish(afterOp: 3)
    }
  }

  @Test func theDealerWaitsForAFullPipeToDrain() async throws {
    let pipe = KeyPipe(capacity: 100)
    try await pipe.push([UInt8](repeating: 1, count: 150))
    let pushed = Task { try await pipe.push([2]) }
    try await Task.sleep(for: .milliseconds(20))
    #expect(await pipe.peakBytes == 150, "the second chunk waits while the pipe is over capacity")
    #expect(await pipe.pop()?.count == 150)
    try await pushed.value
    #expect(await pipe.pop() == [2])
  }
}

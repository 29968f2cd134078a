// Key streams: the container in which a party's per-inference keys travel from the dealer
// (DESIGN §7), built so that the dealer can produce keys layer by layer through a bounded
// buffer while the parties consume them. This file owns the stream format, the dealer's writer,
// the party's incremental reader and the durable ledger of consumed run ids.
//
// A stream is the encoded KeyStreamHeader (magic "VKS1", version 2: kind, party, run id, model
// setup id, model and graph digests, PRG key id, recipe and its version, ring and fractional
// bits, sequence length, batch, op count), then authenticated segments, all integers
// little-endian:
//
//   offset  size  field
//   0       4     segment index (0, 1, 2, … in order)
//   4       1     final flag (1 on the last segment, else 0)
//   5       4     record count
//   9       8     payload length L
//   17      L     payload: records, each a u32 op index then a key record (KeyFormat.swift)
//                 whose length follows from its header (28 + payload length at offset 20 + 4)
//   17 + L  16    the dealer's MAC: the AES-256-GCM tag, under the stream's key with the
//                 segment index as nonce, of additional data = payload and plaintext =
//                 SHA-256(encoded stream header) ‖ bytes 0..<17 (the ciphertext is dropped;
//                 the reader recomputes the tag and compares in constant time)
//
// Why GMAC and not HMAC-SHA256: every key byte passes through the MAC twice (dealer and party),
// and a MiniLM run streams GBs of keys; SHA-256 cost as much as all the gates together, while
// GHASH (carry-less multiplication) is several times faster. Each stream has its own random key
// and each segment a distinct index, so nonces never repeat under a key.
//
// Why segments: a single MAC over the whole stream makes the reader hold everything before it
// may trust anything. Each segment here is verified on its own, so a party buffers at most one
// segment, and no record is handed out before its segment's MAC verifies. Binding every MAC to
// the header digest, the segment index and the final flag stops reordering, splicing segments
// from another stream or run, and truncation: a stream that ends without a final segment is
// refused. The reader refuses a stream of another party, model, graph, recipe, ring or length
// as soon as its header is complete, and, through a RunLedger, a run id already used: the id
// is burnt when the first segment verifies, before any key is handed out.
import Crypto
import Foundation

/// What a stream is for.
public enum KeyStreamKind: UInt8, Sendable {
  case setup = 1
  case inference = 2
  case client = 3
}

/// The public facts a key stream is bound to. Both parties and the dealer derive them from the
/// same public model description, so any mismatch means keys from somewhere else.
public struct KeyStreamHeader: Sendable, Equatable {
  public static let magic: [UInt8] = Array("VKS1".utf8)
  public static let version: UInt16 = 2

  public var kind: KeyStreamKind
  public var party: Int
  /// 16 random bytes drawn by the dealer per run.
  public var runID: [UInt8]
  /// 16 random bytes drawn with the weight masks (DESIGN §7).
  public var modelSetupID: [UInt8]
  /// SHA-256 digests of the model description and of the graph (op kinds, shapes, widths).
  public var modelDigest: [UInt8]
  public var graphDigest: [UInt8]
  public var recipe: String
  public var recipeVersion: Int
  public var ringBits: Int
  public var fractionalBits: Int
  public var sequenceLength: Int
  public var batch: Int
  public var opCount: Int
  /// The tree PRG's public key id (TreePRG.keyID).
  public var prgKeyID: [UInt8]

  public init(
    kind: KeyStreamKind, party: Int, runID: [UInt8], modelSetupID: [UInt8], modelDigest: [UInt8],
    graphDigest: [UInt8], recipe: String, recipeVersion: Int, ringBits: Int, fractionalBits: Int,
    sequenceLength: Int, batch: Int, opCount: Int, prgKeyID: [UInt8]
  ) {
    self.kind = kind
    self.party = party
    self.runID = runID
    self.modelSetupID = modelSetupID
    self.modelDigest = modelDigest
    self.graphDigest = graphDigest
    self.recipe = recipe
    self.recipeVersion = recipeVersion
    self.ringBits = ringBits
    self.fractionalBits = fractionalBits
    self.sequenceLength = sequenceLength
    self.batch = batch
    self.opCount = opCount
    self.prgKeyID = prgKeyID
  }

  func encoded() -> [UInt8] {
    var w = ByteWriter()
    w.raw(Self.magic)
    w.u16(Self.version)
    w.u8(kind.rawValue)
    w.u8(UInt8(party))
    for (field, length) in [
      (runID, 16), (modelSetupID, 16), (modelDigest, 32), (graphDigest, 32), (prgKeyID, 8),
    ] {
      w.raw(
        Array(field.prefix(length))
          + [UInt8](repeating: 0, count: Swift.max(0, length - field.count)))
    }
    let name = Array(recipe.utf8.prefix(32))
    w.u8(UInt8(name.count))
    w.raw(name)
    for v in [recipeVersion, ringBits, fractionalBits, sequenceLength, batch, opCount] {
      w.u32(UInt32(clamping: v))
    }
    return w.bytes
  }

  static func decode(_ r: inout ByteReader) throws(FSSError) -> KeyStreamHeader {
    guard try r.raw(4) == magic else { throw .corruptKey("not a Veil key stream (bad magic)") }
    let version = try r.u16()
    guard version == Self.version else { throw .unsupportedVersion(Int(version)) }
    let kindByte = try r.u8()
    guard let kind = KeyStreamKind(rawValue: kindByte) else {
      throw .corruptKey("unknown stream kind \(kindByte)")
    }
    let party = Int(try r.u8())
    let runID = try r.raw(16)
    let setup = try r.raw(16)
    let model = try r.raw(32)
    let graph = try r.raw(32)
    let prg = try r.raw(8)
    let nameLength = Int(try r.u8())
    guard let recipe = String(bytes: try r.raw(nameLength), encoding: .utf8) else {
      throw .corruptKey("recipe name is not UTF-8")
    }
    var numbers: [Int] = []
    for _ in 0..<6 { numbers.append(Int(try r.u32())) }
    return KeyStreamHeader(
      kind: kind, party: party, runID: runID, modelSetupID: setup, modelDigest: model,
      graphDigest: graph,
      recipe: recipe, recipeVersion: numbers[0], ringBits: numbers[1], fractionalBits: numbers[2],
      sequenceLength: numbers[3], batch: numbers[4], opCount: numbers[5], prgKeyID: prg)
  }
}

/// Why a key stream was refused, naming the field that did not match.
public enum KeyStreamError: Error, Equatable, CustomStringConvertible {
  case mismatch(field: String)
  case runAlreadyUsed(String)
  case outOfOrder(expected: Int, found: Int)
  case segmentOutOfOrder(expected: Int, found: Int)
  case segmentTooLarge(declared: UInt64, limit: Int)
  case dataAfterFinalSegment
  case truncated
  case badMAC
  case record(FSSError)
  case ledger(String)
  /// The stream holds more records than its header's op count, or ends with fewer.
  case recordCount(announced: Int, found: Int)

  public var description: String {
    switch self {
    case .mismatch(let field): return "key stream refused: its \(field) does not match this run"
    case .runAlreadyUsed(let id):
      return "key stream refused: run \(id) was already used (keys are single-use)"
    case .outOfOrder(let e, let f):
      return "key stream refused: expected the key of op \(e), found op \(f)"
    case .segmentOutOfOrder(let e, let f):
      return "key stream refused: expected segment \(e), found segment \(f) (reordered or spliced)"
    case .segmentTooLarge(let declared, let limit):
      return
        "key stream refused: a segment declares \(declared) payload bytes, more than the limit of \(limit)"
    case .dataAfterFinalSegment: return "key stream refused: bytes follow its final segment"
    case .recordCount(let announced, let found):
      return "key stream refused: its header announces \(announced) key records, the stream holds \(found)"
    case .truncated: return "key stream refused: it ends before its final segment (truncated)"
    case .badMAC: return "key stream refused: the dealer's MAC does not verify"
    case .record(let error): return "key stream refused: \(error)"
    case .ledger(let why): return "run ledger: \(why)"
    }
  }
}

/// The fixed header of a segment and its MAC input.
enum KeyStreamSegment {
  static let headerSize = 17
  static let macSize = 16

  /// The segment header followed by the payload and its MAC, as the dealer seals it.
  static func seal(
    index: Int, final: Bool, recordCount: Int, payload: [UInt8], headerDigest: [UInt8],
    macKey: SymmetricKey
  ) -> [UInt8] {
    var segment = [UInt8](repeating: 0, count: headerSize)
    segment.reserveCapacity(headerSize + payload.count + macSize)
    segment += payload
    sealInPlace(
      &segment, index: index, final: final, recordCount: recordCount, headerDigest: headerDigest,
      macKey: macKey)
    return segment
  }

  /// Seals a buffer holding `headerSize` bytes of room followed by the payload: fills in the
  /// segment header and appends the tag, without copying the payload.
  static func sealInPlace(
    _ segment: inout [UInt8], index: Int, final: Bool, recordCount: Int, headerDigest: [UInt8],
    macKey: SymmetricKey
  ) {
    var w = ByteWriter()
    w.u32(UInt32(index))
    w.u8(final ? 1 : 0)
    w.u32(UInt32(recordCount))
    w.u64(UInt64(segment.count - headerSize))
    segment.replaceSubrange(0..<headerSize, with: w.bytes)
    segment += mac(
      index: index, headerDigest: headerDigest, segmentHeader: w.bytes[...],
      payload: segment[headerSize...],
      macKey: macKey)
  }

  /// The segment's 16-byte tag (see the file header).
  static func mac(
    index: Int, headerDigest: [UInt8], segmentHeader: ArraySlice<UInt8>, payload: ArraySlice<UInt8>,
    macKey: SymmetricKey
  ) -> [UInt8] {
    var nonce = [UInt8](repeating: 0, count: 12)
    for j in 0..<8 { nonce[j] = UInt8(truncatingIfNeeded: UInt64(index) >> UInt64(8 * j)) }
    // A 12-byte nonce and a 16- or 32-byte key cannot be refused; an empty tag fails every check.
    guard let gcmNonce = try? AES.GCM.Nonce(data: nonce),
      let box = try? AES.GCM.seal(
        headerDigest + segmentHeader, using: macKey, nonce: gcmNonce, authenticating: payload)
    else { return [] }
    return Array(box.tag)
  }

  /// Compares tags without an early exit.
  static func equalTags<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
    guard a.count == b.count, !a.isEmpty else { return false }
    return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
  }
}

/// The dealer's side: collects op-tagged records and seals them into authenticated segments,
/// so that keys can be shipped as they are made.
public struct KeyStreamWriter {
  private let encodedHeader: [UInt8]
  private let headerDigest: [UInt8]
  private let macKey: SymmetricKey
  private var payload = emptyPayload()
  private var records = 0
  private var segment = 0
  private var finished = false

  public init(header: KeyStreamHeader, macKey: SymmetricKey) {
    encodedHeader = header.encoded()
    headerDigest = Array(SHA256.hash(data: encodedHeader))
    self.macKey = macKey
  }

  /// Payload bytes appended since the last seal (what the next segment will carry, less its
  /// 17-byte header and 16-byte MAC).
  public var pendingBytes: Int { payload.count - KeyStreamSegment.headerSize }

  /// Appends the key record of op `opIndex` (records must come in op order, from 0).
  public mutating func append(opIndex: Int, record: [UInt8]) {
    precondition(!finished, "KeyStreamWriter: append after the final segment")
    precondition(Self.isKeyRecord(record), "KeyStreamWriter: not a whole key record")
    // Room for the record and the tag, and at most `spareCapacity` beyond: a reader's keys are
    // slices of their segment and keep its whole allocation alive, so a segment must not
    // carry the spare room of doubling growth or of a larger earlier segment (GPT-2 at 512
    // tokens held 3 GB more that way).
    let needed = payload.count + 4 + record.count + KeyStreamSegment.macSize
    if needed > payload.capacity {
      payload.reserveCapacity(
        Swift.max(needed, Swift.min(2 * payload.capacity, needed + Self.spareCapacity)))
    }
    withUnsafeBytes(of: UInt32(opIndex).littleEndian) { payload.append(contentsOf: $0) }
    payload.append(contentsOf: record)
    records += 1
  }

  /// The bytes to ship next: the encoded header before the first segment, then one segment
  /// holding every record appended since the last seal. Only the final segment may be empty;
  /// nothing may be appended or sealed after it. Readers refuse a segment above their limit
  /// (`KeyStreamReader.defaultMaximumSegmentBytes` unless they set one): seal before.
  public mutating func seal(final: Bool) -> [UInt8] {
    precondition(!finished, "KeyStreamWriter: seal after the final segment")
    precondition(final || records > 0, "KeyStreamWriter: only the final segment may be empty")
    // The payload buffer keeps room for the segment header in front and the tag behind, so
    // sealing patches one in and appends the other instead of copying the payload (keys run
    // to gigabytes).
    var out = payload
    payload = Self.emptyPayload()
    KeyStreamSegment.sealInPlace(
      &out, index: segment, final: final, recordCount: records, headerDigest: headerDigest,
      macKey: macKey)
    if segment == 0 { out = encodedHeader + out }
    records = 0
    segment += 1
    finished = final
    return out
  }

  /// A payload buffer holding only the room for a segment header.
  private static func emptyPayload() -> [UInt8] {
    [UInt8](repeating: 0, count: KeyStreamSegment.headerSize)
  }

  /// The most spare capacity `append` reserves beyond what its record needs.
  static let spareCapacity = 4 << 20

  /// Seals everything appended since the last seal as the final segment; for a stream made in
  /// one go, the whole stream.
  public mutating func finish() -> [UInt8] { seal(final: true) }

  /// Whether `record`'s length is the one its key-record header declares.
  private static func isKeyRecord(_ record: [UInt8]) -> Bool {
    var r = ByteReader(record, from: 20)
    guard let length = try? r.u64(), length <= UInt64(record.count) else { return false }
    return record.count == KeyRecordHeader.size + Int(length) + 4
  }
}

/// A party's side, fed bytes as they arrive in any chunking: checks the header against what
/// this run expects as soon as it is complete, verifies each segment's MAC before any of its
/// records becomes available, burns the run id when the first segment verifies, then yields
/// records in op order. It buffers at most the current incomplete segment plus the verified
/// records not yet taken: a caller that feeds without taking records holds them all.
public struct KeyStreamReader {
  /// A limit that leaves room for any one layer's keys while refusing absurd lengths.
  public static let defaultMaximumSegmentBytes = 1 << 30

  private enum Phase {
    case header
    case segmentHeader(index: Int)
    case segmentBody(index: Int, final: Bool, recordCount: Int, payloadLength: Int, header: [UInt8])
    case finished
  }

  /// The stream's header once it has arrived and matched; nil before.
  public private(set) var header: KeyStreamHeader?
  private let expected: KeyStreamHeader
  private let macKey: SymmetricKey
  private let ledger: RunLedger
  private let maximumSegmentBytes: Int
  private var phase = Phase.header
  private var headerDigest: [UInt8] = []
  /// Bytes of the current incomplete unit (stream header, segment header or segment body).
  private var pending: [UInt8] = []
  /// Verified records not yet taken, from `head` on.
  private var records: [(op: Int, bytes: ArraySlice<UInt8>)] = []
  private var head = 0
  /// Once refused, a reader stays refused.
  private var failure: KeyStreamError?
  /// Records in the verified segments so far.
  private var recordsReceived = 0

  /// A reader awaiting bytes. Fields of `expected` that must match: everything except the run
  /// id, which is new per run. A segment declaring more than `maximumSegmentBytes` of payload
  /// is refused before anything is allocated for it.
  public init(
    expected: KeyStreamHeader, macKey: SymmetricKey, ledger: RunLedger,
    maximumSegmentBytes: Int = defaultMaximumSegmentBytes
  ) {
    self.expected = expected
    self.macKey = macKey
    self.ledger = ledger
    self.maximumSegmentBytes = Swift.max(0, maximumSegmentBytes)
  }

  /// Reads a whole stream held in memory; refuses it unless it ends with its final segment.
  public init(
    bytes: [UInt8], expected: KeyStreamHeader, macKey: SymmetricKey, ledger: RunLedger,
    maximumSegmentBytes: Int = defaultMaximumSegmentBytes
  ) throws(KeyStreamError) {
    self.init(
      expected: expected, macKey: macKey, ledger: ledger, maximumSegmentBytes: maximumSegmentBytes)
    try feed(bytes)
    try endOfInput()
  }

  /// Whether the final segment has arrived and verified (its records may not all be taken).
  public var isFinished: Bool {
    if case .finished = phase { return failure == nil }
    return false
  }

  /// Whether a verified record is waiting to be taken with `next(opIndex:)`.
  public var hasPendingRecords: Bool { head < records.count }

  /// Takes in the next bytes of the stream, split anywhere. Records of every segment completed
  /// and verified by them become available to `next(opIndex:)`.
  public mutating func feed(_ bytes: [UInt8]) throws(KeyStreamError) {
    if let failure { throw failure }
    do throws(KeyStreamError) {
      var input = bytes[...]
      while try step(&input) {}
    } catch {
      failure = error
      pending = []
      records = []
      head = 0
      throw error
    }
  }

  /// Call when the input has ended: refuses a stream whose final segment never came.
  public func endOfInput() throws(KeyStreamError) {
    if let failure { throw failure }
    guard case .finished = phase else { throw .truncated }
  }

  /// The next verified record, which must belong to op `opIndex`; nil when none is available
  /// (not yet arrived, or after the last one — `isFinished` tells which). A reader that has
  /// refused its stream hands out nothing more.
  public mutating func next(opIndex: Int) throws(KeyStreamError) -> ArraySlice<UInt8>? {
    if let failure { throw failure }
    guard head < records.count else { return nil }
    let op = records[head].op
    guard op == opIndex else { throw .outOfOrder(expected: opIndex, found: op) }
    let record = records[head].bytes
    records[head].bytes = []
    head += 1
    if head == records.count {
      records.removeAll(keepingCapacity: true)
      head = 0
    } else if head >= 64 && 2 * head >= records.count {
      records.removeFirst(head)
      head = 0
    }
    return record
  }

  /// Advances through one unit of the stream; false when `input` is spent (or the stream ended
  /// and nothing follows).
  private mutating func step(_ input: inout ArraySlice<UInt8>) throws(KeyStreamError) -> Bool {
    switch phase {
    case .header:
      return try readHeader(&input)
    case .segmentHeader(let index):
      guard let bytes = unit(KeyStreamSegment.headerSize, from: &input) else { return false }
      let found = Int(Self.littleEndian(bytes, at: bytes.startIndex, size: 4))
      guard found == index else { throw .segmentOutOfOrder(expected: index, found: found) }
      let flag = bytes[bytes.startIndex + 4]
      guard flag <= 1 else { throw .record(.corruptKey("segment \(index) has final flag \(flag)")) }
      let count = Int(Self.littleEndian(bytes, at: bytes.startIndex + 5, size: 4))
      let length = Self.littleEndian(bytes, at: bytes.startIndex + 9, size: 8)
      // Checked before anything is allocated for the payload.
      guard length <= UInt64(maximumSegmentBytes) else {
        throw .segmentTooLarge(declared: length, limit: maximumSegmentBytes)
      }
      phase = .segmentBody(
        index: index, final: flag == 1, recordCount: count, payloadLength: Int(length),
        header: Array(bytes))
      return true
    case .segmentBody(let index, let final, let recordCount, let payloadLength, let segmentHeader):
      guard let body = unit(payloadLength + KeyStreamSegment.macSize, from: &input) else {
        return false
      }
      let payload = body.prefix(payloadLength)
      let mac = KeyStreamSegment.mac(
        index: index, headerDigest: headerDigest, segmentHeader: segmentHeader[...],
        payload: payload, macKey: macKey)
      guard KeyStreamSegment.equalTags(mac, body.suffix(KeyStreamSegment.macSize)) else {
        throw .badMAC
      }
      let found = try Self.records(in: payload, segment: index)
      guard found.count == recordCount else {
        throw .record(
          .corruptKey("segment \(index) declares \(recordCount) records but holds \(found.count)"))
      }
      // Burn the run id before any key is handed out: a crashed run is never retried.
      if index == 0, let header { try ledger.consume(runID: header.runID) }
      // The header announced the graph's record count: no more, and all of them by the end.
      recordsReceived += found.count
      if let header, recordsReceived > header.opCount || (final && recordsReceived != header.opCount)
      {
        throw .recordCount(announced: header.opCount, found: recordsReceived)
      }
      records += found
      phase = final ? .finished : .segmentHeader(index: index + 1)
      return true
    case .finished:
      guard input.isEmpty else { throw .dataAfterFinalSegment }
      return false
    }
  }

  /// Collects the stream header; once complete, decodes it and checks it against `expected`.
  /// Its size follows from the recipe-name length at offset 112, so it is read in two parts.
  private mutating func readHeader(_ input: inout ArraySlice<UInt8>) throws(KeyStreamError) -> Bool
  {
    // 112 bytes of fixed fields, the name length, the name, six u32 numbers.
    let need = pending.count > 112 ? 113 + Int(pending[112]) + 24 : 113
    let take = Swift.min(need - pending.count, input.count)
    pending += input.prefix(take)
    input = input.dropFirst(take)
    // Decoding a prefix fails only for want of bytes unless a complete field is wrong, so bad
    // magic, version or kind are refused as soon as they arrive.
    var r = ByteReader(pending)
    let decoded: KeyStreamHeader
    do throws(FSSError) {
      decoded = try KeyStreamHeader.decode(&r)
    } catch {
      if case .truncatedKey = error { return !input.isEmpty }
      throw .record(error)
    }
    let e = expected
    let checks: [(String, Bool)] = [
      ("kind", decoded.kind == e.kind), ("party", decoded.party == e.party),
      ("model setup", decoded.modelSetupID == e.modelSetupID),
      ("model digest", decoded.modelDigest == e.modelDigest),
      ("graph digest", decoded.graphDigest == e.graphDigest),
      ("recipe", decoded.recipe == e.recipe && decoded.recipeVersion == e.recipeVersion),
      ("ring width", decoded.ringBits == e.ringBits),
      ("fractional bits", decoded.fractionalBits == e.fractionalBits),
      ("sequence length", decoded.sequenceLength == e.sequenceLength),
      ("batch", decoded.batch == e.batch),
      ("op count", decoded.opCount == e.opCount), ("PRG key", decoded.prgKeyID == e.prgKeyID),
    ]
    if let failed = checks.first(where: { !$0.1 }) { throw .mismatch(field: failed.0) }
    header = decoded
    headerDigest = Array(SHA256.hash(data: pending))
    pending = []
    phase = .segmentHeader(index: 0)
    return true
  }

  /// The next `count` bytes of the current unit once all have arrived: straight from `input`
  /// when nothing is pending and it holds them all, else gathered in `pending`.
  private mutating func unit(_ count: Int, from input: inout ArraySlice<UInt8>) -> ArraySlice<
    UInt8
  >? {
    if pending.isEmpty && input.count >= count {
      defer { input = input.dropFirst(count) }
      return input.prefix(count)
    }
    let take = Swift.min(count - pending.count, input.count)
    pending += input.prefix(take)
    input = input.dropFirst(take)
    guard pending.count == count else { return nil }
    defer { pending = [] }
    return pending[...]
  }

  /// Splits a verified payload into its op-tagged records (a u32 op index, then a key record
  /// whose length its header gives); every byte must belong to a whole record.
  private static func records(
    in payload: ArraySlice<UInt8>, segment: Int
  ) throws(KeyStreamError) -> [(op: Int, bytes: ArraySlice<UInt8>)] {
    var found: [(op: Int, bytes: ArraySlice<UInt8>)] = []
    var p = payload.startIndex
    while p < payload.endIndex {
      let remaining = payload.endIndex - p
      guard remaining >= 4 + KeyRecordHeader.size + 4 else {
        throw .record(.corruptKey("segment \(segment) ends inside a record"))
      }
      let op = Int(littleEndian(payload, at: p, size: 4))
      let length = littleEndian(payload, at: p + 4 + 20, size: 8)
      guard length <= UInt64(remaining - 4 - KeyRecordHeader.size - 4) else {
        throw .record(.corruptKey("segment \(segment) ends inside a record"))
      }
      let end = p + 4 + KeyRecordHeader.size + Int(length) + 4
      // A slice of the verified segment, not a copy: the segment lives until its last record is used.
      found.append((op, payload[(p + 4)..<end]))
      p = end
    }
    return found
  }

  private static func littleEndian(_ bytes: ArraySlice<UInt8>, at start: Int, size: Int) -> UInt64 {
    var v: UInt64 = 0
    for j in 0..<size { v |= UInt64(bytes[start + j]) << UInt64(8 * j) }
    return v
  }
}

/// Durable record of consumed run ids (DESIGN §7: a run id is burnt before anything is sent).
/// Backed by a folder, each consumed id is one marker file created with O_CREAT | O_EXCL and
/// synced with its folder before `consume` returns: the kernel decides atomically which of
/// several processes sharing the folder gets a run id, and a crash after `consume` leaves the
/// id burnt. Nothing is cached: every consume asks the file system.
public final class RunLedger: @unchecked Sendable {
  // @unchecked: the in-memory set is only touched under `lock`.
  private let directory: String?
  private var used: Set<[UInt8]> = []
  private let lock = NSLock()

  /// A ledger kept in memory only (tests, one-process runs).
  public init() { directory = nil }

  /// A ledger backed by the folder `directory` (created, 0700, if missing).
  public init(directory: String) throws(KeyStreamError) {
    self.directory = directory
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
      guard isDirectory.boolValue else { throw .ledger("\(directory) is not a run-ledger folder") }
    } else {
      do {
        try FileManager.default.createDirectory(
          atPath: directory, withIntermediateDirectories: true,
          attributes: [.posixPermissions: 0o700])
      } catch { throw .ledger("cannot create \(directory): \(error.localizedDescription)") }
    }
  }

  private static func name(_ runID: [UInt8]) -> String {
    runID.map { String(format: "%02x", $0) }.joined()
  }

  /// Whether `runID` was consumed (by this or any process sharing the folder).
  public func contains(runID: [UInt8]) -> Bool {
    if let directory {
      return FileManager.default.fileExists(atPath: directory + "/" + Self.name(runID))
    }
    lock.lock()
    defer { lock.unlock() }
    return used.contains(runID)
  }

  /// Marks `runID` used, durably, or refuses it if it already was.
  public func consume(runID: [UInt8]) throws(KeyStreamError) {
    let hex = Self.name(runID)
    guard let directory else {
      lock.lock()
      defer { lock.unlock() }
      guard used.insert(runID).inserted else { throw .runAlreadyUsed(hex) }
      return
    }
    let path = directory + "/" + hex
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard fd >= 0 else {
      if errno == EEXIST { throw .runAlreadyUsed(hex) }
      throw .ledger("cannot record run \(hex) in \(directory): \(String(cString: strerror(errno)))")
    }
    let synced = fsync(fd) == 0
    close(fd)
    let folder = open(directory, O_RDONLY)
    let folderSynced = folder >= 0 && fsync(folder) == 0
    if folder >= 0 { close(folder) }
    guard synced, folderSynced else { throw .ledger("cannot sync run \(hex) in \(directory)") }
  }
}

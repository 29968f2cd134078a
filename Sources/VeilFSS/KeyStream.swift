// Key streams: the container in which a party's per-inference keys travel from the dealer
// (DESIGN §7). A header binds the stream to one run, one party, one model setup and graph, one
// recipe and ring; records follow in graph order, each tagged with its op index; a trailer
// carries the record count and the dealer's HMAC-SHA256 over everything before it. The reader
// refuses a stream of another run, party, model, graph, recipe, ring or length, a record out of
// order, a truncated stream and a bad MAC — and, through a RunLedger, a run id already used.
import Crypto
import Foundation

/// What a stream is for.
public enum KeyStreamKind: UInt8, Sendable {
  case setup = 1, inference = 2, client = 3
}

/// The public facts a key stream is bound to. Both parties and the dealer derive them from the
/// same public model description, so any mismatch means keys from somewhere else.
public struct KeyStreamHeader: Sendable, Equatable {
  public static let magic: [UInt8] = Array("VKS1".utf8)
  public static let version: UInt16 = 1

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
    for (field, length) in [(runID, 16), (modelSetupID, 16), (modelDigest, 32), (graphDigest, 32), (prgKeyID, 8)] {
      w.raw(Array(field.prefix(length)) + [UInt8](repeating: 0, count: Swift.max(0, length - field.count)))
    }
    let name = Array(recipe.utf8.prefix(32))
    w.u8(UInt8(name.count))
    w.raw(name)
    for v in [recipeVersion, ringBits, fractionalBits, sequenceLength, batch, opCount] { w.u32(UInt32(clamping: v)) }
    return w.bytes
  }

  static func decode(_ r: inout ByteReader) throws(FSSError) -> KeyStreamHeader {
    guard try r.raw(4) == magic else { throw .corruptKey("not a Veil key stream (bad magic)") }
    let version = try r.u16()
    guard version == Self.version else { throw .unsupportedVersion(Int(version)) }
    let kindByte = try r.u8()
    guard let kind = KeyStreamKind(rawValue: kindByte) else { throw .corruptKey("unknown stream kind \(kindByte)") }
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
      kind: kind, party: party, runID: runID, modelSetupID: setup, modelDigest: model, graphDigest: graph,
      recipe: recipe, recipeVersion: numbers[0], ringBits: numbers[1], fractionalBits: numbers[2],
      sequenceLength: numbers[3], batch: numbers[4], opCount: numbers[5], prgKeyID: prg)
  }
}

/// Why a key stream was refused, naming the field that did not match.
public enum KeyStreamError: Error, Equatable, CustomStringConvertible {
  case mismatch(field: String)
  case runAlreadyUsed(String)
  case outOfOrder(expected: Int, found: Int)
  case truncated
  case badMAC
  case record(FSSError)
  case ledger(String)

  public var description: String {
    switch self {
    case .mismatch(let field): return "key stream refused: its \(field) does not match this run"
    case .runAlreadyUsed(let id): return "key stream refused: run \(id) was already used (keys are single-use)"
    case .outOfOrder(let e, let f): return "key stream refused: expected the key of op \(e), found op \(f)"
    case .truncated: return "key stream refused: it ends before its trailer (truncated)"
    case .badMAC: return "key stream refused: the dealer's MAC does not verify"
    case .record(let error): return "key stream refused: \(error)"
    case .ledger(let why): return "run ledger: \(why)"
    }
  }
}

/// The dealer's side: appends op-tagged records and seals the stream with its MAC.
public struct KeyStreamWriter {
  private var bytes: [UInt8]
  private var records = 0
  private let macKey: SymmetricKey

  public init(header: KeyStreamHeader, macKey: SymmetricKey) {
    self.bytes = header.encoded()
    self.macKey = macKey
  }

  /// Appends the key record of op `opIndex` (records must come in op order, from 0).
  public mutating func append(opIndex: Int, record: [UInt8]) {
    var w = ByteWriter()
    w.u32(UInt32(opIndex))
    w.raw(record)
    bytes += w.bytes
    records += 1
  }

  /// The finished stream: header, records, trailer (end marker, record count, HMAC-SHA256).
  public func finish() -> [UInt8] {
    var w = ByteWriter()
    w.u32(.max)  // end marker where an op index would be
    w.u32(UInt32(records))
    var sealed = bytes + w.bytes
    sealed += Array(HMAC<SHA256>.authenticationCode(for: sealed, using: macKey))
    return sealed
  }
}

/// A party's side: checks the header against what this run expects, walks the records to the
/// trailer, verifies the dealer's MAC, marks the run consumed — all before handing out any key —
/// then yields records in op order.
public struct KeyStreamReader {
  public let header: KeyStreamHeader
  private let bytes: [UInt8]
  /// (op index, byte range) of each record, in stream order.
  private let records: [(op: Int, range: Range<Int>)]
  private var nextRecord = 0

  /// Fields of `expected` that must match: everything except the run id, which is new per run.
  public init(bytes: [UInt8], expected: KeyStreamHeader, macKey: SymmetricKey, ledger: RunLedger) throws(KeyStreamError) {
    self.bytes = bytes
    var r = ByteReader(bytes)
    do { header = try KeyStreamHeader.decode(&r) } catch {
      if case .truncatedKey = error { throw .truncated }
      throw .record(error)
    }
    let checks: [(String, Bool)] = [
      ("kind", header.kind == expected.kind), ("party", header.party == expected.party),
      ("model setup", header.modelSetupID == expected.modelSetupID),
      ("model digest", header.modelDigest == expected.modelDigest),
      ("graph digest", header.graphDigest == expected.graphDigest),
      ("recipe", header.recipe == expected.recipe && header.recipeVersion == expected.recipeVersion),
      ("ring width", header.ringBits == expected.ringBits),
      ("fractional bits", header.fractionalBits == expected.fractionalBits),
      ("sequence length", header.sequenceLength == expected.sequenceLength), ("batch", header.batch == expected.batch),
      ("op count", header.opCount == expected.opCount), ("PRG key", header.prgKeyID == expected.prgKeyID),
    ]
    if let failed = checks.first(where: { !$0.1 }) { throw .mismatch(field: failed.0) }
    records = try Self.walk(&r)
    // The MAC covers everything before it: verify it before any key is used.
    let body = bytes[..<r.position]
    guard HMAC<SHA256>.isValidAuthenticationCode(Array(bytes[r.position...]), authenticating: body, using: macKey)
    else { throw .badMAC }
    // Burn the run id before anything is sent: a crashed run is never retried with these keys.
    try ledger.consume(runID: header.runID)
  }

  /// Finds every record (op tag, then a key record whose header gives its length) up to the
  /// trailer, which must be followed by exactly a 32-byte MAC.
  private static func walk(_ r: inout ByteReader) throws(KeyStreamError) -> [(op: Int, range: Range<Int>)] {
    var found: [(op: Int, range: Range<Int>)] = []
    do throws(FSSError) {
      while true {
        let tag = try r.u32()
        if tag == .max {
          let count = Int(try r.u32())
          guard count == found.count else { throw FSSError.corruptKey("trailer counts \(count) records, found \(found.count)") }
          guard r.end - r.position == 32 else {
            throw r.end - r.position < 32 ? FSSError.truncatedKey(expected: r.position + 32, found: r.end) : FSSError.corruptKey("bytes after the MAC")
          }
          return found
        }
        let start = r.position
        var peek = ByteReader(r.bytes, from: start + 20, to: r.end)
        let length = try peek.u64()
        guard length <= UInt64(r.end) else { throw FSSError.truncatedKey(expected: Int(clamping: length), found: r.end) }
        _ = try r.take(KeyRecordHeader.size + Int(length) + 4)
        found.append((Int(tag), start..<r.position))
      }
    } catch {
      if case .truncatedKey = error { throw .truncated }
      throw .record(error)
    }
  }

  /// The next record, which must belong to op `opIndex`; nil after the last one.
  public mutating func next(opIndex: Int) throws(KeyStreamError) -> [UInt8]? {
    guard nextRecord < records.count else { return nil }
    let record = records[nextRecord]
    guard record.op == opIndex else { throw .outOfOrder(expected: opIndex, found: record.op) }
    nextRecord += 1
    return Array(bytes[record.range])
  }
}

/// Durable record of consumed run ids: an append-only file, synced before a run starts.
public final class RunLedger: @unchecked Sendable {
  // @unchecked: every access goes through `lock`.
  private let path: String?
  private var used: Set<[UInt8]> = []
  private let lock = NSLock()

  /// A ledger kept in memory only (tests, one-process runs).
  public init() { path = nil }

  /// A ledger backed by `path` (created if missing); ids already in it count as used.
  public init(path: String) throws(KeyStreamError) {
    self.path = path
    if FileManager.default.fileExists(atPath: path) {
      guard let data = FileManager.default.contents(atPath: path), data.count % 16 == 0 else {
        throw .ledger("\(path) is not a run ledger")
      }
      let bytes = [UInt8](data)
      for i in stride(from: 0, to: bytes.count, by: 16) { used.insert(Array(bytes[i..<(i + 16)])) }
    }
  }

  /// Marks `runID` used, durably, or refuses it if it already was.
  public func consume(runID: [UInt8]) throws(KeyStreamError) {
    lock.lock()
    defer { lock.unlock() }
    guard !used.contains(runID) else {
      throw .runAlreadyUsed(runID.map { String(format: "%02x", $0) }.joined())
    }
    if let path {
      let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
      guard fd >= 0 else { throw .ledger("cannot open \(path)") }
      defer { close(fd) }
      let written = runID.withUnsafeBytes { write(fd, $0.baseAddress, 16) }
      guard written == 16, fsync(fd) == 0 else { throw .ledger("cannot record the run in \(path)") }
    }
    used.insert(runID)
  }
}

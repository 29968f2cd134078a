// A key stream sealed to its recipient for storage (issue 18, DESIGN §10 "Keys ahead of
// time"): the dealer seals every chunk of a pooled stream with HPKE (RFC 9180, base mode,
// X25519 + HKDF-SHA256 + AES-128-GCM) to the recipient's pool key, so the stream lies on disk
// as only its recipient can open it, whoever stores or carries the file. The chunks inside
// are exactly those of an on-demand stream (preamble, MAC'd segments), so the reader that
// checks headers, burns the run id and verifies MACs is the same; HPKE adds confidentiality at
// rest and an order- and truncation-proof envelope: records are numbered by HPKE's sequence
// nonces and a sealed empty record ends the stream.
//
// File: "VEILPOOL1\n", u32 length + JSON header (the run order, the party, the encapsulated
// key), then u32 length + ciphertext per record, little-endian.
import Crypto
import Foundation
import VeilFSS
import VeilNet

enum SealedKeyStream {
  static let magic = Array("VEILPOOL1\n".utf8)
  static let suite = HPKE.Ciphersuite(
    kem: .Curve25519_HKDF_SHA256, kdf: .HKDF_SHA256, aead: .AES_GCM_128)
  /// The largest record a reader accepts: a segment and its tag.
  static let maximumRecordBytes = 1 << 30

  /// Binds a stream to its run and recipient: a file moved to another run or party does not open.
  static func info(runID: String, party: Int) -> Data {
    Data("veil.key-pool/1|\(runID)|\(party)".utf8)
  }

  /// What precedes the records.
  struct Header: Codable, Equatable {
    var schema = "veil.sealed-key-stream/1"
    var order: RunOrder
    /// 0, 1, or 2 for the client's stream the dealer keeps.
    var party: Int
    /// HPKE's encapsulated key, hexadecimal.
    var encapsulatedKey: String
  }
}

/// The recipient's half of the sealing: an X25519 key pair (the private key redacts itself).
public struct PoolRecipientKey: Sendable, CustomStringConvertible {
  let privateKey: Curve25519.KeyAgreement.PrivateKey

  init(privateKey: Curve25519.KeyAgreement.PrivateKey) { self.privateKey = privateKey }

  /// Loads the key at `path`, or draws one (system CSPRNG) and writes it there (0600).
  public static func loadOrCreate(at path: String) throws -> PoolRecipientKey {
    if FileManager.default.fileExists(atPath: path) {
      guard let raw = try? StateFiles.read(path),
        let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
      else { throw RoleError.state("\(path) is not a key-pool key") }
      return PoolRecipientKey(privateKey: key)
    }
    let key = Curve25519.KeyAgreement.PrivateKey()
    try StateFiles.write(Array(key.rawRepresentation), to: path, exclusive: true)
    return PoolRecipientKey(privateKey: key)
  }

  /// A key derived from 32 secret bytes (the dealer's state key) under `label`.
  static func derived(from secret: SymmetricKey, label: String) throws -> PoolRecipientKey {
    let raw = HKDF<SHA256>.deriveKey(
      inputKeyMaterial: secret, info: Data(label.utf8), outputByteCount: 32)
    return PoolRecipientKey(
      privateKey: try Curve25519.KeyAgreement.PrivateKey(
        rawRepresentation: raw.withUnsafeBytes { Data($0) }))
  }

  /// The public key a sealer needs, hexadecimal.
  public var publicKey: String { hex(Array(privateKey.publicKey.rawRepresentation)) }
  public var description: String { "PoolRecipientKey(redacted)" }
}

/// The dealer's half: one HPKE sender context per stream.
final class StreamSealer: @unchecked Sendable {
  // @unchecked: `sender` is only touched under `lock`.
  private var sender: HPKE.Sender
  private let lock = NSLock()

  /// Seals to the X25519 public key `recipient` (hexadecimal), for `party`'s stream of `runID`.
  init(recipient: String, runID: String, party: Int) throws {
    guard let raw = bytes(hex: recipient),
      let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw)
    else { throw RoleError.state("'\(recipient.prefix(70))' is not a key-pool public key") }
    sender = try HPKE.Sender(
      recipientKey: key, ciphersuite: SealedKeyStream.suite,
      info: SealedKeyStream.info(runID: runID, party: party))
  }

  var encapsulatedKey: [UInt8] { Array(sender.encapsulatedKey) }

  func seal(_ chunk: [UInt8]) throws -> [UInt8] {
    lock.lock()
    defer { lock.unlock() }
    return Array(try sender.seal(chunk))
  }
}

/// Writes a sealed stream to `path` through a temporary file, refusing to grow past `limit`
/// bytes; `finish` syncs and renames it into place, `abandon` removes it.
final class SealedStreamFile: @unchecked Sendable {
  // @unchecked: one writer task at a time (a stream is written in order).
  let path: String
  private let temporary: String
  private let handle: FileHandle
  let limit: Int
  private(set) var bytes = 0
  /// A write was refused for passing `limit`: the stream needs more than `limit` bytes.
  private(set) var overflowed = false

  init(path: String, header: SealedKeyStream.Header, limit: Int) throws {
    self.path = path
    self.limit = limit
    temporary = path + ".partial"
    guard
      FileManager.default.createFile(
        atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
      let handle = FileHandle(forWritingAtPath: temporary)
    else { throw RoleError.state("cannot create \(temporary)") }
    self.handle = handle
    let json = Array(try JSONEncoder().encode(header))
    try append(SealedKeyStream.magic)
    try appendRecord(json)
  }

  func appendRecord(_ record: [UInt8]) throws {
    var length = UInt32(record.count).littleEndian
    try append(withUnsafeBytes(of: &length) { Array($0) })
    try append(record)
  }

  private func append(_ data: [UInt8]) throws {
    guard bytes + data.count <= limit else {
      overflowed = true
      throw RoleError.state(
        "the key pool is full: this stream passes the pool's \(limit / 1_000_000) MB left")
    }
    do { try handle.write(contentsOf: data) } catch {
      throw RoleError.state("cannot write \(temporary): \(error.localizedDescription)")
    }
    bytes += data.count
  }

  func finish() throws {
    do {
      try handle.synchronize()
      try handle.close()
    } catch { throw RoleError.state("cannot sync \(temporary)") }
    guard rename(temporary, path) == 0 else { throw RoleError.state("cannot write \(path)") }
    StateFiles.syncFolder(of: path)
  }

  func abandon() {
    try? handle.close()
    unlink(temporary)
  }
}

/// Reads and opens a sealed stream, record by record.
final class SealedStreamReader: @unchecked Sendable {
  // @unchecked: one reader task at a time.
  let header: SealedKeyStream.Header
  private let handle: FileHandle
  private var recipient: HPKE.Recipient
  private var ended = false

  /// The header of the stream at `path`, without opening any record.
  static func header(at path: String) throws -> SealedKeyStream.Header {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw RoleError.state("cannot read \(path)")
    }
    defer { try? handle.close() }
    return try readHeader(handle, path: path)
  }

  private static func readHeader(_ handle: FileHandle, path: String) throws
    -> SealedKeyStream.Header
  {
    let magic = try handle.read(upToCount: SealedKeyStream.magic.count).map { Array($0) }
    guard magic == SealedKeyStream.magic, let json = try readRecord(handle, limit: 1 << 16),
      let header = try? JSONDecoder().decode(SealedKeyStream.Header.self, from: Data(json)),
      header.schema == "veil.sealed-key-stream/1"
    else { throw RoleError.state("\(path) is not a sealed key stream") }
    return header
  }

  private static func readRecord(_ handle: FileHandle, limit: Int) throws -> [UInt8]? {
    guard let prefix = try handle.read(upToCount: 4), !prefix.isEmpty else { return nil }
    guard prefix.count == 4 else { throw KeyStreamError.truncated }
    let length = prefix.withUnsafeBytes {
      Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)))
    }
    guard length <= limit else {
      throw MPCError.protocolViolation("a sealed key record of \(length) bytes")
    }
    let record = try handle.read(upToCount: length) ?? Data()
    guard record.count == length else { throw KeyStreamError.truncated }
    return Array(record)
  }

  init(path: String, key: PoolRecipientKey) throws {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw RoleError.state("cannot read \(path)")
    }
    self.handle = handle
    header = try Self.readHeader(handle, path: path)
    guard let encapsulated = bytes(hex: header.encapsulatedKey) else {
      throw RoleError.state("\(path) is not a sealed key stream")
    }
    do {
      recipient = try HPKE.Recipient(
        privateKey: key.privateKey, ciphersuite: SealedKeyStream.suite,
        info: SealedKeyStream.info(runID: header.order.runID, party: header.party),
        encapsulatedKey: Data(encapsulated))
    } catch {
      throw MPCError.protocolViolation("\(path) is not sealed to this pool's key")
    }
  }

  /// The next chunk, nil after the sealed end; a record that does not open (another key,
  /// tampered, reordered) or a stream cut short is an error.
  func next() throws -> [UInt8]? {
    guard !ended else { return nil }
    guard let record = try Self.readRecord(handle, limit: SealedKeyStream.maximumRecordBytes)
    else { throw KeyStreamError.truncated }
    let plain: Data
    do { plain = try recipient.open(record) } catch {
      throw MPCError.protocolViolation(
        "a pooled key record does not open (another key, or the file was altered)")
    }
    if plain.isEmpty {
      ended = true
      guard try handle.read(upToCount: 1)?.isEmpty ?? true else {
        throw MPCError.protocolViolation("data after a pooled key stream's end")
      }
      return nil
    }
    return Array(plain)
  }

  deinit { try? handle.close() }
}

/// The dealer pushes a pooled stream to a server: the encapsulated key first, then each chunk
/// sealed, a sealed empty record, and the channel's end of stream.
struct SealingChannelSink: KeySegmentSink {
  let channel: any Channel
  let sealer: StreamSealer

  func start() async throws { try await channel.send(sealer.encapsulatedKey) }
  func push(_ chunk: [UInt8]) async throws { try await channel.send(try sealer.seal(chunk)) }
  func close() async throws {
    try await channel.send(try sealer.seal([]))
    try await channel.send([])
  }
  func waitUntilConsumerIdle() async {}
}

/// The dealer keeps the client's stream of a pooled run in its own store, sealed the same way.
struct SealingFileSink: KeySegmentSink {
  let file: SealedStreamFile
  let sealer: StreamSealer

  func push(_ chunk: [UInt8]) async throws { try file.appendRecord(try sealer.seal(chunk)) }
  func close() async throws {
    try file.appendRecord(try sealer.seal([]))
    try file.finish()
  }
  func waitUntilConsumerIdle() async {}
}

/// A pooled stream as a run reads it: a task reads and opens records ahead into a bounded pipe,
/// so disk and decryption overlap the online work.
final class PooledSegmentSource: KeySegmentSource {
  private let pipe = KeyPipe(capacity: 64 << 20)
  private let failure = Locked<(any Error)?>(nil)
  private let reader: Task<Void, Never>

  init(_ stream: SealedStreamReader) {
    let pipe = pipe
    let failure = failure
    reader = Task {
      do {
        while let chunk = try stream.next() { try await pipe.push(chunk) }
      } catch { failure.withLock { $0 = error } }
      await pipe.close()
    }
  }

  func pop() async throws -> [UInt8]? {
    if let chunk = await pipe.pop() { return chunk }
    if let error = failure.withLock({ $0 }) { throw error }
    return nil
  }

  deinit {
    reader.cancel()
    let pipe = pipe
    Task { await pipe.cancel() }
  }
}

// Each role's state at rest under its `--state DIR` (DESIGN §10). A server keeps its setup
// (manifest, H(Ŵ)), Ŵ, its mask seeds t_b, the public model files it hands clients, and its
// run ledger; the dealer keeps each setup's seeds sealed (AES-GCM) under a key the operator
// provides and a ledger of the runs it dealt. Files are written whole to a temporary name,
// synced and renamed, so a crash never leaves half a state.
import Crypto
import Foundation
import VeilFSS
import VeilNet

/// A server's stored setup, loaded for serving.
public struct ServerRoleState: Sendable {
  public let setup: ServerSetupState
  public let publicFiles: [String: [UInt8]]
  public let ledger: RunLedger
  let masked: RunWeights
  let share: RunWeights

  private struct Record: Codable {
    var schema = "veil.server-state/1"
    var party: Int
    var manifest: SetupManifest
    var maskedDigest: String
    var publicFiles: [String]
  }

  init(setup: ServerSetupState, publicFiles: [String: [UInt8]], ledger: RunLedger) {
    self.setup = setup
    self.publicFiles = publicFiles
    self.ledger = ledger
    (masked, share) = setup.runWeights()
  }

  /// Whether `directory` holds a server state.
  public static func exists(in directory: String) -> Bool {
    FileManager.default.fileExists(atPath: directory + "/setup.json")
  }

  /// Writes `setup` and the public files to `directory` and returns the state to serve (built
  /// from the setup in memory, not read back); refuses to overwrite another setup.
  public static func save(
    _ setup: ServerSetupState, publicFiles: [String: [UInt8]], to directory: String
  ) throws -> ServerRoleState {
    guard !exists(in: directory) else {
      throw RoleError.state(
        "\(directory) already holds a setup: give each setup its own --state folder")
    }
    try StateFiles.makeDirectory(directory + "/model")
    for (name, data) in publicFiles {
      try StateFiles.write(data, to: directory + "/model/" + StateFiles.safeName(name))
    }
    var masked: [UInt8] = []
    masked.reserveCapacity(8 * setup.masked.reduce(0) { $0 + $1.count })
    for values in setup.masked { values.withUnsafeBytes { masked += $0 } }
    try StateFiles.write(masked, to: directory + "/masked.bin")
    try StateFiles.write(setup.seeds.flatMap { $0.flatMap { $0 } }, to: directory + "/seeds.bin")
    let record = Record(
      party: setup.party, manifest: setup.manifest, maskedDigest: hex(setup.maskedDigest),
      publicFiles: publicFiles.keys.sorted())
    try StateFiles.write(
      Array(try StateFiles.encoder.encode(record)), to: directory + "/setup.json")
    return ServerRoleState(
      setup: setup, publicFiles: publicFiles,
      ledger: try RunLedger(directory: directory + "/ledger"))
  }

  /// Loads the state `save` wrote, checking every size and H(Ŵ).
  public static func load(from directory: String, party: Int) throws -> ServerRoleState {
    let record = try StateFiles.decoder.decode(
      Record.self, from: Data(try StateFiles.read(directory + "/setup.json")))
    guard record.schema == "veil.server-state/1" else {
      throw RoleError.state("\(directory)/setup.json has schema \(record.schema)")
    }
    guard record.party == party else {
      throw RoleError.state("\(directory) holds p\(record.party)'s state, not p\(party)'s")
    }
    let manifest = record.manifest
    try manifest.validate()
    let masked = try StateFiles.read(directory + "/masked.bin")
    let seeds = try StateFiles.read(directory + "/seeds.bin")
    let counts = manifest.tensors.map(\.count)
    guard masked.count == 8 * counts.reduce(0, +), seeds.count == 16 * manifest.totalChunks else {
      throw RoleError.state("\(directory): masked.bin or seeds.bin does not fit the setup")
    }
    var values: [[UInt64]] = []
    var tensorSeeds: [[[UInt8]]] = []
    var offset = 0
    var chunk = 0
    for t in manifest.tensors {
      values.append(
        masked[offset..<(offset + 8 * t.count)].withUnsafeBytes {
          Array($0.bindMemory(to: UInt64.self))
        })
      offset += 8 * t.count
      tensorSeeds.append(
        (0..<t.chunkCount).map { i in Array(seeds[(16 * (chunk + i))..<(16 * (chunk + i) + 16)]) })
      chunk += t.chunkCount
    }
    let setup = ServerSetupState(
      party: party, manifest: manifest, masked: values, seeds: tensorSeeds)
    guard hex(setup.maskedDigest) == record.maskedDigest else {
      throw RoleError.state("\(directory)/masked.bin does not match the setup's H(Ŵ)")
    }
    var files: [String: [UInt8]] = [:]
    for name in record.publicFiles {
      files[name] = try StateFiles.read(directory + "/model/" + StateFiles.safeName(name))
    }
    return ServerRoleState(
      setup: setup, publicFiles: files, ledger: try RunLedger(directory: directory + "/ledger"))
  }
}

/// The dealer's stored setups, sealed under the operator's key.
public struct DealerStateStore: Sendable {
  public let directory: String
  private let key: SymmetricKey
  public let ledger: RunLedger
  /// The key the dealer seals the client streams of pooled runs to (derived from the state key).
  let poolKey: PoolRecipientKey

  /// `key` is 32 bytes the operator provides (a file or an environment variable).
  public init(directory: String, key: [UInt8]) throws {
    guard key.count == 32 else {
      throw RoleError.state("the dealer's state key must be 32 bytes (64 hexadecimal digits)")
    }
    self.directory = directory
    self.key = SymmetricKey(data: key)
    poolKey = try PoolRecipientKey.derived(from: self.key, label: "veil.dealer-pool-key/1")
    try StateFiles.makeDirectory(directory + "/setups")
    ledger = try RunLedger(directory: directory + "/ledger")
  }

  private func path(_ setupID: String) throws -> String {
    guard let id = bytes(hex: setupID), id.count == 16 else {
      throw RoleError.state("setup id '\(setupID.prefix(40))' is not 32 hexadecimal digits")
    }
    return directory + "/setups/" + setupID + ".sealed"
  }

  public func contains(setupID: String) -> Bool {
    (try? path(setupID)).map { FileManager.default.fileExists(atPath: $0) } ?? false
  }

  /// Draws and stores the seeds of a new setup; refuses a setup id it already holds.
  public func create(_ manifest: SetupManifest) throws -> DealerSetupSecrets {
    try manifest.validate()
    let file = try path(manifest.setupID)
    guard !FileManager.default.fileExists(atPath: file) else {
      throw RoleError.state(
        "the dealer already holds setup \(manifest.setupID): a setup id is used once")
    }
    let secrets = try DealerSetupSecrets(manifest: manifest)
    let sealed = try AES.GCM.seal(
      try StateFiles.encoder.encode(secrets), using: key,
      authenticating: Data(manifest.setupID.utf8))
    guard let combined = sealed.combined else { throw RoleError.state("cannot seal the setup") }
    try StateFiles.write(Array(combined), to: file, exclusive: true)
    return secrets
  }

  /// Opens a stored setup; a wrong key or a tampered file is refused.
  public func load(setupID: String) throws -> DealerSetupSecrets {
    let file = try path(setupID)
    guard FileManager.default.fileExists(atPath: file) else {
      throw RoleError.state("the dealer holds no setup \(setupID)")
    }
    let secrets: DealerSetupSecrets
    do {
      let box = try AES.GCM.SealedBox(combined: Data(try StateFiles.read(file)))
      let plain = try AES.GCM.open(box, using: key, authenticating: Data(setupID.utf8))
      secrets = try StateFiles.decoder.decode(DealerSetupSecrets.self, from: plain)
    } catch {
      throw RoleError.state("\(file) does not open under this state key (wrong key or tampered)")
    }
    guard secrets.manifest.setupID == setupID else {
      throw RoleError.state("\(file) holds another setup")
    }
    return secrets
  }
}

/// Writing and reading state files.
enum StateFiles {
  static var encoder: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .prettyPrinted]
    return e
  }
  static let decoder = JSONDecoder()

  static func makeDirectory(_ path: String) throws {
    do {
      try FileManager.default.createDirectory(
        atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch { throw RoleError.state("cannot create \(path): \(error.localizedDescription)") }
  }

  /// A public file's name with no path in it.
  static func safeName(_ name: String) throws -> String {
    guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
      throw RoleError.state("'\(name.prefix(40))' is not a plain file name")
    }
    return name
  }

  /// Writes `bytes` to a temporary file, syncs it, renames it over `path` (0600); `exclusive`
  /// refuses an existing `path`.
  static func write(_ bytes: [UInt8], to path: String, exclusive: Bool = false) throws {
    let temporary = path + ".partial-\(UUID().uuidString)"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard fd >= 0 else { throw RoleError.state("cannot write \(path)") }
    var written = 0
    let ok = bytes.withUnsafeBytes { raw -> Bool in
      while written < raw.count {
        let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
        if n <= 0 { return false }
        written += n
      }
      return fsync(fd) == 0
    }
    close(fd)
    guard ok else {
      unlink(temporary)
      throw RoleError.state("cannot write \(path)")
    }
    if exclusive {
      // link(2) fails if `path` exists: the kernel decides between racing writers.
      defer { unlink(temporary) }
      guard link(temporary, path) == 0 else { throw RoleError.state("\(path) already exists") }
    } else {
      guard rename(temporary, path) == 0 else {
        unlink(temporary)
        throw RoleError.state("cannot write \(path)")
      }
    }
    syncFolder(of: path)
  }

  /// Syncs the folder holding `path`, so a rename into it survives a crash.
  static func syncFolder(of path: String) {
    let folder = open((path as NSString).deletingLastPathComponent, O_RDONLY)
    if folder >= 0 {
      fsync(folder)
      close(folder)
    }
  }

  static func read(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw RoleError.state("cannot read \(path)")
    }
    return [UInt8](data)
  }
}

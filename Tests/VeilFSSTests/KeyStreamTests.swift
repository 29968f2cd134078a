import Crypto
import Foundation
import Testing
import VeilRing

@testable import VeilFSS

@Suite struct KeyStreamTests {
  let prg = try! TreePRG(runKey: Array("key stream tests".utf8))
  let macKey = SymmetricKey(size: .bits256)

  func header(runID: [UInt8] = (0..<16).map { UInt8($0) }) -> KeyStreamHeader {
    KeyStreamHeader(
      kind: .inference, party: 0, runID: runID, modelSetupID: [UInt8](repeating: 9, count: 16),
      modelDigest: Array(SHA256.hash(data: Data("model".utf8))), graphDigest: Array(SHA256.hash(data: Data("graph".utf8))),
      recipe: "sigma", recipeVersion: 1, ringBits: 50, fractionalBits: 12, sequenceLength: 16, batch: 1, opCount: 3,
      prgKeyID: prg.keyID)
  }

  /// Three DReLU records for party 0, ops 0…2.
  func stream(order: [Int] = [0, 1, 2], header: KeyStreamHeader? = nil) throws -> ([UInt8], [DReLUKey]) {
    var random = try SecureRandom()
    var writer = KeyStreamWriter(header: header ?? self.header(), macKey: macKey)
    var keys: [DReLUKey] = []
    for op in order {
      let (k0, _) = try DReLUGate.gen(
        ring: try Ring(bits: 50), offsets: [0], inputMasks: random.elements(8, bits: 50), outputMasks: random.bits(8),
        prg: prg, random: &random)
      writer.append(opIndex: op, record: k0.serialized(party: 0))
      keys.append(k0)
    }
    return (writer.finish(), keys)
  }

  @Test func recordsComeBackInOpOrder() throws {
    let (bytes, keys) = try stream()
    var reader = try KeyStreamReader(bytes: bytes, expected: header(), macKey: macKey, ledger: RunLedger())
    for op in 0..<3 {
      let record = try #require(try reader.next(opIndex: op))
      #expect(try DReLUKey(record: record, party: 0, inputBits: 50) == keys[op])
    }
    #expect(try reader.next(opIndex: 3) == nil)
  }

  @Test func aReusedRunIsRefusedEvenAcrossRestarts() throws {
    let (bytes, _) = try stream()
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("veil-ledger-\(UUID().uuidString)").path
    _ = try KeyStreamReader(bytes: bytes, expected: header(), macKey: macKey, ledger: try RunLedger(path: path))
    // A new process (a fresh ledger object over the same file) still refuses the run.
    #expect(throws: KeyStreamError.runAlreadyUsed("000102030405060708090a0b0c0d0e0f")) {
      try KeyStreamReader(bytes: bytes, expected: self.header(), macKey: self.macKey, ledger: try RunLedger(path: path))
    }
    try? FileManager.default.removeItem(atPath: path)
  }

  @Test func streamsOfAnotherModelShapeOrRingAreRefusedByField() throws {
    let (bytes, _) = try stream()
    var expectations: [(String, KeyStreamHeader)] = []
    var h = header()
    h.modelDigest = Array(SHA256.hash(data: Data("other model".utf8)))
    expectations.append(("model digest", h))
    h = header()
    h.sequenceLength = 128
    expectations.append(("sequence length", h))
    h = header()
    h.ringBits = 37
    expectations.append(("ring width", h))
    h = header()
    h.party = 1
    expectations.append(("party", h))
    h = header()
    h.recipe = "puma"
    expectations.append(("recipe", h))
    for (field, expected) in expectations {
      #expect(throws: KeyStreamError.mismatch(field: field)) {
        try KeyStreamReader(bytes: bytes, expected: expected, macKey: self.macKey, ledger: RunLedger())
      }
    }
  }

  @Test func truncatedTamperedOrForeignStreamsAreRefused() throws {
    let (bytes, _) = try stream()
    for length in stride(from: 0, to: bytes.count, by: 7) {
      #expect(throws: KeyStreamError.self) {
        try KeyStreamReader(bytes: Array(bytes.prefix(length)), expected: self.header(), macKey: self.macKey, ledger: RunLedger())
      }
    }
    #expect(throws: KeyStreamError.truncated) {
      try KeyStreamReader(bytes: Array(bytes.dropLast(40)), expected: self.header(), macKey: self.macKey, ledger: RunLedger())
    }
    var tampered = bytes
    tampered[tampered.count / 2] ^= 1
    #expect(throws: KeyStreamError.self) {
      try KeyStreamReader(bytes: tampered, expected: self.header(), macKey: self.macKey, ledger: RunLedger())
    }
    #expect(throws: KeyStreamError.badMAC) {
      try KeyStreamReader(bytes: bytes, expected: self.header(), macKey: SymmetricKey(size: .bits256), ledger: RunLedger())
    }
  }

  @Test func recordsOutOfOrderAreRefused() throws {
    let (bytes, _) = try stream(order: [1, 0, 2])
    var reader = try KeyStreamReader(bytes: bytes, expected: header(), macKey: macKey, ledger: RunLedger())
    #expect(throws: KeyStreamError.outOfOrder(expected: 0, found: 1)) { try reader.next(opIndex: 0) }
  }
}

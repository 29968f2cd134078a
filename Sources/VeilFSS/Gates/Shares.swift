// Dealer shares that are not FSS keys: the masks and mask products of linear layers and
// Beaver-style products on masked wires, and seeds. Party 1's shares are expanded from a
// 16-byte seed, so its key record holds the seed and the lengths only; party 0 gets the
// values minus party 1's shares explicitly (DESIGN §3: "P1's shares come from seeds; P0
// receives c_0"). A bundle may mix seed-expanded and explicit parts.
import VeilRing

/// Additive shares of a list of tensors (parts) in Z_2^bits.
public struct ShareBundle: Sendable, Equatable {
  public let bits: Int
  /// Empty, or the 16-byte seed that expands to the first `seededLengths.count` parts.
  public let seed: [UInt8]
  public let seededLengths: [Int]
  /// Parts stored as values.
  public let explicit: [[UInt64]]

  /// The largest part a record may declare (a bound checked before anything is allocated).
  public static let maximumElements = 1 << 31

  public init(bits: Int, seed: [UInt8] = [], seededLengths: [Int] = [], explicit: [[UInt64]]) {
    self.bits = bits
    self.seed = seed
    self.seededLengths = seededLengths
    self.explicit = explicit
  }

  /// Expands `lengths.count` parts of Z_2^bits from `seed`, in order, from one AES-CTR stream.
  public static func expand(seed: [UInt8], lengths: [Int], bits: Int) throws(FSSError) -> [[UInt64]]
  {
    var random = try SecureRandom(seed: seed)
    return lengths.map { random.elements($0, bits: bits) }
  }

  /// Every part: the seed-expanded ones, then the explicit ones.
  public func parts() throws(FSSError) -> [[UInt64]] {
    (seed.isEmpty ? [] : try Self.expand(seed: seed, lengths: seededLengths, bits: bits)) + explicit
  }

  /// Shares `values` (parts of Z_2^bits): party 1's from a fresh seed, party 0's explicit.
  public static func deal(_ values: [[UInt64]], bits: Int, random: inout SecureRandom)
    throws(FSSError) -> (
      ShareBundle, ShareBundle
    )
  {
    let seed = random.bytes(16)
    let lengths = values.map(\.count)
    let second = try expand(seed: seed, lengths: lengths, bits: bits)
    let mask = ringMask(bits)
    let first = zip(values, second).map { v, s in zip(v, s).map { ($0 &- $1) & mask } }
    return (
      ShareBundle(bits: bits, explicit: first),
      ShareBundle(bits: bits, seed: seed, seededLengths: lengths, explicit: [])
    )
  }

  public func serialized(party: Int) -> [UInt8] {
    var w = KeyRecord.payloadWriter(
      capacity: 32 + 8 * (seededLengths.count + explicit.count)
        + explicit.reduce(0) { $0 + $1.count * 8 })
    w.u8(UInt8(seed.count))
    w.raw(seed)
    w.u32(UInt32(seededLengths.count))
    for length in seededLengths { w.u64(UInt64(length)) }
    w.u32(UInt32(explicit.count))
    for part in explicit { w.u64(UInt64(part.count)) }
    for part in explicit { w.elements(part, bits: bits) }
    return KeyRecord.seal(
      KeyRecordHeader(
        kind: .shares, party: party, inputBits: bits, outputBits: bits, shift: 0,
        variant: seed.isEmpty ? 0 : 1,
        count: (seededLengths + explicit.map(\.count)).reduce(0, +),
        extra: seededLengths.count + explicit.count,
        payloadLength: 0), consume w)
  }

  /// Decodes one party's record, refusing another kind, party or ring width.
  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int? = nil, authenticated: Bool = false
  ) throws(FSSError) {
    var (h, r) = try KeyRecord.decode(
      record, kind: .shares, party: party, inputBits: inputBits, authenticated: authenticated)
    guard (1...64).contains(h.inputBits) else {
      throw .corruptKey("share ring width \(h.inputBits)")
    }
    func lengths(_ r: inout ByteReader) throws(FSSError) -> [Int] {
      let count = Int(try r.u32())
      guard count <= 64 else { throw .corruptKey("\(count) parts in a share bundle") }
      var out: [Int] = []
      for _ in 0..<count {
        let length = try r.u64()
        guard length <= UInt64(Self.maximumElements) else {
          throw .corruptKey("a share part of \(length) elements")
        }
        out.append(Int(length))
      }
      return out
    }
    let seedLength = Int(try r.u8())
    guard seedLength == 0 || seedLength == 16 else {
      throw .corruptKey("seed of \(seedLength) bytes")
    }
    let seed = try r.raw(seedLength)
    let seeded = try lengths(&r)
    guard seedLength == 16 || seeded.isEmpty else {
      throw .corruptKey("seeded parts without a seed")
    }
    let explicitLengths = try lengths(&r)
    var explicit: [[UInt64]] = []
    for length in explicitLengths { explicit.append(try r.elements(length, bits: h.inputBits)) }
    try KeyRecord.finish(r)
    guard h.count == (seeded + explicitLengths).reduce(0, +),
      h.extra == seeded.count + explicitLengths.count
    else {
      throw .corruptKey("share bundle header disagrees with its parts")
    }
    self.init(bits: h.inputBits, seed: seed, seededLengths: seeded, explicit: explicit)
  }
}

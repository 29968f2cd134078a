// Dealer shares that are not FSS keys: the masks and mask products of linear layers and
// Beaver-style products on masked wires, and seeds. Party 1's shares are expanded from a
// 16-byte seed, so its key record holds the seed and the lengths only; party 0 gets the
// values minus party 1's shares explicitly (DESIGN §3: "P1's shares come from seeds; P0
// receives c_0"). A bundle may mix seed-expanded and explicit parts, and expand parts from
// more than one seed: a seed that another role also holds (the client's embedding mask) must
// never expand a part that role may not learn.
import VeilRing

/// Parts expanded from one 16-byte seed, in order, from one AES-CTR stream.
public struct SeededParts: Sendable, Equatable {
  public let seed: [UInt8]
  public let lengths: [Int]

  public init(seed: [UInt8], lengths: [Int]) {
    self.seed = seed
    self.lengths = lengths
  }
}

/// Additive shares of a list of tensors (parts) in Z_2^bits.
public struct ShareBundle: Sendable, Equatable {
  public let bits: Int
  /// Parts expanded from seeds (each group from its own seed), first.
  public let seeded: [SeededParts]
  /// Parts stored as values, after the seeded ones.
  public let explicit: [[UInt64]]

  /// The largest part a record may declare (a bound checked before anything is allocated).
  public static let maximumElements = 1 << 31
  /// The most seed groups and parts a record may declare.
  static let maximumGroups = 4
  static let maximumParts = 64

  public init(bits: Int, seeded: [SeededParts] = [], explicit: [[UInt64]]) {
    self.bits = bits
    self.seeded = seeded
    self.explicit = explicit
  }

  /// One seed group (`seed` empty: none).
  public init(bits: Int, seed: [UInt8], seededLengths: [Int], explicit: [[UInt64]]) {
    self.init(
      bits: bits, seeded: seed.isEmpty ? [] : [SeededParts(seed: seed, lengths: seededLengths)],
      explicit: explicit)
  }

  /// Expands `lengths.count` parts of Z_2^bits from `seed`, in order, from one AES-CTR stream.
  public static func expand(seed: [UInt8], lengths: [Int], bits: Int) throws(FSSError) -> [[UInt64]]
  {
    var random = try SecureRandom(seed: seed)
    return lengths.map { random.elements($0, bits: bits) }
  }

  /// The element count of every part, seeded then explicit.
  public var partLengths: [Int] { seeded.flatMap(\.lengths) + explicit.map(\.count) }

  /// Every part: the seed-expanded ones, then the explicit ones.
  public func parts() throws(FSSError) -> [[UInt64]] {
    var out: [[UInt64]] = []
    for group in seeded {
      out += try Self.expand(seed: group.seed, lengths: group.lengths, bits: bits)
    }
    return out + explicit
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
    let lengths = partLengths
    var w = KeyRecord.payloadWriter(
      capacity: 32 + 24 * seeded.count + 8 * lengths.count
        + explicit.reduce(0) { $0 + $1.count * 8 })
    w.u8(UInt8(seeded.count))
    for group in seeded {
      w.raw(group.seed)
      w.u32(UInt32(group.lengths.count))
      for length in group.lengths { w.u64(UInt64(length)) }
    }
    w.u32(UInt32(explicit.count))
    for part in explicit { w.u64(UInt64(part.count)) }
    for part in explicit { w.elements(part, bits: bits) }
    return KeyRecord.seal(
      KeyRecordHeader(
        kind: .shares, party: party, inputBits: bits, outputBits: bits, shift: 0,
        variant: UInt8(seeded.count), count: lengths.reduce(0, +), extra: lengths.count,
        payloadLength: 0), consume w)
  }

  /// Decodes one party's record, refusing another kind, party or ring width. Every declared
  /// length is checked against `maximumElements` before anything is allocated, and `expected`
  /// (when given) against the gate's part lengths before anything is expanded.
  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int? = nil, authenticated: Bool = false
  ) throws(FSSError) {
    try self.init(
      record: record, party: party, inputBits: inputBits, authenticated: authenticated,
      expected: nil)
  }

  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int?, authenticated: Bool,
    expected: [Int]?
  ) throws(FSSError) {
    var (h, r) = try KeyRecord.decode(
      record, kind: .shares, party: party, inputBits: inputBits, authenticated: authenticated)
    guard (1...64).contains(h.inputBits) else {
      throw .corruptKey("share ring width \(h.inputBits)")
    }
    func lengths(_ r: inout ByteReader) throws(FSSError) -> [Int] {
      let count = Int(try r.u32())
      guard count <= Self.maximumParts else {
        throw .corruptKey("\(count) parts in a share bundle")
      }
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
    let groupCount = Int(try r.u8())
    guard groupCount <= Self.maximumGroups else {
      throw .corruptKey("\(groupCount) seed groups in a share bundle")
    }
    var seeded: [SeededParts] = []
    for _ in 0..<groupCount {
      let seed = try r.raw(16)
      seeded.append(SeededParts(seed: seed, lengths: try lengths(&r)))
    }
    let explicitLengths = try lengths(&r)
    let all = seeded.flatMap(\.lengths) + explicitLengths
    guard h.count == all.reduce(0, +), h.extra == all.count else {
      throw .corruptKey("share bundle header disagrees with its parts")
    }
    if let expected, expected != all {
      throw .corruptKey("share parts of \(all) elements, the gate needs \(expected)")
    }
    var explicit: [[UInt64]] = []
    for length in explicitLengths { explicit.append(try r.elements(length, bits: h.inputBits)) }
    try KeyRecord.finish(r)
    self.init(bits: h.inputBits, seeded: seeded, explicit: explicit)
  }
}

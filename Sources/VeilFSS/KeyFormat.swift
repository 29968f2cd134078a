// The key-record format: every gate key travels as one self-describing record that a party
// can read in order from a stream, never needing all keys in memory.
//
//   offset size  field
//   0      4     magic "VKR1"
//   4      2     format version (4: one party's shares of a select, truncation or lookup batch
//                 expand from a seed; 3: a tree batch's roots expand from one seed; 2: DPF corrections in
//                 tiles of 256 keys; 1 was batch-wide level-major)
//   6      1     gate kind (KeyKind)
//   7      1     party (0 or 1)
//   8      1     input bits    9  1  output bits    10  1  shift    11  1  variant
//   12     4     element count
//   16     4     extra (offset count for DReLU, else 0)
//   20     8     payload length
//   28     …     payload
//   end    4     CRC32C of everything before it
//
// Ring elements are stored in ⌈n/8⌉ bytes, bits eight to a byte, DPF control-bit corrections
// four keys to a byte: sizes match the key-size formulas. The CRC catches corruption and
// truncation; authenticity (a dealer's MAC over the whole stream) belongs to the stream layer.
import CVeilKernels
import VeilRing

/// Gate kinds a record can hold.
public enum KeyKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  case dpf = 1
  case drelu = 2
  case select = 3
  case truncation = 4
  case lut = 5
  case shares = 6

  public var description: String {
    switch self {
    case .dpf: return "DPF"
    case .drelu: return "DReLU"
    case .select: return "select"
    case .truncation: return "truncation"
    case .lut: return "lookup-table"
    case .shares: return "share-bundle"
    }
  }
}

/// The fixed-size header of a key record.
public struct KeyRecordHeader: Sendable, Equatable {
  public static let magic: [UInt8] = Array("VKR1".utf8)
  public static let version: UInt16 = 4
  public static let size = 28

  public var kind: KeyKind
  public var party: Int
  public var inputBits: Int
  public var outputBits: Int
  public var shift: Int
  public var variant: UInt8
  public var count: Int
  public var extra: Int
  public var payloadLength: Int
}

/// Appends little-endian fields to a byte buffer.
struct ByteWriter {
  var bytes: [UInt8] = []

  mutating func u8(_ v: UInt8) { bytes.append(v) }
  mutating func u16(_ v: UInt16) {
    withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
  }
  mutating func u32(_ v: UInt32) {
    withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
  }
  mutating func u64(_ v: UInt64) {
    withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
  }
  mutating func raw(_ v: some Collection<UInt8>) { bytes.append(contentsOf: v) }

  /// A share seed: a flag byte, then the 16-byte seed when there is one (`SeededSharing`).
  mutating func shareSeed(_ seed: [UInt8]?) {
    u8(seed == nil ? 0 : 1)
    if let seed { raw(seed) }
  }

  /// Ring elements in ⌈bits/8⌉ bytes each (little-endian, the low bytes of each element).
  mutating func elements(_ values: [UInt64], bits: Int) {
    let width = (bits + 7) / 8
    let start = bytes.count
    bytes.append(contentsOf: repeatElement(0, count: width * values.count))
    bytes.withUnsafeMutableBytes { out in
      values.withUnsafeBufferPointer { v in
        var p = start
        if width == 8 {
          for x in v {
            out.storeBytes(of: x.littleEndian, toByteOffset: p, as: UInt64.self)
            p += 8
          }
          return
        }
        // Whole 8-byte stores while they fit (the next element overwrites the spill), then bytes.
        var i = 0
        while i < v.count && p + 8 <= out.count {
          out.storeBytes(of: v[i].littleEndian, toByteOffset: p, as: UInt64.self)
          p += width
          i += 1
        }
        while i < v.count {
          for j in 0..<width { out[p + j] = UInt8(truncatingIfNeeded: v[i] >> UInt64(8 * j)) }
          p += width
          i += 1
        }
      }
    }
  }

  /// 0/1 values, eight to a byte.
  mutating func bits(_ values: [UInt8]) { packed(values, bitsPerValue: 1) }

  /// Small values of `bitsPerValue` bits (1, 2, 4), packed little-endian within bytes.
  mutating func packed(_ values: [UInt8], bitsPerValue: Int) {
    let start = bytes.count
    bytes.append(contentsOf: repeatElement(0, count: (values.count * bitsPerValue + 7) / 8))
    bytes.withUnsafeMutableBufferPointer { out in
      veil_pack_small(values, values.count, UInt32(bitsPerValue), out.baseAddress! + start)
    }
  }
}

/// Reads little-endian fields, throwing on truncation.
struct ByteReader {
  /// The bytes read, a slice of a larger buffer (a key-stream segment) or a whole array; its
  /// indices are the buffer's, so `position` and `end` are too.
  let bytes: ArraySlice<UInt8>
  var position: Int
  let end: Int

  /// Reads `bytes` from offset `start` (relative to the slice) to its end.
  init(_ bytes: ArraySlice<UInt8>, from start: Int = 0) {
    self.bytes = bytes
    self.position = bytes.startIndex + start
    self.end = bytes.endIndex
  }

  init(_ bytes: [UInt8], from start: Int = 0) { self.init(bytes[...], from: start) }

  mutating func take(_ n: Int) throws(FSSError) -> ArraySlice<UInt8> {
    guard n >= 0, position + n <= end else {
      throw .truncatedKey(expected: position + n - bytes.startIndex, found: end - bytes.startIndex)
    }
    defer { position += n }
    return bytes[position..<(position + n)]
  }

  mutating func u8() throws(FSSError) -> UInt8 { try take(1).first! }
  mutating func u16() throws(FSSError) -> UInt16 { UInt16(try littleEndian(2)) }
  mutating func u32() throws(FSSError) -> UInt32 { UInt32(try littleEndian(4)) }
  mutating func u64() throws(FSSError) -> UInt64 { try littleEndian(8) }

  private mutating func littleEndian(_ n: Int) throws(FSSError) -> UInt64 {
    var v: UInt64 = 0
    for (j, b) in try take(n).enumerated() { v |= UInt64(b) << UInt64(8 * j) }
    return v
  }

  mutating func raw(_ n: Int) throws(FSSError) -> [UInt8] { Array(try take(n)) }

  /// The most elements one record may expand from a seed: a seed's few bytes do not bound
  /// what a (corrupt) header asks for, so this does (the dealer's records hold 64 Ki).
  static let maximumSeededElements = 1 << 24

  /// A share seed written by `ByteWriter.shareSeed`, and the shares' source: the seed's
  /// expansion (drawn in the dealer's order) or, without one, the record itself. `count` is
  /// the header's element count, refused above `maximumSeededElements` for a seed.
  mutating func shareSource(count: Int) throws(FSSError) -> ShareSource {
    switch try u8() {
    case 0: return ShareSource(seed: nil, expansion: nil)
    case 1:
      guard count <= Self.maximumSeededElements else {
        throw .corruptKey("\(count) elements from one share seed")
      }
      let seed = try raw(16)
      return ShareSource(seed: seed, expansion: try SecureRandom(seed: seed))
    case let flag: throw .corruptKey("share seed flag \(flag)")
    }
  }

  mutating func elements(_ count: Int, bits: Int) throws(FSSError) -> [UInt64] {
    let width = (bits + 7) / 8
    let slice = try take(width * count)
    let mask = ringMask(bits)
    var out = [UInt64](repeating: 0, count: count)
    var wide: UInt64 = 0
    slice.withUnsafeBytes { src in
      out.withUnsafeMutableBufferPointer { dst in
        var p = 0
        var i = 0
        // Whole 8-byte loads while they fit, masked to the element's width, then bytes.
        while i < count && p + 8 <= src.count {
          let raw = UInt64(littleEndian: src.loadUnaligned(fromByteOffset: p, as: UInt64.self))
          let v = width == 8 ? raw : raw & ((1 << UInt64(8 * width)) - 1)
          wide |= v & ~mask
          dst[i] = v
          p += width
          i += 1
        }
        while i < count {
          var v: UInt64 = 0
          for j in 0..<width { v |= UInt64(src[p + j]) << UInt64(8 * j) }
          wide |= v & ~mask
          dst[i] = v
          p += width
          i += 1
        }
      }
    }
    guard wide == 0 else { throw .corruptKey("ring element wider than \(bits) bits") }
    return out
  }

  mutating func bits(_ count: Int) throws(FSSError) -> [UInt8] {
    try packed(count, bitsPerValue: 1)
  }

  mutating func packed(_ count: Int, bitsPerValue: Int) throws(FSSError) -> [UInt8] {
    let slice = try take((count * bitsPerValue + 7) / 8)
    return [UInt8](unsafeUninitializedCapacity: count) { dst, initialized in
      slice.withUnsafeBufferPointer { src in
        veil_unpack_small(src.baseAddress, count, UInt32(bitsPerValue), dst.baseAddress)
      }
      initialized = count
    }
  }
}

/// Encodes and decodes key records.
public enum KeyRecord {
  /// A writer for a record's payload: room for the 28-byte header is kept in front, so the
  /// record is built in one buffer (keys run to gigabytes; every copy shows).
  static func payloadWriter(capacity: Int) -> ByteWriter {
    var w = ByteWriter()
    w.bytes.reserveCapacity(KeyRecordHeader.size + capacity + 4)
    w.bytes.append(contentsOf: repeatElement(0, count: KeyRecordHeader.size))
    return w
  }

  /// Fills in the header in front of the payload written to `w` and appends the CRC.
  /// `w` is consumed: its buffer becomes the record, so the payload is never copied.
  static func seal(_ header: KeyRecordHeader, _ w: consuming ByteWriter) -> [UInt8] {
    var h = ByteWriter()
    h.raw(KeyRecordHeader.magic)
    h.u16(KeyRecordHeader.version)
    h.u8(header.kind.rawValue)
    h.u8(UInt8(header.party))
    h.u8(UInt8(header.inputBits))
    h.u8(UInt8(header.outputBits))
    h.u8(UInt8(header.shift))
    h.u8(header.variant)
    h.u32(UInt32(header.count))
    h.u32(UInt32(header.extra))
    h.u64(UInt64(w.bytes.count - KeyRecordHeader.size))
    w.bytes.withUnsafeMutableBufferPointer { record in
      for (i, byte) in h.bytes.enumerated() { record[i] = byte }
    }
    let crc = w.bytes.withUnsafeBufferPointer { veil_crc32c(0, $0.baseAddress, $0.count) }
    w.u32(crc)
    return w.bytes
  }

  /// Reads the record starting at `start`: checks magic, version, CRC, kind and party, and
  /// returns the header, a reader over the payload, and where the next record starts.
  /// `authenticated`: the record came out of a MAC-verified key-stream segment, which already
  /// rules out corruption, so the CRC is not recomputed.
  static func decode(
    _ bytes: ArraySlice<UInt8>, kind expected: KeyKind, party: Int, inputBits: Int? = nil,
    authenticated: Bool = false
  ) throws(FSSError) -> (KeyRecordHeader, ByteReader) {
    var r = ByteReader(bytes)
    guard try r.raw(4) == KeyRecordHeader.magic else {
      throw .corruptKey("bad magic (not a Veil key record)")
    }
    let version = try r.u16()
    guard version == KeyRecordHeader.version else { throw .unsupportedVersion(Int(version)) }
    let kindByte = try r.u8()
    guard let kind = KeyKind(rawValue: kindByte) else {
      throw .corruptKey("unknown gate kind \(kindByte)")
    }
    let recordParty = Int(try r.u8())
    var header = KeyRecordHeader(
      kind: kind, party: recordParty, inputBits: Int(try r.u8()), outputBits: Int(try r.u8()),
      shift: Int(try r.u8()), variant: try r.u8(), count: Int(try r.u32()), extra: Int(try r.u32()),
      payloadLength: 0)
    let length = try r.u64()
    guard length <= UInt64(bytes.count) else {
      throw .truncatedKey(expected: Int(clamping: length), found: bytes.count)
    }
    header.payloadLength = Int(length)
    let payload = try r.take(header.payloadLength)
    let crcLength = r.position - bytes.startIndex
    let stored = try r.u32()
    if !authenticated {
      let computed = bytes.withUnsafeBufferPointer { veil_crc32c(0, $0.baseAddress!, crcLength) }
      guard stored == computed else { throw .corruptKey("checksum mismatch") }
    }
    guard kind == expected else {
      throw .wrongKeyKind(expected: expected.description, found: kind.description)
    }
    guard recordParty == party else { throw .wrongParty(expected: party, found: recordParty) }
    for width in [header.inputBits, header.outputBits] where width > 64 {
      throw .corruptKey("bit width \(width)")
    }
    if let inputBits, inputBits != header.inputBits {
      throw .wrongWidth(expected: inputBits, found: header.inputBits)
    }
    return (header, ByteReader(payload))
  }

  /// Fails unless a reader consumed its payload exactly.
  static func finish(_ reader: ByteReader) throws(FSSError) {
    guard reader.position == reader.end else {
      throw .corruptKey("\(reader.end - reader.position) trailing payload bytes")
    }
  }
}

/// Where a decoded key's shares come from: the expansion of its seed, or the record.
struct ShareSource {
  let seed: [UInt8]?
  var expansion: SecureRandom?

  mutating func elements(_ count: Int, bits: Int, from r: inout ByteReader) throws(FSSError)
    -> [UInt64]
  {
    if expansion != nil { return expansion!.elements(count, bits: bits) }
    return try r.elements(count, bits: bits)
  }

  mutating func bits(_ count: Int, from r: inout ByteReader) throws(FSSError) -> [UInt8] {
    if expansion != nil { return expansion!.bits(count) }
    return try r.bits(count)
  }
}

// MARK: - Per-key encodings

extension DPFKeys {
  /// Bytes of `write(to:)`.
  var byteCount: Int {
    (rootSeed?.count ?? roots.count) + cwSeeds.count + (cwBits.count + 3) / 4 + leafCW.count
  }

  func write(to w: inout ByteWriter) {
    if let rootSeed { w.raw(rootSeed[...]) } else { w.raw(roots) }
    w.raw(cwSeeds)
    w.packed(cwBits, bitsPerValue: 2)
    w.raw(leafCW)
  }

  static func read(from r: inout ByteReader, bits: Int, count: Int) throws(FSSError) -> DPFKeys {
    guard (1...64).contains(bits) else {
      throw .invalidWidth("DPF domain of \(bits) bits in a key record")
    }
    let depth = Swift.max(bits - 7, 0)
    // Correction words are slices of the record (no copy); a tree batch's roots expand from
    // its seed, and the packed control bits are unpacked.
    // The roots expand only after the corrections were found in the record, so a corrupt
    // count fails there instead of allocating what it asks for.
    let rootSeed = depth == 0 ? nil : Array(try r.take(16))
    let tableShares = try r.take(depth == 0 ? 16 * count : 0)
    let cwSeeds = try r.take(16 * depth * count)
    let cwBits = try r.packed(depth * count, bitsPerValue: 2)
    let leafCW = try r.take(depth == 0 ? 0 : 16 * count)
    var roots = tableShares
    if let rootSeed { roots = try expandRoots(seed: rootSeed, count: count)[...] }
    let keys = DPFKeys(
      bits: bits, count: count, roots: roots, rootSeed: rootSeed,
      cwSeeds: cwSeeds, cwBits: cwBits, leafCW: leafCW)
    try keys.validate()
    return keys
  }

  /// One party's record of these keys.
  public func serialized(party: Int) -> [UInt8] {
    var w = KeyRecord.payloadWriter(capacity: byteCount)
    write(to: &w)
    return KeyRecord.seal(
      KeyRecordHeader(
        kind: .dpf, party: party, inputBits: bits, outputBits: 1, shift: 0, variant: 0,
        count: count, extra: 0,
        payloadLength: 0), consume w)
  }

  /// Decodes one party's record, refusing another gate kind, party or input width.
  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int? = nil, authenticated: Bool = false
  ) throws(FSSError) {
    var (h, r) = try KeyRecord.decode(
      record, kind: .dpf, party: party, inputBits: inputBits, authenticated: authenticated)
    self = try DPFKeys.read(from: &r, bits: h.inputBits, count: h.count)
    try KeyRecord.finish(r)
  }
}

extension DReLUKey {
  public func serialized(party: Int) -> [UInt8] {
    var w = KeyRecord.payloadWriter(
      capacity: compare.byteCount + offsets.count * 8 + count * offsets.count / 8 + 1)
    w.elements(offsets, bits: ring.bits)
    compare.write(to: &w)
    w.bits(maskShares)
    return KeyRecord.seal(
      KeyRecordHeader(
        kind: .drelu, party: party, inputBits: ring.bits, outputBits: 1, shift: 0, variant: 0,
        count: count,
        extra: offsets.count, payloadLength: 0), consume w)
  }

  /// Decodes one party's record, refusing another gate kind, party or input width.
  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int? = nil, authenticated: Bool = false
  ) throws(FSSError) {
    var (h, r) = try KeyRecord.decode(
      record, kind: .drelu, party: party, inputBits: inputBits, authenticated: authenticated)
    guard let ring = try? Ring(bits: h.inputBits), ring.bits >= 2 else {
      throw .corruptKey("DReLU ring width \(h.inputBits)")
    }
    self.ring = ring
    offsets = try r.elements(h.extra, bits: ring.bits)
    compare = try DPFKeys.read(from: &r, bits: ring.bits - 1, count: h.count)
    maskShares = try r.bits(h.count * h.extra)
    try KeyRecord.finish(r)
  }
}

extension SelectKey {
  public func serialized(party: Int) -> [UInt8] {
    var w = KeyRecord.payloadWriter(capacity: 4 * count * 8 + 17)
    w.shareSeed(shareSeed)
    if shareSeed == nil {
      for part in [valueMask, bitMask, product, outputMask] { w.elements(part, bits: ring.bits) }
    }
    return KeyRecord.seal(
      KeyRecordHeader(
        kind: .select, party: party, inputBits: ring.bits, outputBits: ring.bits, shift: 0,
        variant: 0, count: count,
        extra: 0, payloadLength: 0), consume w)
  }

  /// Decodes one party's record, refusing another gate kind, party or input width.
  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int? = nil, authenticated: Bool = false
  ) throws(FSSError) {
    var (h, r) = try KeyRecord.decode(
      record, kind: .select, party: party, inputBits: inputBits, authenticated: authenticated)
    guard let ring = try? Ring(bits: h.inputBits) else {
      throw .corruptKey("select ring width \(h.inputBits)")
    }
    self.ring = ring
    var source = try r.shareSource(count: h.count)
    shareSeed = source.seed
    valueMask = try source.elements(h.count, bits: ring.bits, from: &r)
    bitMask = try source.elements(h.count, bits: ring.bits, from: &r)
    product = try source.elements(h.count, bits: ring.bits, from: &r)
    outputMask = try source.elements(h.count, bits: ring.bits, from: &r)
    try KeyRecord.finish(r)
  }
}

extension TruncationKey {
  public func serialized(party: Int) -> [UInt8] {
    var w = KeyRecord.payloadWriter(capacity: compare.byteCount + count / 8 + 1 + 3 * count * 8)
    compare.write(to: &w)
    w.shareSeed(shareSeed)
    if shareSeed == nil {
      w.bits(bitMaskShares)
      w.elements(corrections, bits: outputBits)
      let wrap = TruncationGate.wrapSubgroup(
        inputBits: inputBits, shift: shift, outputBits: outputBits)
      w.elements(wrapShares.map { $0 >> UInt64(wrap.shift) }, bits: wrap.bits)
    }
    return KeyRecord.seal(
      KeyRecordHeader(
        kind: .truncation, party: party, inputBits: inputBits, outputBits: outputBits, shift: shift,
        variant: kind.rawValue, count: count, extra: 0, payloadLength: 0), consume w)
  }

  /// Decodes one party's record, refusing another gate kind, party or input width.
  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int? = nil, authenticated: Bool = false
  ) throws(FSSError) {
    var (h, r) = try KeyRecord.decode(
      record, kind: .truncation, party: party, inputBits: inputBits, authenticated: authenticated)
    guard let kind = TruncationKind(rawValue: h.variant) else {
      throw .corruptKey("truncation variant \(h.variant)")
    }
    guard (1...64).contains(h.inputBits), (1...64).contains(h.outputBits), h.shift < h.inputBits
    else {
      throw .corruptKey("truncation widths \(h.inputBits)/\(h.shift)/\(h.outputBits)")
    }
    self.kind = kind
    self.inputBits = h.inputBits
    shift = h.shift
    outputBits = h.outputBits
    compare = try DPFKeys.read(
      from: &r,
      bits: TruncationGate.compareBits(kind: kind, inputBits: h.inputBits, shift: h.shift),
      count: h.count)
    var source = try r.shareSource(count: h.count)
    shareSeed = source.seed
    bitMaskShares = try source.bits(h.count, from: &r)
    corrections = try source.elements(2 * h.count, bits: h.outputBits, from: &r)
    let wrap = TruncationGate.wrapSubgroup(
      inputBits: h.inputBits, shift: h.shift, outputBits: h.outputBits)
    wrapShares = try source.elements(kind == .slack ? h.count : 0, bits: wrap.bits, from: &r).map {
      ($0 << UInt64(wrap.shift)) & ringMask(h.outputBits)
    }
    try KeyRecord.finish(r)
  }
}

extension LUTKey {
  public func serialized(party: Int) -> [UInt8] {
    var w = KeyRecord.payloadWriter(capacity: point.byteCount + count / 8 + 1 + 4 * count * 8)
    point.write(to: &w)
    w.shareSeed(shareSeed)
    if shareSeed == nil {
      w.bits(signMaskShares)
      for part in [valueMask, signFactor, signedValueMask, outputMask] {
        w.elements(part, bits: outputRing.bits)
      }
    }
    return KeyRecord.seal(
      KeyRecordHeader(
        kind: .lut, party: party, inputBits: inputBits, outputBits: outputRing.bits, shift: 0,
        variant: 0,
        count: count, extra: 0, payloadLength: 0), consume w)
  }

  /// Decodes one party's record, refusing another gate kind, party or input width.
  public init(
    record: ArraySlice<UInt8>, party: Int, inputBits: Int? = nil, authenticated: Bool = false
  ) throws(FSSError) {
    var (h, r) = try KeyRecord.decode(
      record, kind: .lut, party: party, inputBits: inputBits, authenticated: authenticated)
    guard let ring = try? Ring(bits: h.outputBits), (1...24).contains(h.inputBits) else {
      throw .corruptKey("lookup widths \(h.inputBits)/\(h.outputBits)")
    }
    self.inputBits = h.inputBits
    outputRing = ring
    point = try DPFKeys.read(from: &r, bits: h.inputBits, count: h.count)
    var source = try r.shareSource(count: h.count)
    shareSeed = source.seed
    signMaskShares = try source.bits(h.count, from: &r)
    valueMask = try source.elements(h.count, bits: ring.bits, from: &r)
    signFactor = try source.elements(h.count, bits: ring.bits, from: &r)
    signedValueMask = try source.elements(h.count, bits: ring.bits, from: &r)
    outputMask = try source.elements(h.count, bits: ring.bits, from: &r)
    try KeyRecord.finish(r)
  }
}

/// A key type read from one party's record. Records come as slices of verified key-stream
/// segments (no copy); a standalone record array reads the same.
public protocol KeyRecordDecodable {
  init(record: ArraySlice<UInt8>, party: Int, inputBits: Int?, authenticated: Bool) throws(FSSError)
}

extension KeyRecordDecodable {
  public init(record: [UInt8], party: Int, inputBits: Int? = nil, authenticated: Bool = false)
    throws(FSSError)
  {
    try self.init(
      record: record[...], party: party, inputBits: inputBits, authenticated: authenticated)
  }
}

extension DPFKeys: KeyRecordDecodable {}
extension DReLUKey: KeyRecordDecodable {}
extension SelectKey: KeyRecordDecodable {}
extension TruncationKey: KeyRecordDecodable {}
extension LUTKey: KeyRecordDecodable {}
extension ShareBundle: KeyRecordDecodable {}

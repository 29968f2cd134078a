import CVeilKernels
import Testing
import VeilRing

@testable import VeilFSS

@Suite struct KeyFormatTests {
  let prg = try! TreePRG(runKey: Array("key format tests".utf8))

  /// CRC32C (three interleaved streams joined by a tabulated shift for long inputs) equals a
  /// bitwise reference at lengths around the stream block sizes, in one call and in pieces.
  @Test func crc32cMatchesABitwiseReference() throws {
    func reference(_ bytes: ArraySlice<UInt8>) -> UInt32 {
      var c: UInt32 = ~0
      for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c >> 1) ^ (0x82F6_3B78 & (0 &- (c & 1))) }
      }
      return ~c
    }
    #expect(veil_crc32c(0, Array("123456789".utf8), 9) == 0xE306_9283)
    var random = try SecureRandom()
    let data = random.bytes(100_003)
    for length in [0, 1, 9, 767, 768, 769, 24_575, 24_576, 24_577, 49_160, 100_003] {
      let expected = reference(data[..<length])
      #expect(
        data.withUnsafeBufferPointer { veil_crc32c(0, $0.baseAddress, length) } == expected,
        "\(length)")
      let split = length / 3
      let pieces = data.withUnsafeBufferPointer {
        veil_crc32c(veil_crc32c(0, $0.baseAddress, split), $0.baseAddress! + split, length - split)
      }
      #expect(pieces == expected, "\(length) in two pieces")
    }
  }

  /// Small values packed 1, 2 or 4 bits each: the layout (value i at bit i·b, little-endian),
  /// the byte count, high bits of the inputs ignored, and the round trip, for counts that end
  /// inside a byte and inside an 8-value word.
  @Test(arguments: [1, 2, 4])
  func smallValuesPackLittleEndianAndRoundTrip(bitsPerValue: Int) throws {
    var random = try SecureRandom()
    let mask = UInt8((1 << bitsPerValue) - 1)
    for count in [0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1001] {
      let values = random.bytes(count)
      var writer = ByteWriter()
      writer.packed(values, bitsPerValue: bitsPerValue)
      #expect(writer.bytes.count == (count * bitsPerValue + 7) / 8)
      for i in 0..<count {
        let bit = i * bitsPerValue
        #expect(
          (writer.bytes[bit / 8] >> UInt8(bit % 8)) & mask == values[i] & mask,
          "value \(i) of \(count)")
      }
      var reader = ByteReader(writer.bytes[...])
      #expect(try reader.packed(count, bitsPerValue: bitsPerValue) == values.map { $0 & mask })
    }
  }

  @Test func everyGateKeyRoundTripsAndStillEvaluates() throws {
    var random = try SecureRandom()
    let ring = try Ring(bits: 50)
    let n = 64
    let r = random.elements(n, bits: 50)
    let (d0, d1) = try DReLUGate.gen(
      ring: ring, offsets: [0, 7], inputMasks: r, outputMasks: random.bits(2 * n), prg: prg,
      random: &random)
    #expect(try DReLUKey(record: d0.serialized(party: 0), party: 0) == d0)
    #expect(try DReLUKey(record: d1.serialized(party: 1), party: 1, inputBits: 50) == d1)
    // One party of each select, truncation and lookup batch has its shares as a seed, the
    // other as values: both parties' records round-trip, and exactly one holds a seed.
    let (s0, s1) = try SelectGate.gen(
      ring: ring, bitMasks: random.bits(n), valueMasks: r, outputMasks: r, random: &random)
    #expect(try SelectKey(record: s0.serialized(party: 0), party: 0) == s0)
    #expect(try SelectKey(record: s1.serialized(party: 1), party: 1) == s1)
    #expect((s0.shareSeed == nil) != (s1.shareSeed == nil))
    let seeded = s0.shareSeed == nil ? s1 : s0
    let explicit = s0.shareSeed == nil ? s0 : s1
    #expect(
      seeded.serialized(party: 0).count + 4 * n * 7 - 16 == explicit.serialized(party: 0).count)
    for kind in TruncationKind.allCases {
      let (inBits, shift, outBits) =
        kind == .signExtend ? (38, 0, 50) : kind == .reduce ? (50, 12, 38) : (50, 12, 50)
      let (t0, t1) = try TruncationGate.gen(
        kind: kind, inputBits: inBits, shift: shift, outputBits: outBits,
        inputMasks: random.elements(n, bits: inBits),
        outputMasks: random.elements(n, bits: outBits), prg: prg, random: &random)
      #expect(try TruncationKey(record: t0.serialized(party: 0), party: 0) == t0)
      #expect(try TruncationKey(record: t1.serialized(party: 1), party: 1) == t1)
      #expect((t0.shareSeed == nil) != (t1.shareSeed == nil))
    }
    for bits in [4, 8, 13] {
      let (l0, l1) = try LUTGate.gen(
        inputBits: bits, outputRing: ring, inputMasks: random.elements(n, bits: bits),
        outputMasks: random.elements(n, bits: 50), prg: prg, random: &random)
      #expect(try LUTKey(record: l0.serialized(party: 0), party: 0) == l0)
      #expect(try LUTKey(record: l1.serialized(party: 1), party: 1) == l1)
      #expect((l0.shareSeed == nil) != (l1.shareSeed == nil))
    }
  }

  /// A seeded record is a few bytes whatever its header's count: a count too large to expand
  /// is refused by name, not allocated.
  @Test func aSeedDoesNotExpandACorruptCount() throws {
    var random = try SecureRandom()
    let ring = try Ring(bits: 50)
    let (s0, s1) = try SelectGate.gen(
      ring: ring, bitMasks: random.bits(4), valueMasks: random.elements(4, bits: 50),
      outputMasks: random.elements(4, bits: 50), random: &random)
    let seeded = s0.shareSeed == nil ? s1 : s0
    var payload = KeyRecord.payloadWriter(capacity: 17)
    payload.shareSeed(seeded.shareSeed)
    let record = KeyRecord.seal(
      KeyRecordHeader(
        kind: .select, party: 0, inputBits: 50, outputBits: 50, shift: 0, variant: 0,
        count: ByteReader.maximumSeededElements + 1, extra: 0, payloadLength: 0), payload)
    #expect(throws: FSSError.self) { try SelectKey(record: record, party: 0) }
  }

  @Test func keysPrintTheirShapeOnly() throws {
    var random = try SecureRandom()
    let (k0, _, _) = try DPF.gen(bits: 20, alphas: [1, 2, 3], prg: prg, random: &random)
    let (d0, _) = try DReLUGate.gen(
      ring: try Ring(bits: 18), offsets: [0, 5], inputMasks: random.elements(3, bits: 18),
      outputMasks: random.bits(6), prg: prg, random: &random)
    let (t0, _) = try TruncationGate.gen(
      kind: .slack, inputBits: 50, shift: 12, outputBits: 50,
      inputMasks: random.elements(3, bits: 50), outputMasks: random.elements(3, bits: 50),
      prg: prg, random: &random)
    #expect(String(describing: k0) == "DPFKeys(3 keys, 20-bit domain, redacted)")
    #expect(String(reflecting: d0) == "DReLUKey(3 keys, 18-bit ring, 2 offsets, redacted)")
    for key in [k0, d0, t0] as [Any] {
      var dumped = ""
      dump(key, to: &dumped)
      // No stored property (roots, seeds, corrections, shares) reaches a dump.
      #expect(!dumped.contains("root") && !dumped.contains("Shares") && !dumped.contains("compare"))
      #expect(dumped.contains("redacted"))
    }
  }

  @Test(arguments: [5, 7, 8, 16, 32, 50, 64])
  func dpfRecordSizeMatchesTheFormula(bits: Int) throws {
    var random = try SecureRandom()
    let n = 100
    let (k0, _, _) = try DPF.gen(
      bits: bits, alphas: random.elements(n, bits: bits), prg: prg, random: &random)
    let record = k0.serialized(party: 0)
    let payload = record.count - KeyRecordHeader.size - 4
    // (bits − 7)(λ + 2) + λ bits per key and one λ-bit root seed per batch of trees; the
    // control bits round up to whole bytes per batch.
    let formulaBytes =
      Double(n * DPFKeys.keyBits(domainBits: bits) + DPFKeys.batchBits(domainBits: bits)) / 8
    #expect(Double(payload) >= formulaBytes)
    #expect(Double(payload) <= formulaBytes + 1)
    #expect(try DPFKeys(record: record, party: 0) == k0)
  }

  func sampleRecord() throws -> [UInt8] {
    var random = try SecureRandom()
    let (k0, _) = try DReLUGate.gen(
      ring: try Ring(bits: 37), offsets: [0], inputMasks: random.elements(20, bits: 37),
      outputMasks: random.bits(20),
      prg: prg, random: &random)
    return k0.serialized(party: 0)
  }

  @Test func everyTruncationIsRefused() throws {
    let record = try sampleRecord()
    for length in 0..<record.count {
      #expect(throws: FSSError.self) {
        try DReLUKey(record: Array(record.prefix(length)), party: 0)
      }
    }
  }

  @Test func everySingleBitFlipIsRefused() throws {
    let record = try sampleRecord()
    for byte in 0..<record.count {
      for bit in 0..<8 {
        var corrupt = record
        corrupt[byte] ^= UInt8(1 << bit)
        // Never a wrong key: either an error, or (impossible for one flip under CRC32C) equal.
        #expect(throws: FSSError.self) { try DReLUKey(record: corrupt, party: 0) }
      }
    }
  }

  @Test func wrongKindPartyWidthAndVersionAreRefusedByName() throws {
    let record = try sampleRecord()
    #expect(throws: FSSError.wrongKeyKind(expected: "select", found: "DReLU")) {
      try SelectKey(record: record, party: 0)
    }
    #expect(throws: FSSError.wrongParty(expected: 1, found: 0)) {
      try DReLUKey(record: record, party: 1)
    }
    #expect(throws: FSSError.wrongWidth(expected: 50, found: 37)) {
      try DReLUKey(record: record, party: 0, inputBits: 50)
    }
    // Another version (the previous one, whose DPF layout differs, and a future one) with a
    // valid checksum: refused as a version mismatch, not as corruption.
    for version in [KeyRecordHeader.version - 1, KeyRecordHeader.version + 1] {
      var other = Array(record.dropLast(4))
      other[4] = UInt8(version)
      let crc = other.withUnsafeBufferPointer { veil_crc32c_swift($0) }
      withUnsafeBytes(of: crc.littleEndian) { other.append(contentsOf: $0) }
      #expect(throws: FSSError.unsupportedVersion(Int(version))) {
        try DReLUKey(record: other, party: 0)
      }
    }
  }
}

func veil_crc32c_swift(_ buffer: UnsafeBufferPointer<UInt8>) -> UInt32 {
  veil_crc32c(0, buffer.baseAddress, buffer.count)
}

// Bit packing of ring elements: exact round trips at every width 1…64 and odd counts, the
// documented little-endian layout, and masking of stray high bits.
import Testing
import VeilTestSupport
@testable import VeilNet

@Suite struct BitPackingTests {
  @Test("pack/unpack round-trips at every width and odd counts", arguments: Array(1...64))
  func roundTrip(bits: Int) {
    var generator = SplitMix64(seed: UInt64(bits))
    let mask: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
    for count in [0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 127, 1001] {
      let values = (0..<count).map { _ in generator.next() & mask }
      let packed = BitPacking.pack(values, bits: bits)
      #expect(packed.count == (count * bits + 7) / 8)
      #expect(BitPacking.unpack(packed, bits: bits, count: count) == values, "bits \(bits), count \(count)")
    }
  }

  @Test("extremes survive: all zeros, all ones, alternating")
  func extremes() {
    for bits in [1, 2, 31, 32, 33, 37, 50, 51, 52, 63, 64] {
      let mask: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
      for values in [[UInt64](repeating: 0, count: 33), [UInt64](repeating: mask, count: 33),
        (0..<33).map { $0 % 2 == 0 ? mask : 0 }]
      {
        #expect(BitPacking.unpack(BitPacking.pack(values, bits: bits), bits: bits, count: 33) == values)
      }
    }
  }

  @Test("layout: value i at stream bits [i·n, (i+1)·n), little endian")
  func layout() {
    // Three 3-bit values 0b101, 0b011, 0b111 → stream 101 | 011 | 111 from bit 0:
    // bits 0-2 = 1,0,1; 3-5 = 1,1,0; 6-8 = 1,1,1 → byte 0 = 0b11_011_101, byte 1 = 0b1.
    #expect(BitPacking.pack([0b101, 0b011, 0b111], bits: 3) == [0b1101_1101, 0b0000_0001])
    #expect(BitPacking.pack([0x0123_4567_89AB_CDEF], bits: 64) == [0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01])
    // 50-bit values cost 50 bits: 4 values in 25 bytes.
    #expect(BitPacking.pack([1, 2, 3, 4], bits: 50).count == 25)
  }

  @Test("high bits above the width are dropped, never smeared into neighbours")
  func masking() {
    let packed = BitPacking.pack([UInt64.max, 0, UInt64.max], bits: 5)
    #expect(BitPacking.unpack(packed, bits: 5, count: 3) == [31, 0, 31])
  }
}

import CVeilKernels
import Testing

@testable import VeilFSS

func hexBytes(_ hex: String) -> [UInt8] {
  var out: [UInt8] = []
  var chars = Array(hex)
  while chars.count >= 2 {
    out.append(UInt8(String(chars[0..<2]), radix: 16)!)
    chars.removeFirst(2)
  }
  return out
}

@Suite struct AESTests {
  static let kernels = AESKernel.allCases.filter(\.isAvailable)

  @Test(arguments: kernels)
  func fips197KnownAnswer(kernel: AESKernel) throws {
    // FIPS-197 Appendix C.1.
    var key = try AESKey(hexBytes("000102030405060708090a0b0c0d0e0f")).expanded
    let plain = hexBytes("00112233445566778899aabbccddeeff")
    let expected = hexBytes("69c4e0d86a7b0430d8cdb78070b4c55a")
    // 37 blocks exercise the interleaved body and the tail of every kernel.
    let input = Array((0..<37).map { _ in plain }.joined())
    var output = [UInt8](repeating: 0, count: input.count)
    veil_aes128_encrypt_blocks(kernel.cValue, &key, input, &output, 37)
    for i in 0..<37 { #expect(Array(output[(16 * i)..<(16 * i + 16)]) == expected) }
  }

  @Test(arguments: kernels)
  func correlationRobustHashIsAESOfSigmaXorSigma(kernel: AESKernel) throws {
    var key = try AESKey(hexBytes("2b7e151628aed2a6abf7158809cf4f3c")).expanded
    var random = try SecureRandom(seed: [UInt8](repeating: 7, count: 16))
    let input = random.bytes(16 * 53)
    var hashed = [UInt8](repeating: 0, count: input.count)
    veil_ccr_hash(kernel.cValue, &key, input, &hashed, 53)
    for i in 0..<53 {
      let block = Array(input[(16 * i)..<(16 * i + 16)])
      // σ(a‖b) = (a ⊕ b)‖a with a the high 64 bits (bytes 8…15 little-endian).
      let low = Array(block[0..<8])
      let high = Array(block[8..<16])
      let sigma = high + zip(high, low).map { $0 ^ $1 }
      var encrypted = [UInt8](repeating: 0, count: 16)
      veil_aes128_encrypt_blocks(VEIL_AES_AESNI, &key, sigma, &encrypted, 1)
      #expect(Array(hashed[(16 * i)..<(16 * i + 16)]) == zip(encrypted, sigma).map { $0 ^ $1 })
    }
  }

  /// Forked generators follow from their parent's seed, and neither repeats the parent's
  /// stream nor each other's.
  @Test func forkedGeneratorsAreReproducibleAndDistinct() throws {
    var a = try SecureRandom(seed: [UInt8](repeating: 5, count: 16))
    var b = try SecureRandom(seed: [UInt8](repeating: 5, count: 16))
    var (a1, a2) = (try a.fork(), try a.fork())
    var (b1, b2) = (try b.fork(), try b.fork())
    let streams = [a1.bytes(64), a2.bytes(64), a.bytes(64)]
    #expect(streams == [b1.bytes(64), b2.bytes(64), b.bytes(64)])
    #expect(Set(streams).count == 3)
    // The children are keyed by the parent's output: not a shifted copy of the parent's stream.
    var parent = try SecureRandom(seed: [UInt8](repeating: 5, count: 16))
    let parentStream = parent.bytes(4096)
    for child in streams.prefix(2) {
      #expect(
        !(0...(parentStream.count - 64)).contains { Array(parentStream[$0..<($0 + 64)]) == child })
    }
  }

  @Test func kernelsAgreeOnCounterMode() throws {
    var key = try AESKey([UInt8](repeating: 3, count: 16)).expanded
    var outputs: [[UInt8]] = []
    for kernel in Self.kernels {
      var out = [UInt8](repeating: 0, count: 16 * 41)
      veil_aes128_ctr(kernel.cValue, &key, .max - 5, 9, &out, 41)  // crosses a 64-bit carry
      outputs.append(out)
    }
    #expect(Set(outputs.map { $0.description }).count == 1)
    // Block 6 has counter (hi 10, lo 0): check it against a single ECB call.
    var counterBlock = [UInt8](repeating: 0, count: 16)
    counterBlock[8] = 10
    var single = [UInt8](repeating: 0, count: 16)
    veil_aes128_encrypt_blocks(VEIL_AES_AESNI, &key, counterBlock, &single, 1)
    #expect(Array(outputs[0][(16 * 6)..<(16 * 7)]) == single)
  }

  @Test func secureRandomLooksUniform() throws {
    var random = try SecureRandom()
    let bits = random.bits(100_000)
    let ones = bits.reduce(0) { $0 + Int($1) }
    // 100 000 fair bits: σ ≈ 158, so ±1000 is > 6σ.
    #expect(abs(ones - 50_000) < 1000)
    var other = try SecureRandom()
    #expect(random.bytes(32) != other.bytes(32))
  }

  @Test func treePRGKeysDependOnTheRunKey() throws {
    let a = try TreePRG(runKey: [1, 2, 3])
    let b = try TreePRG(runKey: [1, 2, 4])
    #expect(a.keyID != b.keyID)
    #expect(a.keyID == (try TreePRG(runKey: [1, 2, 3])).keyID)
  }

  @Test func crc32cKnownAnswer() {
    // RFC 3720 B.4: 32 bytes of zeros → 0x8A9136AA; "123456789" → 0xE3069283.
    #expect(veil_crc32c(0, [UInt8](repeating: 0, count: 32), 32) == 0x8A91_36AA)
    #expect(veil_crc32c(0, Array("123456789".utf8), 9) == 0xE306_9283)
    let whole = veil_crc32c(0, Array("123456789".utf8), 9)
    let split = veil_crc32c(veil_crc32c(0, Array("1234".utf8), 4), Array("56789".utf8), 5)
    #expect(whole == split)
  }
}

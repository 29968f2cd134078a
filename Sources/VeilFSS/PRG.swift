// The PRGs: the fixed-key tree PRG of the DPF, and an AES-CTR generator for the dealer's
// masks and seeds.
//
// Tree PRG security argument. The DPF needs G(s) = (child_L, t_L, child_R, t_R, leaf) to be a
// PRG on a uniformly random 127-bit seed s. We use H_k(x) = AES_k(σ(x)) ⊕ σ(x), with σ(a‖b) =
// (a ⊕ b)‖a a linear orthomorphism, and three independent fixed keys k_L, k_R, k_V. Guo, Katz,
// Wang and Yu (eprint 2019/074) prove H_k circular-correlation-robust (hence, on a random input,
// pseudorandom) when AES_k is modelled as a random permutation, for a public k. The feed-forward
// ⊕σ(x) matters: without it a party holding AES_k(σ(s)) inverts AES with the public key and
// recovers the seed of its peer's node. Left, right and leaf outputs come from separate keys,
// never from one block split in parts, so no output is a function of another. The keys are
// derived per run from the run's key material with HKDF, so no two runs share them.
import CVeilKernels
import Crypto
import Foundation

/// An expanded AES-128 key for the C kernels.
public struct AESKey: Sendable {
  var expanded: veil_aes128_key

  /// The expanded key for the C kernels.
  public var expandedKey: veil_aes128_key { expanded }

  public init(_ bytes: [UInt8]) throws(FSSError) {
    precondition(bytes.count == 16, "AES-128 keys are 16 bytes")
    var key = veil_aes128_key()
    let status = bytes.withUnsafeBufferPointer { veil_aes128_expand($0.baseAddress, &key) }
    guard status == 0 else { throw .noAESNI }
    expanded = key
  }
}

/// Which AES kernel runs (VAES-512 where the CPU has it; `VEIL_AES_KERNEL=aesni` forces AES-NI).
public enum AESKernel: String, Sendable, CaseIterable {
  case aesni, vaes512

  var cValue: veil_aes_kernel { self == .aesni ? VEIL_AES_AESNI : VEIL_AES_VAES512 }

  /// The C kernel selector (for benchmarks that call the kernels directly).
  public var cKernel: veil_aes_kernel { cValue }

  public var isAvailable: Bool { veil_aes_kernel_available(cValue) != 0 }

  public static let best: AESKernel = {
    if let forced = ProcessInfo.processInfo.environment["VEIL_AES_KERNEL"],
      let k = AESKernel(rawValue: forced),
      k.isAvailable
    {
      return k
    }
    return AESKernel.vaes512.isAvailable ? .vaes512 : .aesni
  }()
}

/// The three fixed AES keys of the DPF tree PRG (left child, right child, leaf), for one run.
public struct TreePRG: Sendable {
  let keys: (veil_aes128_key, veil_aes128_key, veil_aes128_key)
  public let kernel: AESKernel
  /// A public identifier of the keys (for key-stream headers).
  public let keyID: [UInt8]

  /// Derives the keys from a run's key material with HKDF-SHA256.
  public init(runKey: [UInt8], kernel: AESKernel = .best) throws(FSSError) {
    let ikm = SymmetricKey(data: runKey)
    func derive(_ label: String) -> [UInt8] {
      HKDF<SHA256>.deriveKey(
        inputKeyMaterial: ikm, info: Data(("veil tree prg v1 " + label).utf8), outputByteCount: 16
      ).withUnsafeBytes { Array($0) }
    }
    keys = (
      try AESKey(derive("left")).expanded, try AESKey(derive("right")).expanded,
      try AESKey(derive("leaf")).expanded
    )
    keyID = Array(derive("id").prefix(8))
    self.kernel = kernel
  }

  /// Calls `body` with a pointer to the three keys laid out as the C kernels expect.
  func withKeys<R>(_ body: (UnsafePointer<veil_aes128_key>) throws -> R) rethrows -> R {
    var copy = [keys.0, keys.1, keys.2]
    return try copy.withUnsafeMutableBufferPointer { try body(UnsafePointer($0.baseAddress!)) }
  }
}

/// A cryptographic random generator: AES-128-CTR under a key drawn from the system's CSPRNG.
/// The dealer draws every mask, seed and share from one of these.
public struct SecureRandom: RandomNumberGenerator, Sendable {
  private var key: veil_aes128_key
  private var counter: UInt64 = 0
  private var buffer = [UInt64](repeating: 0, count: 512)
  private var position = 512
  private let kernel: AESKernel

  /// Seeds the generator from `SystemRandomNumberGenerator`.
  public init(kernel: AESKernel = .best) throws(FSSError) {
    var system = SystemRandomNumberGenerator()
    try self.init(
      seed: (0..<16).map { _ in UInt8.random(in: 0...255, using: &system) }, kernel: kernel)
  }

  /// A generator from a given 16-byte seed (tests need reproducible streams).
  public init(seed: [UInt8], kernel: AESKernel = .best) throws(FSSError) {
    key = try AESKey(seed).expanded
    self.kernel = kernel
  }

  /// An independent generator seeded from this one (for work split across threads: each
  /// thread draws from its own child, and the children follow from this generator's seed).
  public mutating func fork() throws(FSSError) -> SecureRandom {
    try SecureRandom(seed: bytes(16), kernel: kernel)
  }

  public mutating func next() -> UInt64 {
    if position == buffer.count { refill() }
    defer { position += 1 }
    return buffer[position]
  }

  private mutating func refill() {
    let blocks = buffer.count / 2
    let k = kernel.cValue
    let start = counter
    withUnsafePointer(to: &key) { keyPointer in
      buffer.withUnsafeMutableBytes { raw in
        veil_aes128_ctr(
          k, keyPointer, start, 0, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), blocks)
      }
    }
    counter &+= UInt64(blocks)
    position = 0
  }

  /// `count` uniformly random bytes.
  public mutating func bytes(_ count: Int) -> [UInt8] {
    guard count >= 256 else {
      var out = [UInt8](repeating: 0, count: count)
      var i = 0
      while i < count {
        let word = next()
        for j in 0..<min(8, count - i) {
          out[i + j] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(j)))
        }
        i += 8
      }
      return out
    }
    // Large requests: AES-CTR straight into the output, on fresh counter values.
    let blocks = (count + 15) / 16
    var out = [UInt8](repeating: 0, count: blocks * 16)
    let k = kernel.cValue
    let start = counter
    withUnsafePointer(to: &key) { keyPointer in
      out.withUnsafeMutableBufferPointer {
        veil_aes128_ctr(k, keyPointer, start, 0, $0.baseAddress!, blocks)
      }
    }
    counter &+= UInt64(blocks)
    out.removeLast(blocks * 16 - count)
    return out
  }

  /// `count` uniform elements of Z_2^bits.
  public mutating func elements(_ count: Int, bits: Int) -> [UInt64] {
    let mask: UInt64 = bits >= 64 ? .max : (1 << UInt64(bits)) - 1
    return (0..<count).map { _ in next() & mask }
  }

  /// `count` uniform bits (0 or 1).
  public mutating func bits(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var word: UInt64 = 0
    for i in 0..<count {
      if i % 64 == 0 { word = next() }
      out[i] = UInt8(word & 1)
      word >>= 1
    }
    return out
  }
}

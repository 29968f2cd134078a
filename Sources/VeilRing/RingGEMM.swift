// Kernel choice for ring GEMM: IFMA when the ring fits 52 bits, else AVX-512 vpmullq, else
// AVX2, else portable C. `VEIL_GEMM_KERNEL=portable|avx2|avx512|ifma` forces one (for tests
// and benches).
import CVeilKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The ring GEMM kernel variants of `CVeilKernels`.
public enum RingGEMMKernel: String, Sendable, CaseIterable, CustomStringConvertible {
  case portable, avx2, avx512, ifma

  var cValue: veil_gemm_kernel {
    switch self {
    case .portable: return VEIL_GEMM_PORTABLE
    case .avx2: return VEIL_GEMM_AVX2
    case .avx512: return VEIL_GEMM_AVX512
    case .ifma: return VEIL_GEMM_IFMA
    }
  }

  public var description: String { rawValue }

  /// Whether this CPU can run the kernel.
  public var isAvailable: Bool { veil_gemm_kernel_available(cValue) != 0 }

  /// Whether the kernel is exact for a ring of `bits` bits.
  public func supports(bits: Int) -> Bool { self != .ifma || bits <= 52 }

  /// Kernels that can run here for a ring of `bits` bits.
  public static func usable(forBits bits: Int) -> [RingGEMMKernel] {
    allCases.filter { $0.isAvailable && $0.supports(bits: bits) }
  }

  private static let forced: RingGEMMKernel? = {
    guard let name = getenv("VEIL_GEMM_KERNEL") else { return nil }
    return RingGEMMKernel(rawValue: String(cString: name))
  }()

  /// The fastest usable kernel for `bits`, unless `VEIL_GEMM_KERNEL` forces a usable one.
  public static func best(forBits bits: Int) -> RingGEMMKernel {
    let usable = usable(forBits: bits)
    if let forced, usable.contains(forced) { return forced }
    if usable.contains(.ifma) { return .ifma }
    if usable.contains(.avx512) { return .avx512 }
    if usable.contains(.avx2) { return .avx2 }
    return .portable
  }
}

/// Thin Swift face of `veil_gemm_u64`.
public enum RingGEMM {
  /// C[m×n] = A[m×k] · B[k×n] mod 2^n (mask), over buffers with offsets, row-major, tight strides.
  /// A kernel that cannot run or is inexact for `mask` falls back to the portable one.
  public static func multiply(
    kernel: RingGEMMKernel, m: Int, n: Int, k: Int,
    a: UnsafeBufferPointer<UInt64>, aOffset: Int,
    b: UnsafeBufferPointer<UInt64>, bOffset: Int,
    c: UnsafeMutableBufferPointer<UInt64>, cOffset: Int, mask: UInt64, accumulate: Bool = false
  ) {
    guard m > 0, n > 0 else { return }
    precondition(
      a.count >= aOffset + m * k && b.count >= bOffset + k * n && c.count >= cOffset + m * n)
    let bits = 64 - mask.leadingZeroBitCount
    let usable = kernel.isAvailable && kernel.supports(bits: bits) ? kernel : .portable
    guard k > 0, let pa = a.baseAddress, let pb = b.baseAddress, let pc = c.baseAddress else {
      if !accumulate { for i in 0..<(m * n) { c[cOffset + i] = 0 } }
      return
    }
    veil_gemm_u64(
      usable.cValue, m, n, k, pa + aOffset, k, pb + bOffset, n, pc + cOffset, n, mask,
      accumulate ? 1 : 0)
  }
}

extension RingGEMM {
  /// The i-j-k triple loop mod 2^n over row-major arrays: the reference every kernel is tested
  /// against, and the "naive Swift" baseline of `veil bench gemm`.
  public static func naive(_ a: [UInt64], _ b: [UInt64], m: Int, k: Int, n: Int, mask: UInt64)
    -> [UInt64]
  {
    var c = [UInt64](repeating: 0, count: m * n)
    for i in 0..<m {
      for j in 0..<n {
        var s: UInt64 = 0
        for p in 0..<k { s &+= a[i * k + p] &* b[p * n + j] }
        c[i * n + j] = s & mask
      }
    }
    return c
  }
}

/// CPU features, for reports (`machine.features` in JSON outputs).
public enum CPUFeatures {
  public static var names: [String] {
    let table: [(Int, String)] = [
      (Int(VEIL_CPU_AESNI), "aes"), (Int(VEIL_CPU_AVX2), "avx2"),
      (Int(VEIL_CPU_AVX512F), "avx512f"),
      (Int(VEIL_CPU_AVX512DQ), "avx512dq"), (Int(VEIL_CPU_AVX512IFMA), "avx512ifma"),
      (Int(VEIL_CPU_VAES), "vaes"), (Int(VEIL_CPU_PCLMUL), "pclmul"),
    ]
    let f = Int(veil_cpu_features())
    return table.filter { f & $0.0 != 0 }.map(\.1)
  }
}

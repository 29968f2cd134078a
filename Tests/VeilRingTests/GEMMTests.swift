import CVeilKernels
import Testing
import VeilTestSupport

@testable import VeilRing

@Suite struct RingGEMMTests {
  func naive(_ a: [UInt64], _ b: [UInt64], m: Int, k: Int, n: Int, mask: UInt64) -> [UInt64] {
    RingGEMM.naive(a, b, m: m, k: k, n: n, mask: mask)
  }

  static let shapes: [(Int, Int, Int)] = [
    (1, 1, 1), (1, 17, 3), (7, 5, 9), (8, 16, 1), (9, 17, 33), (13, 31, 300), (16, 48, 257),
    (3, 1, 513), (0, 4, 4), (4, 0, 4), (4, 4, 0), (33, 15, 64),
  ]

  @Test(arguments: [1, 12, 37, 50, 52, 53, 64])
  func everyUsableKernelMatchesTheNaiveLoop(bits: Int) throws {
    let ring = try Ring(bits: bits)
    var rng = SplitMix64(seed: UInt64(bits) &* 31)
    let kernels = RingGEMMKernel.usable(forBits: bits)
    #expect(kernels.contains(.portable))
    #expect(!kernels.contains(.ifma) || bits <= 52)
    for (m, k, n) in Self.shapes {
      let a = try RingTensor(ring: ring, shape: [m, k], reducing: (0..<(m * k)).map { _ in rng.next() })
      let b = try RingTensor(ring: ring, shape: [k, n], reducing: (0..<(k * n)).map { _ in rng.next() })
      let expected = naive(a.scalars, b.scalars, m: m, k: k, n: n, mask: ring.mask)
      for kernel in kernels {
        let c = try a.matmul(b, kernel: kernel)
        #expect(c.shape == [m, n])
        #expect(c.scalars == expected, "kernel \(kernel) n=\(bits) shape \(m)x\(k)x\(n)")
      }
    }
  }

  @Test func transposedAndBatchedProducts() throws {
    let ring = try Ring(bits: 50)
    var rng = SplitMix64(seed: 99)
    let a = try RingTensor(ring: ring, shape: [3, 5, 7], reducing: (0..<105).map { _ in rng.next() })
    let bt = try RingTensor(ring: ring, shape: [3, 4, 7], reducing: (0..<84).map { _ in rng.next() })
    let c = try a.matmul(bt, transposeB: true)
    #expect(c.shape == [3, 5, 4])
    for s in 0..<3 {
      let a2 = try a.slice(axis: 0, s..<(s + 1)).reshaped([5, 7])
      let b2 = try bt.slice(axis: 0, s..<(s + 1)).reshaped([4, 7]).transposed()
      let c2 = try c.slice(axis: 0, s..<(s + 1)).reshaped([5, 4])
      #expect(c2.scalars == naive(a2.scalars, b2.scalars, m: 5, k: 7, n: 4, mask: ring.mask))
    }
    #expect(throws: RingError.self) { try a.matmul(a) }
  }

  @Test func accumulateAddsToTheExistingProduct() throws {
    let kernels = RingGEMMKernel.usable(forBits: 40)
    let mask: UInt64 = (1 << 40) - 1
    var rng = SplitMix64(seed: 5)
    let (m, k, n) = (9, 20, 18)
    let a = (0..<(m * k)).map { _ in rng.next() & mask }
    let b = (0..<(k * n)).map { _ in rng.next() & mask }
    let once = naive(a, b, m: m, k: k, n: n, mask: mask)
    for kernel in kernels {
      var c = once
      a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
          c.withUnsafeMutableBufferPointer { pc in
            RingGEMM.multiply(
              kernel: kernel, m: m, n: n, k: k, a: pa, aOffset: 0, b: pb, bOffset: 0, c: pc,
              cOffset: 0, mask: mask, accumulate: true)
          }
        }
      }
      #expect(c == once.map { ($0 &* 2) & mask }, "kernel \(kernel)")
    }
  }

  @Test func float64ProductMatchesNaiveLoop() throws {
    var rng = SplitMix64(seed: 3)
    for (m, k, n) in [(1, 1, 1), (5, 13, 3), (9, 384, 17), (4, 7, 0)] {
      let a = try Tensor(shape: [m, k], scalars: (0..<(m * k)).map { _ in Double.random(in: -1...1, using: &rng) })
      let bt = try Tensor(shape: [n, k], scalars: (0..<(n * k)).map { _ in Double.random(in: -1...1, using: &rng) })
      let viaT = try a.matmul(bt, transposeB: true)
      let plain = try a.matmul(try bt.transposed())
      for i in 0..<m {
        for j in 0..<n {
          var s = 0.0
          for p in 0..<k { s += a.scalars[i * k + p] * bt.scalars[j * k + p] }
          #expect(abs(viaT.scalars[i * n + j] - s) < 1e-12)
          #expect(abs(plain.scalars[i * n + j] - s) < 1e-12)
        }
      }
    }
  }
}

// `veil bench gemm`: ring-GEMM throughput per kernel path beside naive baselines.
import ArgumentParser
import CVeilKernels
import Foundation
import VeilRing

struct Bench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure Veil's building blocks.",
    subcommands: [GEMMBench.self, FSSBench.self, NetBench.self, ModelBench.self, OpsBench.self])
}

/// Seconds of the fastest of several timed runs of `body`: at least 3, and as many as fit in
/// `minimumSeconds` (a cap of 5 had left sub-millisecond kernels with 5 samples on a VM whose
/// speed drifts, and `--seconds` without effect).
func bestTime(minimumSeconds: Double, maximumRuns: Int = 1000, _ body: () -> Void) -> (
  best: Double, runs: Int
) {
  var best = Double.infinity
  var total = 0.0
  var runs = 0
  while runs < maximumRuns && (runs < 3 || total < minimumSeconds) {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    best = min(best, seconds)
    total += seconds
    runs += 1
  }
  return (best, runs)
}

struct GEMMBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gemm", abstract: "Ring GEMM multiply-adds per second for each kernel path.")

  @Option(help: "Ring width n.") var bits = 50
  @Option(help: "Shapes as MxKxN, comma-separated.") var shapes = "128x768x768,128x768x3072"
  @Option(help: "Minimum seconds per measurement.") var seconds = 0.5
  @Flag(help: "Skip the naive triple-loop baselines (slow).") var noNaive = false
  @Option(name: .long, help: "Write JSON to FILE ('-' for stdout).") var json: String?

  func run() throws {
    let ring = try Ring(bits: bits)
    var rows: [GEMMRow] = []
    for spec in shapes.split(separator: ",") {
      let dims = spec.split(separator: "x").compactMap { Int($0) }
      guard dims.count == 3, dims.allSatisfy({ $0 > 0 }) else {
        throw ValidationError("shape '\(spec)' is not MxKxN with positive sizes")
      }
      let (m, k, n) = (dims[0], dims[1], dims[2])
      var rng = SystemRandomNumberGenerator()
      let a = try RingTensor(
        ring: ring, shape: [m, k], reducing: (0..<(m * k)).map { _ in rng.next() })
      let b = try RingTensor(
        ring: ring, shape: [k, n], reducing: (0..<(k * n)).map { _ in rng.next() })
      let madds = Double(m * k * n)
      func record(_ path: String, _ timing: (best: Double, runs: Int)) {
        let rate = madds / timing.best
        rows.append(
          GEMMRow(
            shape: [m, k, n], kernel: path, seconds: timing.best, runs: timing.runs,
            multiplyAddsPerSecond: rate))
        printError(
          String(
            format: "%@ %-22@ %8.3f ms  %7.2f G madd/s", "\(m)x\(k)x\(n)", path, timing.best * 1e3,
            rate / 1e9))
      }
      var reference: RingTensor?
      for kernel in RingGEMMKernel.usable(forBits: bits) {
        var product = RingTensor.zeros(ring: ring, shape: [m, n])
        let timing = bestTime(minimumSeconds: seconds) {
          product = (try? a.matmul(b, kernel: kernel)) ?? product
        }
        if let reference, reference != product {
          throw ValidationError("kernel \(kernel) disagrees with the others")
        }
        reference = product
        record("ring-\(kernel)", timing)
      }
      let fa = a.scalars.map { Double(ring.signed($0)) * 1e-9 }
      let fb = b.scalars.map { Double(ring.signed($0)) * 1e-9 }
      let ta = try Tensor(shape: [m, k], scalars: fa)
      let tbT = try Tensor(shape: [k, n], scalars: fb).transposed()
      // The float64 kernel has an AVX-512 path only; elsewhere it is the portable loop.
      let avx512 = veil_cpu_features() & UInt32(VEIL_CPU_AVX512F) != 0
      record(
        avx512 ? "float64-avx512-fma" : "float64-portable",
        bestTime(minimumSeconds: seconds) { _ = try? ta.matmul(tbT, transposeB: true) })
      if !noNaive {
        record(
          "ring-naive-swift",
          bestTime(minimumSeconds: seconds, maximumRuns: 3) {
            _ = RingGEMM.naive(a.scalars, b.scalars, m: m, k: k, n: n, mask: ring.mask)
          })
        record(
          "float64-naive-swift",
          bestTime(minimumSeconds: seconds, maximumRuns: 3) {
            _ = naiveFloat(fa, fb, m: m, k: k, n: n)
          })
      }
    }
    if let json {
      try Report(
        schema: "veil.bench.gemm/1", ringBits: bits,
        params: GEMMParams(bits: bits, minSeconds: seconds), results: GEMMResults(gemm: rows)
      ).write(to: json)
    }
  }
}

struct GEMMParams: Codable {
  var bits: Int
  var minSeconds: Double
}

struct GEMMResults: Codable { var gemm: [GEMMRow] }

/// One kernel at one shape.
struct GEMMRow: Codable {
  var shape: [Int]
  var kernel: String
  var seconds: Double
  var runs: Int
  var multiplyAddsPerSecond: Double
}

/// The float64 i-j-k triple loop (the BLAS-free baseline).
func naiveFloat(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int) -> [Double] {
  var c = [Double](repeating: 0, count: m * n)
  for i in 0..<m {
    for j in 0..<n {
      var s = 0.0
      for p in 0..<k { s += a[i * k + p] * b[p * n + j] }
      c[i * n + j] = s
    }
  }
  return c
}

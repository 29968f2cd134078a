// Float64 arithmetic for the plaintext reference engine.
import CVeilKernels

extension Tensor where Scalar == Double {
  public static func + (a: Tensor, b: Tensor) throws(RingError) -> Tensor {
    try a.zip(b, operation: "add", +)
  }

  public static func - (a: Tensor, b: Tensor) throws(RingError) -> Tensor {
    try a.zip(b, operation: "sub", -)
  }

  /// Matrix product over the last two axes (batched over leading ones). With `transposeB`,
  /// b's last two axes are read as [n, k], the layout of PyTorch's linear weights.
  public func matmul(_ b: Tensor, transposeB: Bool = false) throws(RingError) -> Tensor {
    let (batch, m, k, n) = try matmulDimensions(shape, b.shape, transposeB: transposeB)
    var out = [Double](repeating: 0, count: batch * m * n)
    let resultShape = Array(shape.dropLast(2)) + [m, n]
    guard !out.isEmpty, k > 0 else { return Tensor(uncheckedShape: resultShape, scalars: out) }
    scalars.withUnsafeBufferPointer { pa in
      b.scalars.withUnsafeBufferPointer { pb in
        out.withUnsafeMutableBufferPointer { pc in
          for s in 0..<batch {
            veil_gemm_f64(
              m, n, k, pa.baseAddress! + s * m * k, k, pb.baseAddress! + s * k * n,
              transposeB ? k : n, transposeB ? 1 : 0, pc.baseAddress! + s * m * n, n)
          }
        }
      }
    }
    return Tensor(uncheckedShape: resultShape, scalars: out)
  }

  /// Adds a vector to every row (broadcast over all leading axes).
  public func addingRowVector(_ v: Tensor) throws(RingError) -> Tensor {
    guard v.rank == 1, rank >= 1, shape[rank - 1] == v.count else {
      throw .shapeMismatch(operation: "add row vector", left: shape, right: v.shape)
    }
    var out = scalars
    let width = v.count
    for i in 0..<count { out[i] += v.scalars[i % width] }
    return Tensor(uncheckedShape: shape, scalars: out)
  }
}

// A dense row-major tensor over any scalar, with the layout operations (reshape, transpose,
// slice, concatenate) that are the same for Float64 values and ring elements. Arithmetic lives
// in extensions per scalar kind (Float64 here, rings in RingTensor).

/// Dense row-major tensor: a shape and contiguous scalars.
public struct Tensor<Scalar: Sendable>: Sendable {
  public private(set) var shape: [Int]
  public var scalars: [Scalar]

  /// Creates a tensor, checking that the scalar count matches the shape.
  public init(shape: [Int], scalars: [Scalar]) throws(RingError) {
    guard shape.allSatisfy({ $0 >= 0 }) else {
      throw .invalidShape(operation: "init", shape: shape, reason: "negative dimension")
    }
    guard shape.reduce(1, *) == scalars.count else {
      throw .invalidShape(
        operation: "init", shape: shape,
        reason: "needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
    }
    self.shape = shape
    self.scalars = scalars
  }

  /// Creates a tensor whose shape the caller has already checked.
  @usableFromInline init(uncheckedShape shape: [Int], scalars: [Scalar]) {
    self.shape = shape
    self.scalars = scalars
  }

  public init(repeating value: Scalar, shape: [Int]) {
    self.shape = shape
    self.scalars = Array(repeating: value, count: shape.reduce(1, *))
  }

  public var count: Int { scalars.count }
  public var rank: Int { shape.count }

  /// Same scalars, another shape of the same size.
  public func reshaped(_ newShape: [Int]) throws(RingError) -> Tensor {
    guard newShape.allSatisfy({ $0 >= 0 }), newShape.reduce(1, *) == count else {
      throw .invalidShape(operation: "reshape", shape: shape, reason: "cannot become \(newShape)")
    }
    return Tensor(uncheckedShape: newShape, scalars: scalars)
  }

  /// Swaps the last two axes (a matrix transpose, batched over leading axes).
  public func transposed() throws(RingError) -> Tensor {
    guard rank >= 2 else {
      throw .invalidShape(operation: "transpose", shape: shape, reason: "needs rank ≥ 2")
    }
    let rows = shape[rank - 2]
    let cols = shape[rank - 1]
    let out = Self.transposeMatrices(
      scalars, batch: count / max(rows * cols, 1), rows: rows, columns: cols)
    var newShape = shape
    newShape.swapAt(rank - 2, rank - 1)
    return Tensor(uncheckedShape: newShape, scalars: out)
  }

  /// Each of `batch` row-major [rows, columns] matrices stored one after another in `scalars`,
  /// transposed (for flat buffers that are not a `Tensor`).
  public static func transposeMatrices(_ scalars: [Scalar], batch: Int, rows: Int, columns: Int)
    -> [Scalar]
  {
    var out = scalars
    scalars.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        for b in 0..<batch {
          let base = b * rows * columns
          for i in 0..<rows {
            for j in 0..<columns { dst[base + j * rows + i] = src[base + i * columns + j] }
          }
        }
      }
    }
    return out
  }

  /// The sub-tensor with `axis` restricted to `range`.
  public func slice(axis: Int, _ range: Range<Int>) throws(RingError) -> Tensor {
    guard axis >= 0, axis < rank, range.lowerBound >= 0, range.upperBound <= shape[axis] else {
      throw .invalidShape(
        operation: "slice", shape: shape, reason: "axis \(axis) range \(range) is out of bounds")
    }
    let outer = shape[..<axis].reduce(1, *)
    let inner = shape[(axis + 1)...].reduce(1, *)
    var out: [Scalar] = []
    out.reserveCapacity(outer * range.count * inner)
    for o in 0..<outer {
      let start = (o * shape[axis] + range.lowerBound) * inner
      out.append(contentsOf: scalars[start..<(start + range.count * inner)])
    }
    var newShape = shape
    newShape[axis] = range.count
    return Tensor(uncheckedShape: newShape, scalars: out)
  }

  /// Rows of a matrix picked by index (a public-index gather along axis 0).
  public func rows(_ indices: [Int]) throws(RingError) -> Tensor {
    guard rank >= 1 else {
      throw .invalidShape(operation: "rows", shape: shape, reason: "needs rank ≥ 1")
    }
    let width = count / max(shape[0], 1)
    var out: [Scalar] = []
    out.reserveCapacity(indices.count * width)
    for index in indices {
      guard index >= 0, index < shape[0] else {
        throw .invalidShape(
          operation: "rows", shape: shape, reason: "row \(index) is out of bounds")
      }
      out.append(contentsOf: scalars[(index * width)..<((index + 1) * width)])
    }
    var newShape = shape
    newShape[0] = indices.count
    return Tensor(uncheckedShape: newShape, scalars: out)
  }

  /// Concatenates tensors along `axis`; all other dimensions must agree.
  public static func concatenate(_ parts: [Tensor], axis: Int) throws(RingError) -> Tensor {
    guard let first = parts.first else {
      throw .invalidShape(operation: "concatenate", shape: [], reason: "no tensors")
    }
    guard axis >= 0, axis < first.rank else {
      throw .invalidShape(operation: "concatenate", shape: first.shape, reason: "no axis \(axis)")
    }
    for part in parts {
      var a = part.shape
      var b = first.shape
      guard a.count == b.count else {
        throw .shapeMismatch(operation: "concatenate", left: first.shape, right: part.shape)
      }
      a[axis] = 0
      b[axis] = 0
      guard a == b else {
        throw .shapeMismatch(operation: "concatenate", left: first.shape, right: part.shape)
      }
    }
    let outer = first.shape[..<axis].reduce(1, *)
    let inner = first.shape[(axis + 1)...].reduce(1, *)
    var out: [Scalar] = []
    out.reserveCapacity(parts.reduce(0) { $0 + $1.count })
    for o in 0..<outer {
      for part in parts {
        let chunk = part.shape[axis] * inner
        out.append(contentsOf: part.scalars[(o * chunk)..<((o + 1) * chunk)])
      }
    }
    var newShape = first.shape
    newShape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
    return Tensor(uncheckedShape: newShape, scalars: out)
  }

  /// Applies `body` to each scalar.
  @inlinable public func map<T>(_ body: (Scalar) throws -> T) rethrows -> Tensor<T> {
    Tensor<T>(uncheckedShape: shape, scalars: try scalars.map(body))
  }

  /// Combines two tensors of the same shape scalar by scalar.
  @inlinable public func zip<T, U>(
    _ other: Tensor<T>, operation: String, _ body: (Scalar, T) -> U
  ) throws(RingError) -> Tensor<U> {
    guard shape == other.shape else {
      throw .shapeMismatch(operation: operation, left: shape, right: other.shape)
    }
    var out = [U]()
    out.reserveCapacity(count)
    for i in 0..<count { out.append(body(scalars[i], other.scalars[i])) }
    return Tensor<U>(uncheckedShape: shape, scalars: out)
  }
}

extension Tensor: Equatable where Scalar: Equatable {}

/// Checks that a and b are matrices (or equal-batch stacks of them) with a.cols == b.rows
/// (or b.cols when `transposeB`), and returns (batch, m, k, n).
func matmulDimensions(
  _ a: [Int], _ b: [Int], transposeB: Bool
) throws(RingError) -> (batch: Int, m: Int, k: Int, n: Int) {
  guard a.count >= 2, a.count == b.count, a.dropLast(2) == b.dropLast(2) else {
    throw .shapeMismatch(operation: "matmul", left: a, right: b)
  }
  let m = a[a.count - 2]
  let k = a[a.count - 1]
  let kb = transposeB ? b[b.count - 1] : b[b.count - 2]
  let n = transposeB ? b[b.count - 2] : b[b.count - 1]
  guard k == kb else { throw .shapeMismatch(operation: "matmul", left: a, right: b) }
  return (a.dropLast(2).reduce(1, *), m, k, n)
}

// Reads safetensors files: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data. The file is memory-
// mapped; every length, offset, dtype and shape is validated before any byte is read, so a
// truncated or hostile file produces a ModelError, never a crash or an out-of-bounds read.
import Foundation
import VeilRing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Element types a safetensors file may declare.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
  case bool = "BOOL", u8 = "U8", i8 = "I8", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"
  case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
  case i32 = "I32", u32 = "U32", f32 = "F32"
  case i64 = "I64", u64 = "U64", f64 = "F64"

  public var byteWidth: Int {
    switch self {
    case .bool, .u8, .i8, .f8e4m3, .f8e5m2: return 1
    case .i16, .u16, .f16, .bf16: return 2
    case .i32, .u32, .f32: return 4
    case .i64, .u64, .f64: return 8
    }
  }

  /// Whether `SafeTensorsFile.floats` can convert this type to Float64.
  public var isReadableAsFloat: Bool { [.f16, .bf16, .f32, .f64].contains(self) }
}

/// One tensor's entry in the header.
public struct SafeTensorsEntry: Sendable, Equatable {
  public let name: String
  public let dtype: SafeTensorsDType
  public let shape: [Int]
  /// Byte range inside the data section.
  public let byteRange: Range<Int>
}

/// A memory-mapped safetensors file.
public final class SafeTensorsFile: @unchecked Sendable {
  // @unchecked: the mapping is read-only and never changes after init; it is unmapped in deinit.
  public let path: String
  public let entries: [String: SafeTensorsEntry]
  public let metadata: [String: String]
  private let base: UnsafeRawPointer?
  private let mappedLength: Int
  private let dataOffset: Int

  /// Largest header accepted (the format's reference reader uses the same bound).
  static let maximumHeaderLength = 100_000_000

  public init(path: String) throws(ModelError) {
    self.path = path
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
      if errno == ENOENT { throw .missingFile(path: path) }
      throw .malformed(path: path, reason: "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw .malformed(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw .malformed(path: path, reason: "not a regular file") }
    let size = Int(info.st_size)
    guard size >= 8 else {
      throw .malformed(path: path, reason: "file is \(size) bytes, shorter than the 8-byte header length")
    }
    guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else {
      throw .malformed(path: path, reason: "cannot map: \(String(cString: strerror(errno)))")
    }
    let raw = UnsafeRawPointer(mapping)
    self.base = raw
    self.mappedLength = size
    // From here on, a thrown error still runs deinit (all stored properties are set below
    // before any throw), so the mapping is released.
    let headerLength = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
    var entries: [String: SafeTensorsEntry] = [:]
    var metadata: [String: String] = [:]
    var dataOffset = 8
    var failure: ModelError?
    if headerLength > UInt64(Self.maximumHeaderLength) || Int(headerLength) > size - 8 {
      failure = .malformed(
        path: path, reason: "header length \(headerLength) exceeds the file (\(size) bytes) or the limit")
    } else {
      dataOffset = 8 + Int(headerLength)
      let header = Data(bytes: raw + 8, count: Int(headerLength))
      do throws(ModelError) {
        (entries, metadata) = try Self.parseHeader(header, dataLength: size - dataOffset, path: path)
      } catch { failure = error }
    }
    self.entries = entries
    self.metadata = metadata
    self.dataOffset = dataOffset
    if let failure { throw failure }
  }

  deinit {
    if let base { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }
  }

  private static func parseHeader(
    _ header: Data, dataLength: Int, path: String
  ) throws(ModelError) -> ([String: SafeTensorsEntry], [String: String]) {
    let json: Any
    do { json = try JSONSerialization.jsonObject(with: header) } catch {
      throw .malformed(path: path, reason: "header is not valid JSON")
    }
    guard let object = json as? [String: Any] else {
      throw .malformed(path: path, reason: "header is not a JSON object")
    }
    var entries: [String: SafeTensorsEntry] = [:]
    var metadata: [String: String] = [:]
    for (name, value) in object {
      if name == "__metadata__" {
        guard let meta = value as? [String: Any] else {
          throw .malformed(path: path, reason: "__metadata__ is not an object")
        }
        for (k, v) in meta { metadata[k] = v as? String ?? String(describing: v) }
        continue
      }
      guard let fields = value as? [String: Any] else {
        throw .malformed(path: path, reason: "entry '\(name)' is not an object")
      }
      guard let dtypeName = fields["dtype"] as? String else {
        throw .malformed(path: path, reason: "tensor '\(name)' has no dtype")
      }
      guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
        throw .unsupported(path: path, reason: "tensor '\(name)' has unknown dtype '\(dtypeName)'")
      }
      guard let shapeValues = fields["shape"] as? [Any],
        let shape = integers(shapeValues), shape.allSatisfy({ $0 >= 0 })
      else { throw .malformed(path: path, reason: "tensor '\(name)' has an invalid shape") }
      guard let offsetValues = fields["data_offsets"] as? [Any], let offsets = integers(offsetValues),
        offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1]
      else { throw .malformed(path: path, reason: "tensor '\(name)' has invalid data_offsets") }
      guard offsets[1] <= dataLength else {
        throw .malformed(
          path: path,
          reason: "tensor '\(name)' ends at byte \(offsets[1]) but the data section has \(dataLength) (file truncated?)")
      }
      var elements = 1
      for d in shape {
        let (product, overflow) = elements.multipliedReportingOverflow(by: d)
        guard !overflow else { throw .malformed(path: path, reason: "tensor '\(name)' shape overflows") }
        elements = product
      }
      let (expectedBytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteWidth)
      guard !overflow, expectedBytes == offsets[1] - offsets[0] else {
        throw .malformed(
          path: path,
          reason: "tensor '\(name)' of shape \(shape) \(dtypeName) needs \(expectedBytes) bytes, its range has \(offsets[1] - offsets[0])")
      }
      entries[name] = SafeTensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: offsets[0]..<offsets[1])
    }
    let sorted = entries.values.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
    for (a, b) in Swift.zip(sorted, sorted.dropFirst()) where a.byteRange.overlaps(b.byteRange) {
      throw .malformed(path: path, reason: "tensors '\(a.name)' and '\(b.name)' overlap")
    }
    return (entries, metadata)
  }

  private static func integers(_ values: [Any]) -> [Int]? {
    var out: [Int] = []
    for v in values {
      guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else { return nil }
      out.append(i)
    }
    return out
  }

  /// Names of all tensors, sorted.
  public var names: [String] { entries.keys.sorted() }

  /// The tensor `name` converted to Float64, optionally checking its shape.
  public func floats(_ name: String, expectedShape: [Int]? = nil) throws(ModelError) -> Tensor<Double> {
    guard let entry = entries[name] else { throw .missingTensor(path: path, tensor: name) }
    if let expectedShape, expectedShape != entry.shape {
      throw .shapeMismatch(path: path, tensor: name, expected: expectedShape, found: entry.shape)
    }
    guard entry.dtype.isReadableAsFloat, let base else {
      throw .unsupported(path: path, reason: "tensor '\(name)' has dtype \(entry.dtype.rawValue), not a float type")
    }
    let start = base + dataOffset + entry.byteRange.lowerBound
    let count = entry.byteRange.count / entry.dtype.byteWidth
    var out = [Double](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { dst in
      switch entry.dtype {
      case .f64:
        for i in 0..<count { dst[i] = Double(bitPattern: UInt64(littleEndian: start.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
      case .f32:
        for i in 0..<count { dst[i] = Double(Float(bitPattern: UInt32(littleEndian: start.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))) }
      case .f16:
        for i in 0..<count { dst[i] = Self.halfToDouble(UInt16(littleEndian: start.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
      case .bf16:
        for i in 0..<count { dst[i] = Double(Float(bitPattern: UInt32(UInt16(littleEndian: start.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)) }
      default:
        break
      }
    }
    // The count was validated against the shape when the header was parsed.
    return (try? Tensor(shape: entry.shape, scalars: out)) ?? Tensor(repeating: 0, shape: [0])
  }

  /// IEEE 754 binary16 → Float64, exactly (subnormals, infinities and NaN included).
  static func halfToDouble(_ bits: UInt16) -> Double {
    let sign: Double = bits & 0x8000 != 0 ? -1 : 1
    let exponent = Int((bits >> 10) & 0x1F)
    let fraction = Double(bits & 0x3FF)
    switch exponent {
    case 0: return sign * fraction * 0x1p-24
    case 31: return fraction == 0 ? sign * .infinity : .nan
    default: return sign * (1 + fraction / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
    }
  }
}

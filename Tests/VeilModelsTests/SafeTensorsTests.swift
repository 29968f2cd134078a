import Foundation
import Testing
import VeilRing

@testable import VeilModels

/// Builds safetensors files byte by byte, so tests can corrupt any part.
enum SafeTensorsFixture {
  static func bytes(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    return out + h + data
  }

  static func write(_ bytes: [UInt8], name: String = "model.safetensors") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("veil-st-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  static func f32(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
  }
}

@Suite struct SafeTensorsTests {
  @Test func readsEveryFloatDType() throws {
    // F32 [2,2] = 1,2,3,4; F16 [2] = 1.5, -2 ; BF16 [1] = 1.0; F64 [1] = 0.1; I64 [1] = 7
    var data = SafeTensorsFixture.f32([1, 2, 3, 4])
    data += [0x00, 0x3E, 0x00, 0xC0]  // F16 1.5 = 0x3E00, -2 = 0xC000
    data += [0x80, 0x3F]  // BF16 1.0 = 0x3F80
    data += withUnsafeBytes(of: (0.1).bitPattern.littleEndian) { Array($0) }
    data += withUnsafeBytes(of: Int64(7).littleEndian) { Array($0) }
    let header = """
      {"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},\
      "h":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[20,22]},\
      "d":{"dtype":"F64","shape":[1],"data_offsets":[22,30]},"i":{"dtype":"I64","shape":[1],"data_offsets":[30,38]}}
      """
    let file = try SafeTensorsFile(path: try SafeTensorsFixture.write(SafeTensorsFixture.bytes(header: header, data: data)))
    #expect(file.metadata["format"] == "pt")
    #expect(file.names == ["a", "b", "d", "h", "i"])
    #expect(try file.floats("a").scalars == [1, 2, 3, 4])
    #expect(try file.floats("a").shape == [2, 2])
    #expect(try file.floats("h").scalars == [1.5, -2])
    #expect(try file.floats("b").scalars == [1])
    #expect(try file.floats("d").scalars == [0.1])
    #expect(throws: ModelError.self) { try file.floats("i") }
    #expect(throws: ModelError.self) { try file.floats("missing") }
    #expect(throws: ModelError.self) { try file.floats("a", expectedShape: [4]) }
  }

  @Test func halfPrecisionEdgeCases() {
    #expect(SafeTensorsFile.halfToDouble(0x0001) == 0x1p-24)  // smallest subnormal
    #expect(SafeTensorsFile.halfToDouble(0x7BFF) == 65504)  // largest normal
    #expect(SafeTensorsFile.halfToDouble(0xFC00) == -.infinity)
    #expect(SafeTensorsFile.halfToDouble(0x7E00).isNaN)
    #expect(SafeTensorsFile.halfToDouble(0x8000) == 0)
  }

  static let good = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#

  /// Each corrupt file must raise a ModelError whose message names the file.
  static let corruptions: [(String, [UInt8])] = [
    ("empty file", []),
    ("short length", [1, 2, 3]),
    ("header longer than file", SafeTensorsFixture.bytes(header: good, data: [], declaredLength: 1 << 20)),
    ("absurd header length", SafeTensorsFixture.bytes(header: good, data: [], declaredLength: .max)),
    ("not JSON", SafeTensorsFixture.bytes(header: "{\"w\": [", data: [])),
    ("JSON array", SafeTensorsFixture.bytes(header: "[1,2]", data: [])),
    ("unknown dtype", SafeTensorsFixture.bytes(
      header: #"{"w":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}"#, data: SafeTensorsFixture.f32([1, 2]))),
    ("truncated data", SafeTensorsFixture.bytes(header: good, data: SafeTensorsFixture.f32([1]))),
    ("size disagrees with shape", SafeTensorsFixture.bytes(
      header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: SafeTensorsFixture.f32([1, 2]))),
    ("negative dimension", SafeTensorsFixture.bytes(
      header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: SafeTensorsFixture.f32([1, 2]))),
    ("reversed offsets", SafeTensorsFixture.bytes(
      header: #"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: SafeTensorsFixture.f32([1, 2]))),
    ("overlapping tensors", SafeTensorsFixture.bytes(
      header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
      data: SafeTensorsFixture.f32([1, 2]))),
    ("missing dtype", SafeTensorsFixture.bytes(header: #"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, data: SafeTensorsFixture.f32([1, 2]))),
    ("overflowing shape", SafeTensorsFixture.bytes(
      header: #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: SafeTensorsFixture.f32([1, 2]))),
  ]

  @Test(arguments: corruptions.map(\.0))
  func corruptFilesGiveAnErrorNamingTheFile(name: String) throws {
    let bytes = Self.corruptions.first { $0.0 == name }!.1
    let path = try SafeTensorsFixture.write(bytes)
    do {
      _ = try SafeTensorsFile(path: path)
      Issue.record("\(name): accepted a corrupt file")
    } catch {
      #expect(error.description.contains(path), "\(name): \(error)")
      #expect(!error.description.contains("\n"))
    }
  }

  @Test func missingFileIsNamed() {
    #expect(throws: ModelError.missingFile(path: "/nonexistent/model.safetensors")) {
      try SafeTensorsFile(path: "/nonexistent/model.safetensors")
    }
  }

  /// Mutated and truncated copies of a good file, from a fixed seed (a failure reproduces):
  /// each one either parses to entries that fit its data section and read back at their shape,
  /// or raises a one-line ModelError naming the file. A copy whose header is intact must parse
  /// (and read back its data bytes) when its data is whole, and be refused when it is cut short.
  @Test func mutatedFilesParseConsistentlyOrFailWithAModelError() throws {
    var rng = SplitMix64(seed: 0x5AFE_7E45_0125)
    let base = SafeTensorsFixture.bytes(header: Self.good, data: SafeTensorsFixture.f32([1, 2]))
    let headerEnd = 8 + Self.good.utf8.count
    // The unmutated file round-trips.
    let original = try SafeTensorsFile(path: try SafeTensorsFixture.write(base))
    #expect(original.names == ["w"])
    #expect(original.entries["w"]?.byteRange == 0..<8)
    #expect(try original.floats("w", expectedShape: [2]).scalars == [1, 2])
    var outcomes: [String: Int] = [:]
    for iteration in 0..<600 {
      var bytes = base
      // Mutations anywhere, only in the data, or only in the length and JSON header.
      let region = [0..<base.count, headerEnd..<base.count, 0..<headerEnd][iteration % 3]
      for _ in 0..<Int.random(in: 1...4, using: &rng) {
        bytes[Int.random(in: region, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
      }
      // Half the files are cut short: within the 8 data bytes, or anywhere.
      if Bool.random(using: &rng) {
        bytes.removeLast(Bool.random(using: &rng) ? Int.random(in: 1...8, using: &rng) : Int.random(in: 1..<bytes.count, using: &rng))
      }
      let headerIntact = bytes.count >= headerEnd && bytes[..<headerEnd] == base[..<headerEnd]
      let whole = bytes.count == base.count
      let path = try SafeTensorsFixture.write(bytes)
      defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
      let file: SafeTensorsFile
      do {
        file = try SafeTensorsFile(path: path)
      } catch {
        #expect(error.description.contains(path) && !error.description.contains("\n"), "\(error)")
        #expect(!(headerIntact && whole), "iteration \(iteration): refused a file with a valid header: \(error)")
        outcomes[headerIntact ? "intact, refused" : "refused", default: 0] += 1
        continue
      }
      #expect(!(headerIntact && !whole), "iteration \(iteration): accepted a file with truncated data")
      outcomes[headerIntact ? "intact, accepted" : "accepted", default: 0] += 1
      // Accepted: every entry lies inside the data section, its range is its shape's size, no
      // two overlap, and reading it gives that shape (or refuses a non-float dtype).
      let headerLength = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
      let dataStart = 8 + headerLength
      let dataLength = bytes.count - dataStart
      let ranges = file.entries.values.map(\.byteRange).sorted { $0.lowerBound < $1.lowerBound }
      for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(!a.overlaps(b)) }
      for (name, entry) in file.entries {
        #expect(entry.name == name)
        #expect(entry.byteRange.lowerBound >= 0 && entry.byteRange.upperBound <= dataLength)
        let elements = entry.shape.reduce(1, *)
        #expect(entry.byteRange.count == elements * entry.dtype.byteWidth)
        guard entry.dtype.isReadableAsFloat else {
          #expect(throws: ModelError.self) { try file.floats(name) }
          continue
        }
        let tensor = try file.floats(name)
        #expect(tensor.shape == entry.shape && tensor.scalars.count == elements)
        if entry.dtype == .f32 {
          for (i, value) in tensor.scalars.enumerated() {
            let at = dataStart + entry.byteRange.lowerBound + 4 * i
            let raw = Double(Float(bitPattern: bytes[at..<at + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }))
            #expect(value == raw || (value.isNaN && raw.isNaN), "\(name)[\(i)]")
          }
        }
      }
    }
    // The fuzzing reached every case checked above: broken headers, and intact ones with whole
    // and with cut data.
    print("safetensors fuzz outcomes: \(outcomes)")
    for outcome in ["refused", "intact, accepted", "intact, refused"] {
      #expect(outcomes[outcome, default: 0] >= 10, "\(outcome): \(outcomes)")
    }
  }
}

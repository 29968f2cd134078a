// Value ranges and bound violations recorded by the clear back end, per gate site: what the
// ring width of a model has to hold (DESIGN §9 "Numbers": choose n from the ranges on real
// inputs), and every place where a recipe's assumption failed.
import Foundation
import VeilModels

/// What went wrong at a gate.
public enum ViolationKind: String, Sendable, Hashable, CaseIterable {
  /// The exact result did not fit the ring: the secure run wraps too.
  case ringOverflow
  /// A TrWithSlack truncation's input was outside |x| < 2^(n−2): the secure gate is wrong there.
  case slackHeadroom
  /// A bound the recipe asserts (e.g. GeLU's |x| < 2^(n−f−1)) failed.
  case recipeBound
}

/// The statistics of one gate site (a layer, an op kind and a gate label).
public struct RangeRecord: Sendable, Equatable {
  /// The largest |signed value| seen at the gate's output (or input, for bound checks).
  public var maxMagnitude: Int64 = 0
  /// The output format (for reading `maxMagnitude` as a real number and in bits).
  public var format: WireFormat
  public var calls = 0
  public var elements = 0
  public var violations: [ViolationKind: Int] = [:]

  /// maxMagnitude / 2^scale.
  public var maxReal: Double {
    Double(maxMagnitude) / Double(sign: .plus, exponent: format.scale, significand: 1)
  }

  /// Bits a signed value of this magnitude needs (sign included).
  public var bitsUsed: Int { maxMagnitude == 0 ? 1 : 65 - maxMagnitude.leadingZeroBitCount }

  public var violationCount: Int { violations.values.reduce(0, +) }
}

/// The key of a record: layer, op kind and gate label (the op's index within the layer is
/// folded so that, e.g., all six linear layers of a block share a row per gate).
public struct RangeKey: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var layer: Int
  public var kind: OpKind
  public var gate: String

  public static func < (a: RangeKey, b: RangeKey) -> Bool {
    (a.layer, a.kind.rawValue, a.gate) < (b.layer, b.kind.rawValue, b.gate)
  }

  public var description: String { "layer \(layer) \(kind.rawValue) \(gate)" }
}

/// A thread-safe recorder of value ranges and violations.
public final class RangeRecorder: @unchecked Sendable {
  private let lock = NSLock()
  private var records: [RangeKey: RangeRecord] = [:]
  private var firstViolations: [String] = []
  /// How many violation messages to keep (all are counted).
  public let messageLimit: Int

  public init(messageLimit: Int = 20) { self.messageLimit = messageLimit }

  static func key(_ site: GateSite) -> RangeKey {
    RangeKey(layer: site.op.layer, kind: site.op.kind, gate: site.gate)
  }

  /// Records the output of a gate.
  func record(_ site: GateSite, format: WireFormat, maxMagnitude: Int64, elements: Int) {
    lock.lock()
    defer { lock.unlock() }
    let key = Self.key(site)
    var record = records[key] ?? RangeRecord(format: format)
    record.format = format
    record.maxMagnitude = max(record.maxMagnitude, maxMagnitude)
    record.calls += 1
    record.elements += elements
    records[key] = record
  }

  /// Counts `count` violations of `kind` at a gate.
  func violation(
    _ kind: ViolationKind, at site: GateSite, format: WireFormat, count: Int, detail: String
  ) {
    guard count > 0 else { return }
    lock.lock()
    defer { lock.unlock() }
    let key = Self.key(site)
    var record = records[key] ?? RangeRecord(format: format)
    record.violations[kind, default: 0] += count
    records[key] = record
    if firstViolations.count < messageLimit {
      firstViolations.append("\(site): \(count) × \(kind.rawValue): \(detail)")
    }
  }

  /// All records, sorted by layer, kind and gate.
  public var snapshot: [(RangeKey, RangeRecord)] {
    lock.lock()
    defer { lock.unlock() }
    return records.sorted { $0.key < $1.key }
  }

  /// Total violations of each kind.
  public var violationTotals: [ViolationKind: Int] {
    var totals: [ViolationKind: Int] = [:]
    for (_, record) in snapshot {
      for (kind, count) in record.violations { totals[kind, default: 0] += count }
    }
    return totals
  }

  public var totalViolations: Int { violationTotals.values.reduce(0, +) }

  /// The first violation messages (up to `messageLimit`).
  public var violationMessages: [String] {
    lock.lock()
    defer { lock.unlock() }
    return firstViolations
  }

  /// The largest magnitude per (op kind, gate label) over all layers, for a compact report.
  public func byKind() -> [(kind: OpKind, gate: String, record: RangeRecord)] {
    var merged: [String: (OpKind, String, RangeRecord)] = [:]
    for (key, record) in snapshot {
      let name = key.kind.rawValue + "/" + key.gate
      if var existing = merged[name] {
        if record.maxReal > existing.2.maxReal {
          existing.2.maxMagnitude = record.maxMagnitude
          existing.2.format = record.format
        }
        existing.2.calls += record.calls
        existing.2.elements += record.elements
        for (kind, count) in record.violations { existing.2.violations[kind, default: 0] += count }
        merged[name] = existing
      } else {
        merged[name] = (key.kind, key.gate, record)
      }
    }
    return merged.values.sorted { ($0.0.rawValue, $0.1) < ($1.0.rawValue, $1.1) }.map {
      ($0.0, $0.1, $0.2)
    }
  }

  /// The largest output magnitude per (op kind, layer) over all gates of the op, as real
  /// numbers (each gate's magnitude read at its own scale).
  public func byKindAndLayer() -> [(kind: OpKind, layer: Int, maxReal: Double, violations: Int)] {
    var merged: [String: (OpKind, Int, Double, Int)] = [:]
    for (key, record) in snapshot {
      let name = "\(key.kind.rawValue)/\(key.layer)"
      let previous = merged[name] ?? (key.kind, key.layer, 0, 0)
      merged[name] = (
        key.kind, key.layer, max(previous.2, record.maxReal), previous.3 + record.violationCount
      )
    }
    return merged.values.sorted { ($0.0.rawValue, $0.1) < ($1.0.rawValue, $1.1) }.map {
      ($0.0, $0.1, $0.2, $0.3)
    }
  }

  /// A plain-text table: one line per (kind, gate) with the largest real magnitude, the bits
  /// it needs, the ring width and violations. Index rings (≤ 24 bits) may show more bits than
  /// the ring: their values are unsigned table indices that wrap on purpose.
  public func report() -> String {
    var lines = ["kind/gate" + String(repeating: " ", count: 36) + "max|x|  bits/ring  violations"]
    for (kind, gate, record) in byKind() {
      let name = (kind.rawValue + "/" + gate).padding(toLength: 44, withPad: " ", startingAt: 0)
      let magnitude = String(format: "%14.6g", record.maxReal)
      let bits = "\(record.bitsUsed)/\(record.format.bits)".padding(
        toLength: 9, withPad: " ", startingAt: 0)
      let violations =
        record.violations.isEmpty
        ? "0"
        : record.violations.map { "\($0.key.rawValue) \($0.value)" }.sorted().joined(
          separator: ", ")
      lines.append("\(name) \(magnitude)  \(bits)  \(violations)")
    }
    return lines.joined(separator: "\n")
  }

  /// Forgets everything recorded so far.
  public func reset() {
    lock.lock()
    defer { lock.unlock() }
    records = [:]
    firstViolations = []
  }
}

// How key material prints: a key batch describes itself by its shape only (kind, widths,
// count), never a seed, share or correction word, whether it reaches a log through
// `description`, `debugDescription` or `dump` (Mirror).

/// A key type whose printed forms name its shape and nothing of its secret contents.
public protocol RedactedKey: CustomStringConvertible, CustomDebugStringConvertible,
  CustomReflectable
{
  /// The public shape: what the key is for and how many elements it serves.
  var shape: String { get }
}

extension RedactedKey {
  public var description: String { "\(Self.self)(\(shape), redacted)" }
  public var debugDescription: String { description }
  public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension DPFKeys: RedactedKey {
  public var shape: String { "\(count) keys, \(bits)-bit domain" }
}

extension DReLUKey: RedactedKey {
  public var shape: String { "\(count) keys, \(ring.bits)-bit ring, \(offsets.count) offsets" }
}

extension SelectKey: RedactedKey {
  public var shape: String { "\(count) keys, \(ring.bits)-bit ring" }
}

extension TruncationKey: RedactedKey {
  public var shape: String {
    "\(count) keys, \(kind) \(inputBits) → \(outputBits) bits, shift \(shift)"
  }
}

extension LUTKey: RedactedKey {
  public var shape: String { "\(count) keys, \(inputBits) → \(outputRing.bits) bits" }
}

extension ShareBundle: RedactedKey {
  public var shape: String { "\(bits)-bit parts \(partLengths)" }
}

extension SeededParts: RedactedKey {
  public var shape: String { "lengths \(lengths)" }
}

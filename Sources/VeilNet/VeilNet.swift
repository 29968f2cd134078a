// VeilNet owns channels between parties: the transport-agnostic `Channel` protocol with byte,
// message and round counters; an in-memory pair; TCP with mutual TLS 1.3 over swift-nio; the
// frame format and session handshake; ring tensors bit-packed at their ring width; and the
// Veil certificate authority. This file holds the identities every session names: roles and
// run ids.

/// The role a process plays in a Veil run (DESIGN §1). Certificates name it, and each end of a
/// session checks the other's role, not only that its certificate comes from the Veil CA.
public enum PartyRole: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
  /// Server party 0.
  case p0 = 0
  /// Server party 1.
  case p1 = 1
  /// The dealer of correlated randomness.
  case dealer = 2
  /// The client that owns the input text.
  case client = 3
  /// The model owner, who shares its weights once (`veil share-model`).
  case owner = 4

  /// The role's name as written in certificates and on the command line.
  public var name: String {
    switch self {
    case .p0: "p0"
    case .p1: "p1"
    case .dealer: "dealer"
    case .client: "client"
    case .owner: "owner"
    }
  }

  /// Parses a name written by `name` ("p0", "p1", "dealer", "client", "owner").
  public init?(name: String) {
    guard let role = PartyRole.allCases.first(where: { $0.name == name }) else { return nil }
    self = role
  }

  /// The role's name.
  public var description: String { name }
}

/// A run's 128-bit identifier. Both ends of every session of a run must present the same one
/// (DESIGN §7: a stream of another run is refused). It names a run; it never seeds randomness.
public struct RunID: Sendable, Hashable, CustomStringConvertible {
  /// The 16 bytes.
  public let bytes: [UInt8]

  /// Wraps 16 bytes; nil for any other length.
  public init?(bytes: [UInt8]) {
    guard bytes.count == 16 else { return nil }
    self.bytes = bytes
  }

  /// Parses 32 hexadecimal digits.
  public init?(hex: String) {
    let digits = Array(hex.utf8)
    guard digits.count == 32 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(16)
    for i in stride(from: 0, to: 32, by: 2) {
      guard let high = hexValue(digits[i]), let low = hexValue(digits[i + 1]) else { return nil }
      bytes.append(high << 4 | low)
    }
    self.bytes = bytes
  }

  /// A fresh id from the system's CSPRNG.
  public static func random() -> RunID {
    var generator = SystemRandomNumberGenerator()
    return RunID(uncheckedBytes: (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
  }

  init(uncheckedBytes: [UInt8]) { self.bytes = uncheckedBytes }

  /// 32 lowercase hexadecimal digits.
  public var description: String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(32)
    for byte in bytes {
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 15)])
    }
    return String(decoding: text, as: UTF8.self)
  }
}

private func hexValue(_ digit: UInt8) -> UInt8? {
  switch digit {
  case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
  case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
  case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
  default: nil
  }
}

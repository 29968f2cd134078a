// VeilFSS owns function secret sharing: the fixed-key AES PRG, DPF keys (generation and
// evaluation), the gates on masked wires built from them (comparison, select, lookup table,
// exact truncations), and the versioned, checksummed key-record format. Gates do no I/O:
// the dealer calls `gen`, each party calls `eval` on public masked values.

/// Errors of key generation, evaluation and key decoding.
public enum FSSError: Error, Equatable, CustomStringConvertible {
  case noAESNI
  case invalidWidth(String)
  case countMismatch(expected: Int, found: Int)
  case truncatedKey(expected: Int, found: Int)
  case corruptKey(String)
  case wrongKeyKind(expected: String, found: String)
  case unsupportedVersion(Int)
  case wrongParty(expected: Int, found: Int)
  case wrongWidth(expected: Int, found: Int)

  public var description: String {
    switch self {
    case .noAESNI: return "this CPU has no AES-NI; Veil's PRG needs it"
    case .invalidWidth(let why): return "invalid bit width: \(why)"
    case .countMismatch(let e, let f): return "key holds \(e) elements, input has \(f)"
    case .truncatedKey(let e, let f): return "key record truncated: needs \(e) bytes, has \(f)"
    case .corruptKey(let why): return "corrupt key record: \(why)"
    case .wrongKeyKind(let e, let f): return "expected a \(e) key, found \(f)"
    case .unsupportedVersion(let v): return "key format version \(v) is not supported"
    case .wrongParty(let e, let f): return "key is for party \(f), this is party \(e)"
    case .wrongWidth(let e, let f): return "key is for \(f)-bit inputs, expected \(e)"
    }
  }
}

// VeilMPC owns the engines and the recipes (DESIGN.md §4, §9): the gate back-end protocol a
// recipe is written over (`GateBackend`), the recipe (`Recipe`: exact truncations and the
// shared layers, with SIGMA's lookup tables, PUMA's polynomials or SecFormer's Fourier series
// and Goldschmidt iterations per `RecipeParameters`), the engine that runs a model graph with
// it over any back end (`RecipeEngine`), and the fixed-point in-the-clear back end
// (`ClearBackend`) with its value-range statistics. The dealer and party back ends implement
// the same protocol, so they compute what the clear one does (bit for bit, except SecFormer's
// secure sine, which is within a documented bound).
import VeilModels

/// Errors of the engines and recipes. Each case names the gate (op site and gate label) or the
/// weight it concerns.
public enum MPCError: Error, Equatable, CustomStringConvertible {
  /// A weight does not fit the ring at the run's scale.
  case weightOutOfRange(weight: String, value: Double, format: String)
  /// The graph asked for a weight the back end does not hold.
  case unknownWeight(String)
  /// Operands of a gate disagree in ring width or scale, or a gate cannot take this format.
  case formatMismatch(GateSite, String)
  /// Operands of a gate have shapes it cannot take.
  case badShape(GateSite, [Int], String)
  /// Recipe or back-end parameters that cannot work together.
  case invalidParameters(String)
  /// The back end needs the token ids and the input hides them.
  case missingTokenIds(GateSite)
  /// A key record that does not fit the gate the graph is at (another gate, width or size).
  case keyMismatch(GateSite, String)
  /// A peer or the client sent something the protocol does not allow.
  case protocolViolation(String)

  public var description: String {
    switch self {
    case .weightOutOfRange(let weight, let value, let format):
      return "weight '\(weight)' has the value \(value), outside the range of \(format)"
    case .unknownWeight(let name): return "no weight named '\(name)'"
    case .formatMismatch(let site, let why): return "\(site): \(why)"
    case .badShape(let site, let shape, let why): return "\(site): shape \(shape): \(why)"
    case .invalidParameters(let why): return "invalid recipe parameters: \(why)"
    case .missingTokenIds(let site): return "\(site): this back end needs the token ids"
    case .keyMismatch(let site, let why): return "\(site): key refused: \(why)"
    case .protocolViolation(let why): return "protocol violation: \(why)"
    }
  }
}

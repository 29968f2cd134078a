// The control messages roles send each other (DESIGN §10), JSON-encoded, one per channel
// message; bulk data (weight shares, seeds, key segments, masked rows) travels as raw messages
// between them. A message that does not decode is a protocol violation naming the peer, never
// a crash; its size is bounded before it is parsed.
import Foundation
import VeilModels
import VeilNet

/// A run as P0 (the leader) orders it: what the dealer, P1 and the client must agree on.
public struct RunOrder: Codable, Sendable, Equatable {
  /// 32 hexadecimal digits, drawn by P0 from the system CSPRNG.
  public var runID: String
  public var setupID: String
  public var modelDigest: String
  public var tokens: Int
  public var validTokens: Int
  /// A generation run (a decoder's greedy tokens after a prompt of `tokens`), or nil for the
  /// model's single output.
  public var generation: GenerationPlan?
  /// true: the run hides its real length (`tokens` is the bucket, `validTokens` equals it, and
  /// the client's secret inputs say which rows are real). nil in older messages means false.
  public var hiddenLength: Bool?
  /// true: the run's keys were dealt ahead into the servers' pools (the dealer keeps only the
  /// client's stream); nil means false.
  public var pooled: Bool?

  public init(
    runID: String, setupID: String, modelDigest: String, tokens: Int, validTokens: Int,
    generation: GenerationPlan? = nil, hidesLength: Bool = false
  ) {
    self.runID = runID
    self.setupID = setupID
    self.modelDigest = modelDigest
    self.tokens = tokens
    self.validTokens = validTokens
    self.generation = generation
    hiddenLength = hidesLength ? true : nil
  }

  public var hidesLength: Bool { hiddenLength == true }

  /// The run's context under `manifest`, refusing an order of another setup or an impossible
  /// length.
  public func context(_ manifest: SetupManifest) async throws -> RunContext {
    guard setupID == manifest.setupID, modelDigest == hex(manifest.modelDigest) else {
      throw MPCError.protocolViolation(
        "the run is for setup \(setupID), this role holds \(manifest.setupID)")
    }
    guard let id = bytes(hex: runID), id.count == 16 else {
      throw MPCError.protocolViolation("run id '\(runID.prefix(40))' is not 32 hexadecimal digits")
    }
    guard (1...manifest.config.tokenLimit).contains(tokens), (1...tokens).contains(validTokens)
    else {
      throw MPCError.protocolViolation(
        "a run of \(tokens) tokens (\(validTokens) valid); the model takes 1…\(manifest.config.tokenLimit)"
      )
    }
    let model = try manifest.graph()
    if hidesLength {
      guard model.config.architecture == .bert, generation == nil, validTokens == tokens else {
        throw MPCError.protocolViolation(
          "only a BERT embedding run with every row public-valid can hide its length")
      }
    }
    if let generation {
      try generation.check(model, maximumNewTokens: Int.max)
      guard generation.promptTokens == tokens, validTokens == tokens else {
        throw MPCError.protocolViolation("a generation order of two prompt lengths")
      }
    }
    return try await RunContext.make(
      runID: id, manifest: manifest, model: model, tokens: tokens, valid: validTokens,
      generation: generation, hidesLength: hidesLength)
  }

  /// Walks this run's graph on a back end: the model's output revealed to the client, or a
  /// generation revealing each token.
  public func walk<Backend: GateBackend>(
    _ model: any TransformerGraph, _ parameters: RecipeParameters, _ backend: Backend
  ) async throws {
    try await ModelRun.walk(
      model, parameters, tokens: tokens, valid: validTokens, generation: generation,
      hidesLength: hidesLength, backend)
  }
}

/// What the client asks P0 for.
public struct EmbedRequest: Codable, Sendable, Equatable {
  public var tokens: Int
  public var validTokens: Int
  /// The setup the client expects (from P0's model card), or nil for whatever P0 serves.
  public var setupID: String?
  /// Greedy generation after a prompt of `tokens` (a decoder), or nil for the model's output.
  public var generation: GenerationPlan?
  /// true: `tokens` is a bucket and the real length stays the client's (nil means false).
  public var hiddenLength: Bool?

  public init(
    tokens: Int, validTokens: Int, setupID: String? = nil, generation: GenerationPlan? = nil,
    hidesLength: Bool = false
  ) {
    self.tokens = tokens
    self.validTokens = validTokens
    self.setupID = setupID
    self.generation = generation
    hiddenLength = hidesLength ? true : nil
  }

  public var hidesLength: Bool { hiddenLength == true }
}

/// P0 → P1 and each server → dealer: a pooled run to deal ahead, the sender's pool key
/// (X25519, hexadecimal) to seal its stream to, and the run ids P0's pool holds (the rest of
/// P1's pool and of the dealer's client streams is stale).
public struct PoolFill: Codable, Sendable, Equatable {
  public var order: RunOrder
  public var recipientKey: String
  public var keep: [String]

  public init(order: RunOrder, recipientKey: String, keep: [String]) {
    self.order = order
    self.recipientKey = recipientKey
    self.keep = keep
  }
}

/// The public model a server serves: its manifest and the names and sizes of its public files
/// (config and tokenizer), which follow as raw messages in this order.
public struct ModelCard: Codable, Sendable, Equatable {
  public var manifest: SetupManifest
  public var files: [String]

  public init(manifest: SetupManifest, files: [String]) {
    self.manifest = manifest
    self.files = files
  }
}

public enum RoleMessage: Codable, Sendable, Equatable {
  /// Owner → dealer, owner → P_b: a new setup.
  case setup(SetupManifest)
  /// P_b → owner: it can take the setup (sent before the dealer draws anything).
  case ready
  /// P_b → dealer: its mask seeds t_b of a setup (a raw message of 16 bytes per chunk follows).
  case setupSeeds(setupID: String, party: Int)
  /// P_b → owner, dealer → owner: the setup is stored (the servers add H(Ŵ)).
  case setupDone(maskedDigest: String)
  /// Client → server: the public model card.
  case modelCardRequest
  case modelCard(ModelCard)
  /// Client → P0.
  case embed(EmbedRequest)
  /// P0 → P1, and every recipient → dealer: the run they take part in.
  case run(RunOrder)
  /// P0 → client: the run accepted.
  case accepted(RunOrder)
  /// Client → P1: joins the run its handshake names.
  case join(RunOrder)
  /// The server runs as many requests as it may: try again later.
  case busy(String)
  /// The request or run failed; the message says why (never a secret).
  case failure(String)
  /// P0 → dealer: which pooled shapes to keep for a setup (and the run ids P0's pool holds).
  case poolPlanRequest(setupID: String, keep: [String])
  /// Dealer → P0: the operator's pool targets that the setup's model can run.
  case poolPlan([PoolTarget])
  /// P0 → P1, P0 → dealer, P1 → dealer: deal a pooled run ahead.
  case poolFill(PoolFill)
  /// P1 → P0: P1 stored its stream of the pooled run.
  case poolStored(runID: String)
}

/// The largest control message a role parses.
let maximumControlBytes = 1 << 20

extension Channel {
  /// Sends a control message.
  public func send(_ message: RoleMessage) async throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    try await send(Array(try encoder.encode(message)))
  }

  /// The next message, which must be a control message.
  public func receiveMessage() async throws -> RoleMessage {
    let bytes = try await receive()
    guard bytes.count <= maximumControlBytes else {
      throw MPCError.protocolViolation(
        "\(peerDescription) sent \(bytes.count) bytes where a control message belongs")
    }
    do {
      return try JSONDecoder().decode(RoleMessage.self, from: Data(bytes))
    } catch {
      throw MPCError.protocolViolation(
        "\(peerDescription) sent a message that is not a Veil control message")
    }
  }

  /// The next control message, turning a peer's `failure` or `busy` into an error.
  public func receiveReply() async throws -> RoleMessage {
    let message = try await receiveMessage()
    switch message {
    case .failure(let reason): throw RoleError.peerFailed(peer: peerDescription, reason: reason)
    case .busy(let reason): throw RoleError.busy(peer: peerDescription, reason: reason)
    default: return message
    }
  }
}

/// Errors between roles.
public enum RoleError: Error, Equatable, CustomStringConvertible {
  /// The peer reported a failure.
  case peerFailed(peer: String, reason: String)
  /// The peer is at its bound of concurrent requests.
  case busy(peer: String, reason: String)
  /// A role's stored state cannot be used.
  case state(String)
  /// A peer sent a message the protocol does not expect here.
  case unexpected(peer: String, message: String)

  public var description: String {
    switch self {
    case .peerFailed(let peer, let reason): "\(peer) reports: \(reason)"
    case .busy(let peer, let reason): "\(peer) is busy: \(reason)"
    case .state(let reason): reason
    case .unexpected(let peer, let message): "\(peer) sent \(message) out of turn"
    }
  }
}

extension RoleMessage {
  /// The reason in `bytes` if they are a peer's `failure` message, else nil: a role that aborts
  /// a run says why on every channel of it, also where raw data (a key stream, shares) was
  /// flowing. Only consulted where such data did not parse: key material that happened to be
  /// a JSON failure message would have to match ~90 bits of fixed text.
  public static func failureReason(in bytes: [UInt8]) -> String? {
    guard bytes.count <= maximumControlBytes, bytes.first == UInt8(ascii: "{"),
      case .failure(let reason)? = try? JSONDecoder().decode(RoleMessage.self, from: Data(bytes))
    else { return nil }
    return reason
  }

  /// The message's kind, for errors and logs (never its content).
  public var kind: String {
    switch self {
    case .setup: "setup"
    case .ready: "ready"
    case .setupSeeds: "setup-seeds"
    case .setupDone: "setup-done"
    case .modelCardRequest: "model-card-request"
    case .modelCard: "model-card"
    case .embed: "embed"
    case .run: "run"
    case .accepted: "accepted"
    case .join: "join"
    case .busy: "busy"
    case .failure: "failure"
    case .poolPlanRequest: "pool-plan-request"
    case .poolPlan: "pool-plan"
    case .poolFill: "pool-fill"
    case .poolStored: "pool-stored"
    }
  }
}

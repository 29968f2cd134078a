// `veil gateway`: an OpenAI-compatible HTTP endpoint (Hummingbird 2 on swift-nio) in front of a
// secure embedder. Each request's texts are tokenized here and each runs as the client role of
// a fresh secure run, so the text never leaves this machine in the clear. Endpoints:
// POST /v1/embeddings, GET /v1/models, GET /healthz. Every failure is OpenAI's error object
// with a fitting status (400 bad input, 404 unknown model or path, 413 too long, 503 a server
// or the dealer unreachable or busy); the gateway itself stays up.
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import VeilMPC
import VeilModels
import VeilNet

public struct GatewayConfiguration: Sendable {
  public var host = "127.0.0.1"
  public var port = 8080
  /// The id clients name in `model` and `GET /v1/models` lists.
  public var modelName: String
  /// Truncate texts longer than the model's limit (else 413).
  public var allowTruncation = true
  /// Inputs per request (OpenAI's limit).
  public var maximumInputs = 2048
  /// The largest request body read.
  public var maximumBodyBytes = 8 << 20

  public init(modelName: String) { self.modelName = modelName }
}

public final class Gateway: Sendable {
  let embedder: any SecureEmbedder
  let configuration: GatewayConfiguration
  let logger: Logger
  let metrics = ServiceMetrics(role: "gateway")
  let started = Int(Date().timeIntervalSince1970)

  public init(embedder: any SecureEmbedder, configuration: GatewayConfiguration, logger: Logger) {
    self.embedder = embedder
    self.configuration = configuration
    self.logger = logger
  }

  /// Serves until SIGTERM or SIGINT (Hummingbird's service group), calling `onListening` with
  /// the bound port once the socket is open.
  public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
    let app = Application(
      router: router(),
      configuration: .init(
        address: .hostname(configuration.host, port: configuration.port), serverName: "veil"),
      onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
      logger: logger)
    try await app.runService()
  }

  func router() -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: OpenAIErrors(logger: logger))
    router.get("/healthz") { _, _ in
      try Self.json(["status": "ok"])
    }
    router.get("/v1/models") { _, _ in
      try Self.json(
        ModelList(data: [
          .init(id: self.configuration.modelName, created: self.started, ownedBy: "veil")
        ]))
    }
    router.post("/v1/embeddings") { request, context in
      do {
        let response = try await self.embeddings(request, context: context)
        self.metrics.requests.increment()
        return response
      } catch {
        self.metrics.failures.increment()
        throw error
      }
    }
    return router
  }

  func embeddings(_ request: Request, context: BasicRequestContext) async throws -> Response {
    let body: ByteBuffer
    do {
      body = try await request.body.collect(upTo: configuration.maximumBodyBytes)
    } catch {
      throw APIError(
        status: 413,
        error: .init(
          message: "the request body is larger than \(configuration.maximumBodyBytes) bytes",
          type: "invalid_request_error"))
    }
    let parsed: EmbeddingsRequest
    do {
      parsed = try JSONDecoder().decode(EmbeddingsRequest.self, from: Data(buffer: body))
    } catch let DecodingError.dataCorrupted(detail) {
      throw APIError.invalid("malformed request: \(detail.debugDescription)")
    } catch DecodingError.keyNotFound(let key, _) {
      throw APIError.invalid(
        "missing required parameter '\(key.stringValue)'", param: key.stringValue)
    } catch DecodingError.typeMismatch(_, let detail) {
      let field = detail.codingPath.map(\.stringValue).joined(separator: ".")
      throw APIError.invalid("parameter '\(field)' has the wrong type", param: field)
    } catch {
      throw APIError.invalid("the body is not a JSON embeddings request")
    }
    guard parsed.model == configuration.modelName else {
      throw APIError.notFound(
        "the model '\(parsed.model.prefix(100))' does not exist; this gateway serves '\(configuration.modelName)'",
        code: "model_not_found")
    }
    let base64: Bool
    switch parsed.encodingFormat ?? "float" {
    case "float": base64 = false
    case "base64": base64 = true
    default:
      throw APIError.invalid(
        "encoding_format must be 'float' or 'base64'", param: "encoding_format")
    }
    let model: PublicModel
    do { model = try await embedder.publicModel() } catch { throw Self.unavailable(error) }
    if let dimensions = parsed.dimensions, dimensions != model.config.hiddenSize {
      throw APIError.invalid(
        "this model's embeddings have \(model.config.hiddenSize) dimensions; it cannot shorten them",
        param: "dimensions")
    }
    let inputs = try tokenize(parsed.input, model: model)
    var logger = context.logger
    logger[metadataKey: "inputs"] = "\(inputs.count)"
    let clock = ContinuousClock()
    let start = clock.now
    var items: [EmbeddingsResponse.Item] = []
    for (index, ids) in inputs.enumerated() {
      let vector: [Double]
      do { vector = try await embedder.embed(ids: ids) } catch { throw Self.unavailable(error) }
      items.append(.init(index: index, embedding: EmbeddingVector(vector, base64: base64)))
    }
    let tokens = inputs.reduce(0) { $0 + $1.count }
    logger.info(
      "embeddings: \(tokens) tokens in \(String(format: "%.3f", (clock.now - start).seconds)) s")
    return try Self.json(
      EmbeddingsResponse(
        data: items, model: configuration.modelName,
        usage: .init(promptTokens: tokens, totalTokens: tokens)))
  }

  /// Each input's token ids with [CLS] and [SEP], checked against the model.
  func tokenize(_ input: EmbeddingsRequest.Input, model: PublicModel) throws -> [[Int]] {
    let count: Int
    switch input {
    case .texts(let texts): count = texts.count
    case .tokens(let lists): count = lists.count
    }
    guard count > 0 else { throw APIError.invalid("input must not be empty", param: "input") }
    guard count <= configuration.maximumInputs else {
      throw APIError.invalid(
        "input has \(count) items; at most \(configuration.maximumInputs) per request",
        param: "input")
    }
    let limit = model.config.tokenLimit
    switch input {
    case .texts(let texts):
      return try texts.enumerated().map { index, text in
        do {
          return try SentenceEmbedder.tokenize(
            text, config: model.config, tokenizer: model.tokenizer,
            allowTruncation: configuration.allowTruncation
          ).ids
        } catch TextError.empty {
          throw APIError.invalid("input \(index) is empty", param: "input")
        } catch TextError.tooLong(let tokens, let limit) {
          throw APIError.tooLong(
            "input \(index) has \(tokens) tokens, more than the model's \(limit); this gateway does not truncate"
          )
        }
      }
    case .tokens(let lists):
      return try lists.enumerated().map { index, ids in
        guard !ids.isEmpty else {
          throw APIError.invalid("input \(index) is empty", param: "input")
        }
        guard ids.allSatisfy({ (0..<model.config.vocabularySize).contains($0) }) else {
          throw APIError.invalid(
            "input \(index) holds token ids outside this model's vocabulary (0..<\(model.config.vocabularySize))",
            param: "input")
        }
        guard ids.count <= limit else {
          throw APIError.tooLong(
            "input \(index) has \(ids.count) tokens, more than the model's \(limit)")
        }
        return ids
      }
    }
  }

  /// A failed secure run as the client sees it: the deployment is unreachable or busy (503).
  static func unavailable(_ error: any Error) -> APIError {
    if case RoleError.busy(let peer, _) = error {
      return .unavailable("\(peer) is busy; try again shortly", code: "server_busy")
    }
    return .unavailable("the secure run failed: \(error)", code: "deployment_unavailable")
  }

  static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    let data = try encoder.encode(value)
    return Response(
      status: status, headers: [.contentType: "application/json"],
      body: .init(byteBuffer: ByteBuffer(bytes: data)))
  }
}

/// Turns every error into OpenAI's error object: `APIError`s as they are, Hummingbird's HTTP
/// errors (unknown path, wrong method) with their status, anything else as a 500.
struct OpenAIErrors: RouterMiddleware {
  typealias Context = BasicRequestContext
  let logger: Logger

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    do {
      return try await next(request, context)
    } catch let error as APIError {
      context.logger.notice(
        "\(request.method) \(request.uri.path): \(error.status) \(error.error.code ?? error.error.type)"
      )
      return try response(error)
    } catch let error as HTTPError {
      let apiError = APIError(
        status: Int(error.status.code),
        error: .init(
          message: error.body
            ?? "\(request.method) \(request.uri.path): \(error.status.reasonPhrase)",
          type: "invalid_request_error",
          code: error.status == .notFound ? "not_found" : nil))
      return try response(apiError)
    } catch {
      context.logger.error("\(request.method) \(request.uri.path): \(error)")
      return try response(.internalError("internal error: \(error)"))
    }
  }

  func response(_ error: APIError) throws -> Response {
    var response = try Gateway.json(error, status: HTTPResponse.Status(code: error.status))
    if error.status == 503 { response.headers[.retryAfter] = "1" }
    return response
  }
}

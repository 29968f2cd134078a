// `veil gateway`: an OpenAI-compatible HTTP endpoint (Hummingbird 2 on swift-nio) in front of a
// secure embedder or generator. Each request's texts are tokenized here and each runs as the
// client role of a fresh secure run, so the text never leaves this machine in the clear.
// Endpoints: POST /v1/embeddings (BERT), POST /v1/completions and /v1/chat/completions (a
// decoder; streamed as server-sent events with "stream": true), GET /v1/models, GET /healthz.
// Every failure is OpenAI's error object with a fitting status (400 bad input, 404 unknown
// model or path, 413 too long, 503 a server or the dealer unreachable or busy); the gateway
// itself stays up.
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
  /// Hide each input's length: pad it to the next multiple of this many tokens (nil: no).
  public var padTo: Int?
  /// Inputs per request (OpenAI's limit).
  public var maximumInputs = 2048
  /// The largest request body read.
  public var maximumBodyBytes = 8 << 20

  public init(modelName: String) { self.modelName = modelName }
}

public final class Gateway: Sendable {
  let embedder: (any SecureEmbedder)?
  let generator: (any SecureGenerator)?
  let configuration: GatewayConfiguration
  let logger: Logger
  let metrics = ServiceMetrics(role: "gateway")
  let started = Int(Date().timeIntervalSince1970)

  /// A gateway for an embedder, a generator, or (a deployment whose model is not known yet)
  /// both: a request for the kind the model is not gets a 400 saying which it is.
  public init(
    embedder: (any SecureEmbedder)?, generator: (any SecureGenerator)? = nil,
    configuration: GatewayConfiguration, logger: Logger
  ) {
    self.embedder = embedder
    self.generator = generator
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
      try await self.counted { try await self.embeddings(request, context: context) }
    }
    router.post("/v1/completions") { request, context in
      try await self.counted { try await self.completions(request, chat: false, context: context) }
    }
    router.post("/v1/chat/completions") { request, context in
      try await self.counted { try await self.completions(request, chat: true, context: context) }
    }
    return router
  }

  private func counted(_ body: () async throws -> Response) async throws -> Response {
    do {
      let response = try await body()
      metrics.requests.increment()
      return response
    } catch {
      metrics.failures.increment()
      throw error
    }
  }

  /// The request body, decoded as `T`; malformed JSON, a missing or mistyped field is a 400
  /// naming it, an oversize body a 413.
  func decode<T: Decodable>(_ type: T.Type, _ request: Request, what: String) async throws -> T {
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
    do {
      return try JSONDecoder().decode(T.self, from: Data(buffer: body))
    } catch let DecodingError.dataCorrupted(detail) {
      throw APIError.invalid("malformed request: \(detail.debugDescription)")
    } catch DecodingError.keyNotFound(let key, _) {
      throw APIError.invalid(
        "missing required parameter '\(key.stringValue)'", param: key.stringValue)
    } catch DecodingError.typeMismatch(_, let detail) {
      let field = detail.codingPath.map(\.stringValue).joined(separator: ".")
      throw APIError.invalid("parameter '\(field)' has the wrong type", param: field)
    } catch {
      throw APIError.invalid("the body is not a JSON \(what) request")
    }
  }

  func checkModel(_ name: String) throws {
    guard name == configuration.modelName else {
      throw APIError.notFound(
        "the model '\(name.prefix(100))' does not exist; this gateway serves '\(configuration.modelName)'",
        code: "model_not_found")
    }
  }

  func embeddings(_ request: Request, context: BasicRequestContext) async throws -> Response {
    let parsed = try await decode(EmbeddingsRequest.self, request, what: "embeddings")
    try checkModel(parsed.model)
    guard let embedder else {
      throw APIError.invalid(
        "this gateway's model is a decoder: use /v1/completions or /v1/chat/completions")
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
    guard model.config.architecture == .bert else {
      throw APIError.invalid("this gateway's model is a decoder: use /v1/completions")
    }
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
      do {
        vector = try await embedder.embed(ids: ids, padTo: configuration.padTo)
      } catch { throw Self.unavailable(error) }
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

  /// A completion or chat completion: the prompt (or the conversation in the model's chat
  /// template) tokenized here, `max_tokens` (default 16) greedy tokens generated on secret
  /// shares, the reply cut at the end-of-text token. With "stream": true each token goes out as
  /// a server-sent event the moment the client role unmasks it, and [DONE] as soon as the
  /// reply ends; the secure run still produces every token (its length is all the servers
  /// learn), so the request's slot is held until then.
  func completions(_ request: Request, chat: Bool, context: BasicRequestContext) async throws
    -> Response
  {
    var prompt = ""
    var messages: [ChatCompletionsRequest.Message] = []
    let options: DecodingOptions
    if chat {
      let parsed = try await decode(ChatCompletionsRequest.self, request, what: "chat completions")
      (messages, options) = (parsed.messages, parsed.options)
      guard !messages.isEmpty else {
        throw APIError.invalid("messages must not be empty", param: "messages")
      }
    } else {
      let parsed = try await decode(CompletionsRequest.self, request, what: "completions")
      (prompt, options) = (parsed.prompt, parsed.options)
    }
    try checkModel(options.model)
    guard let generator else {
      throw APIError.invalid("this gateway's model makes embeddings: use /v1/embeddings")
    }
    if let t = options.temperature, t != 0 {
      throw APIError.invalid(
        "Veil decodes greedily on secret shares: temperature must be 0 or left out",
        param: "temperature")
    }
    if let p = options.topP, p != 1 {
      throw APIError.invalid("top_p must be 1 or left out (greedy decoding)", param: "top_p")
    }
    if let n = options.n, n != 1 { throw APIError.invalid("n must be 1", param: "n") }
    let newTokens = options.maxCompletionTokens ?? options.maxTokens ?? 16
    guard newTokens >= 1 else {
      throw APIError.invalid("max_tokens must be at least 1", param: "max_tokens")
    }
    let decoder: PublicDecoder
    do { decoder = try await generator.publicDecoder() } catch { throw Self.unavailable(error) }
    let ids: [Int]
    if chat {
      guard let template = decoder.text.chat else {
        throw APIError.invalid(
          "this model has no chat template Veil renders (ChatML): use /v1/completions")
      }
      ids = decoder.text.tokenizer.encode(
        template.prompt(messages: messages.map { ($0.role, $0.content) }))
    } else {
      ids = try decoder.text.promptIds(prompt, chat: false)
    }
    guard !ids.isEmpty else { throw APIError.invalid("the prompt is empty", param: "prompt") }
    let limit = decoder.config.maxPositions
    guard ids.count + newTokens - 1 <= limit else {
      throw APIError.tooLong(
        "the prompt's \(ids.count) tokens and max_tokens \(newTokens) exceed the model's \(limit) positions"
      )
    }
    let reply = Reply(
      id: (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased(), chat: chat,
      model: configuration.modelName, created: Int(Date().timeIntervalSince1970),
      promptTokens: ids.count, text: decoder.text)
    var logger = context.logger
    logger[metadataKey: "prompt_tokens"] = "\(ids.count)"
    logger[metadataKey: "max_tokens"] = "\(newTokens)"
    guard options.stream == true else {
      let clock = ContinuousClock()
      let start = clock.now
      let tokens: [Int]
      do {
        tokens = try await generator.generate(ids: ids, newTokens: newTokens) { _ in }
      } catch { throw Self.unavailable(error) }
      logger.info(
        "completion: \(tokens.count) tokens in \(String(format: "%.3f", (clock.now - start).seconds)) s"
      )
      return try Self.json(reply.whole(tokens))
    }
    let (events, sink) = AsyncStream<ByteBuffer>.makeStream()
    let run = Task {
      let stream = ReplyStream(reply: reply, sink: sink)
      stream.start()
      do {
        let tokens = try await generator.generate(ids: ids, newTokens: newTokens) { token in
          stream.add(token)
        }
        stream.finish()
        logger.info("streamed completion: \(tokens.count) tokens")
      } catch {
        stream.fail(Self.unavailable(error))
        logger.notice("streamed completion failed: \(error)")
      }
    }
    return Response(
      status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
      body: ResponseBody { writer in
        for await event in events { try await writer.write(event) }
        try await writer.finish(nil)
        // The run goes on to its last token even after [DONE] (see above).
        _ = await run.result
      })
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

// `veil gateway`: the client role behind an OpenAI-compatible HTTP endpoint (VeilService's
// Gateway), either against a deployment (--remote) or with every role in this process
// (--local --model DIR).
import ArgumentParser
import Foundation
import VeilMPC
import VeilModels
import VeilService

struct GatewayCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gateway",
    abstract: "Serve OpenAI-compatible embeddings and completions over HTTP, on secret shares.",
    discussion: """
      Runs the client role for every request: texts are tokenized and masked on this machine, \
      so they never reach a server in the clear. With --remote it is a client of a deployment \
      (P0, P1, the dealer, with the client certificate of --certs); with --local --model DIR \
      every role runs in this process (for trying it out). Endpoints: POST /v1/embeddings \
      for a BERT model (OpenAI's request and response, encoding_format float or base64); POST \
      /v1/completions and /v1/chat/completions for a decoder (greedy: temperature 0; \
      max_tokens, default 16; "stream": true sends server-sent events as tokens are unmasked; \
      chat uses the model's ChatML template); GET /v1/models, GET /healthz. Errors are OpenAI \
      error objects: 400 malformed or empty input, 404 unknown model, 413 too long (with \
      --no-truncate for embeddings), 503 a server or the dealer unreachable or busy. \
      It binds to loopback unless --listen says otherwise. The first stdout line is \
      'listening HOST:PORT'. SIGTERM or SIGINT stops it after the running requests.
      """)

  @Option(help: "Address to listen at (port 0: any free port).") var listen = "127.0.0.1:8080"
  @Option(help: "A deployment's P0 and P1 addresses, HOST:PORT,HOST:PORT.") var remote: String?
  @Option(help: "The dealer's address (with --remote).") var dealer: String?
  @Option(help: "The client's state folder (its ledger of used key streams), with --remote.")
  var state: String?
  @Flag(help: "Run every role in this process (needs --model).") var local = false
  @Option(help: "Model folder, with --local.") var model: String?
  @Option(
    help: "The model id clients name (default: the model folder's name, or 'veil-embedding').")
  var modelName: String?
  @Flag(help: "Refuse texts longer than the model's limit (413) instead of truncating them.")
  var noTruncate = false
  @Option(
    help: ArgumentHelp(
      "Hide each embedding input's length from the servers: pad it to the next multiple of N tokens.",
      valueName: "N"))
  var padTo: Int?
  @Option(help: "Serve Prometheus counters at http://HOST:PORT/metrics.") var metrics: String?
  @OptionGroup var recipe: RecipeOptions
  @OptionGroup var network: NetworkOptions

  func validate() throws {
    guard local != (remote != nil) else {
      throw ValidationError(
        "give either --remote HOST:PORT,HOST:PORT (with --dealer) or --local --model DIR")
    }
    if local && model == nil { throw ValidationError("--local needs --model DIR") }
    if let padTo, padTo < 1 { throw ValidationError("--pad-to must be at least 1") }
    if remote != nil && dealer == nil { throw ValidationError("--remote needs --dealer HOST:PORT") }
  }

  func run() async throws {
    let logger = network.logger("veil.gateway")
    let address = try endpoint(listen, "--listen")
    var embedder: (any SecureEmbedder)? = nil
    var generator: (any SecureGenerator)? = nil
    var name = modelName ?? "veil-embedding"
    if local, let model {
      SecureModel.tuneAllocator()
      printError("masking the weights once (setup)…")
      let config = try ModelConfig(modelDirectory: model)
      let parameters = try recipe.parameters(for: config)
      if config.architecture == .bert {
        embedder = try await LocalDeployment(modelDirectory: model, parameters: parameters)
      } else {
        generator = try await LocalGenerator(modelDirectory: model, parameters: parameters)
      }
      name = modelName ?? URL(fileURLWithPath: model).standardizedFileURL.lastPathComponent
    } else {
      // The deployment's model (an encoder or a decoder) is known from P0's card at the first
      // request; the client serves whichever endpoints fit it.
      let client = try network.client(remote: remote ?? "", dealer: dealer, state: state)
      (embedder, generator) = (client, client)
    }
    if !["127.0.0.1", "::1", "localhost"].contains(address.host) {
      logger.warning(
        "listening beyond loopback at \(address.host): anyone who reaches it can use the deployment"
      )
    }
    let served = name
    var configuration = GatewayConfiguration(modelName: served)
    configuration.host = address.host
    configuration.port = address.port
    configuration.allowTruncation = !noTruncate
    configuration.padTo = padTo
    let metricsEndpoint = try await startMetrics(metrics, logger: logger)
    defer { Task { await metricsEndpoint?.close() } }
    let gateway = Gateway(
      embedder: embedder, generator: generator, configuration: configuration, logger: logger)
    try await gateway.run { port in
      FileHandle.standardOutput.write(Data("listening \(address.host):\(port)\n".utf8))
      logger.info("gateway for model '\(served)' at http://\(address.host):\(port)/v1")
    }
  }
}

// The deployment commands (DESIGN §10): `veil dealer` and `veil serve` (long-running), and the
// owner's one-shot `veil share-model`. Each role holds only its own secrets under its --state
// folder and talks to the others over mutual TLS with the certificates of `veil certs`.
import ArgumentParser
import Foundation
import Logging
import VeilMPC
import VeilModels
import VeilNet
import VeilService

/// Options every networked role takes.
struct NetworkOptions: ParsableArguments {
  @Option(help: "Folder with ca.pem and this role's certificate and key (from `veil certs`).")
  var certs: String?
  @Flag(
    help: "Plain TCP instead of mutual TLS: neither encrypted nor authenticated (experiments only)."
  )
  var insecure = false
  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel = "info"

  @Option(
    help:
      "Seconds to wait for a silent peer (default: 30; 600 for a client, which waits a whole run).")
  var idleTimeout: Int?

  func deployment(_ role: PartyRole) throws -> Deployment {
    var deployment: Deployment
    do { deployment = try Deployment(role: role, certificates: certs, insecure: insecure) } catch {
      throw CommandError("\(error)")
    }
    if let idleTimeout {
      guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be positive") }
      deployment.limits.idleTimeout = .seconds(idleTimeout)
    }
    return deployment
  }

  /// The client of the deployment at `remote` (P0,P1) and `dealer`, its ledger of used key
  /// streams under `state` (default ${VEIL_CACHE:-~/.cache/veil}/client).
  func client(remote: String, dealer: String?, state: String?) throws -> VeilClient {
    let cache =
      ProcessInfo.processInfo.environment["VEIL_CACHE"] ?? (NSHomeDirectory() + "/.cache/veil")
    return try VeilClient(
      servers: try endpoints(remote, "--remote", count: 2),
      dealer: try endpoint(dealer ?? "", "--dealer"), deployment: try deployment(.client),
      ledgerDirectory: (state ?? cache + "/client") + "/ledger")
  }

  func logger(_ label: String) -> Logger {
    let level = Logger.Level(rawValue: logLevel) ?? .info
    LoggingSystem.bootstrap { name in
      var handler = StreamLogHandler.standardError(label: name)
      handler.logLevel = level
      return handler
    }
    return Logger(label: label)
  }
}

func endpoint(_ text: String, _ option: String) throws -> Endpoint {
  guard let parsed = Endpoint(text) else {
    throw ValidationError("\(option) '\(text)' is not HOST:PORT")
  }
  return parsed
}

func endpoints(_ text: String, _ option: String, count: Int) throws -> [Endpoint] {
  let parts = try text.split(separator: ",").map { try endpoint(String($0), option) }
  guard parts.count == count else {
    throw ValidationError("\(option) needs \(count) addresses HOST:PORT,HOST:PORT")
  }
  return parts
}

/// Announces the bound address (the first stdout line; port 0 picks a free one), then runs the
/// service until SIGTERM or SIGINT has stopped it gracefully.
func runUntilSignalled(
  _ listener: TCPListener, metrics: MetricsEndpoint?, logger: Logger,
  serve: @escaping @Sendable (TCPListener) async -> Void
) async throws {
  FileHandle.standardOutput.write(Data("listening \(listener.host):\(listener.port)\n".utf8))
  try await ListeningService.runUntilSignalled(
    ListeningService(listener: listener, metrics: metrics, logger: logger, serve: serve))
}

struct DealerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dealer",
    abstract: "Run the dealer: mask seeds at setup, fresh single-use key streams per request.",
    discussion: """
      Long-running. For each setup (from `veil share-model`) it draws the weight-mask seeds and \
      stores them sealed (AES-256-GCM) under --state-key-file or $VEIL_DEALER_STATE_KEY (64 \
      hexadecimal digits; `veil certs` writes one as dealer-state.key); it never stores them in \
      the clear. For each request P0 orders, it waits for P1 and the client to reach it with the \
      same order and streams one key stream to each, every run id dealt once. It accepts p0, p1, \
      the client and the owner, each checked by its certificate's role. The first stdout line \
      is 'listening HOST:PORT'. SIGTERM or SIGINT stops it after the running requests.

      Keys ahead of time: with --pool, P0 (started with --key-pool, as P1) asks the dealer \
      while idle to deal runs of the named shapes ahead. Each server's stream is sealed (HPKE: \
      X25519, HKDF-SHA256, AES-128-GCM) to that server's pool key and stored in its pool; the \
      client's stream stays here, sealed, until that run's client takes it. A request of a \
      pooled shape then runs with no key transfer; other requests, and requests when the pool \
      is empty, get keys on demand.
      """)

  @Option(help: "Folder for the sealed setups and the ledger of dealt runs.") var state: String
  @Option(help: "Address to listen at (port 0: any free port).") var listen = "127.0.0.1:7400"
  @Option(help: "File holding the 32-byte state key as 64 hexadecimal digits.")
  var stateKeyFile: String?
  @Option(help: "Serve Prometheus counters at http://HOST:PORT/metrics.") var metrics: String?
  @Option(
    help: ArgumentHelp(
      "Shapes to deal ahead into the servers' key pools, SHAPE:COUNT,…",
      discussion:
        "SHAPE is 128 (a run of exactly 128 tokens), 16h (a --pad-to bucket of 16, its length hidden) or 32+8 (8 tokens generated after a 32-token prompt). Example: --pool 16h:4,128h:2."
    ))
  var pool: String?
  @OptionGroup var network: NetworkOptions

  /// The pool targets (a malformed --pool is an input error: one line, before anything starts).
  func poolTargets() throws -> [PoolTarget] {
    guard let pool else { return [] }
    do { return try PoolTarget.parse(pool) } catch { throw CommandError("--pool: \(error)") }
  }

  func stateKey() throws -> [UInt8] {
    var text = ProcessInfo.processInfo.environment["VEIL_DEALER_STATE_KEY"]
    if let stateKeyFile {
      guard let data = FileManager.default.contents(atPath: stateKeyFile) else {
        throw CommandError("cannot read --state-key-file \(stateKeyFile)")
      }
      text = String(decoding: data, as: UTF8.self)
    }
    guard let text else {
      throw CommandError(
        "give the dealer's state key: --state-key-file FILE or VEIL_DEALER_STATE_KEY (64 hex digits)"
      )
    }
    guard let key = bytes(hex: text.trimmingCharacters(in: .whitespacesAndNewlines)),
      key.count == 32
    else { throw CommandError("the dealer's state key must be 64 hexadecimal digits") }
    return key
  }

  func run() async throws {
    SecureModel.tuneAllocator()
    let logger = network.logger("veil.dealer")
    let address = try endpoint(listen, "--listen")
    let targets = try poolTargets()
    let store: DealerStateStore
    do { store = try DealerStateStore(directory: state, key: try stateKey()) } catch let error
      as CommandError
    {
      throw error
    } catch { throw CommandError("\(error)") }
    let deployment = try network.deployment(.dealer)
    let endpoint = try await startMetrics(metrics, logger: logger)
    let service = DealerService(
      deployment: deployment, store: store, poolTargets: targets,
      logger: logger)
    let listener = try await deployment.listen(at: address, accepting: [.p0, .p1, .client, .owner])
    logger.info("dealer listening at \(listener.host):\(listener.port)")
    try await runUntilSignalled(listener, metrics: endpoint, logger: logger) {
      await service.serve($0)
    }
  }
}

/// Starts the metrics endpoint (before any service counts anything).
func startMetrics(_ address: String?, logger: Logger) async throws -> MetricsEndpoint? {
  guard let address else { return nil }
  let parsed = try endpoint(address, "--metrics")
  let started = try await MetricsEndpoint.start(host: parsed.host, port: parsed.port)
  logger.info("metrics at http://\(parsed.host):\(started.port)/metrics")
  return started
}

struct ServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Run server P0 or P1.",
    discussion: """
      Long-running. Holds one setup under --state (Ŵ, its mask seeds, the public model files, a \
      durable ledger of consumed run ids). P0 leads every request: it draws the run id and \
      orders P1 (--peer) and the dealer (--dealer); P1 follows. At most --max-concurrent \
      requests run at once (default: one per 4 GiB of memory, at most 8); beyond that a \
      request is answered 'busy'. A failed request ends in every role and leaves the server up. \
      The first stdout line is 'listening HOST:PORT'. SIGTERM or SIGINT stops it after the \
      running requests.

      With --key-pool, the server keeps key streams dealt ahead (see `veil dealer --pool`) in \
      DIR, sealed to its own pool key (DIR/pool.key), at most --key-pool-gb on disk. P0 fills \
      the pools while idle; a request of a pooled shape takes a stream and runs without \
      waiting for keys. A pooled stream is single-use like any other: it is moved aside when \
      taken, deleted after its run, and one whose run id the ledger holds is dropped at start.
      """)

  @Option(help: "0 or 1.") var party: Int
  @Option(help: "Folder for this server's setup and ledger.") var state: String
  @Option(help: "Address to listen at (port 0: any free port).") var listen: String?
  @Option(help: "P1's address (P0 only).") var peer: String?
  @Option(help: "The dealer's address.") var dealer: String
  @Option(help: "Requests run at once.") var maxConcurrent: Int?
  @Option(help: "Serve Prometheus counters at http://HOST:PORT/metrics.") var metrics: String?
  @Option(help: "Folder for key streams dealt ahead (both servers need one to use pools).")
  var keyPool: String?
  @Option(help: "The most the key pool may hold on disk, in GB (10^9 bytes).")
  var keyPoolGb: Double = 20
  @OptionGroup var network: NetworkOptions

  func validate() throws {
    guard party == 0 || party == 1 else { throw ValidationError("--party must be 0 or 1") }
    guard party == 1 || peer != nil else { throw ValidationError("P0 needs --peer (P1's address)") }
    if let maxConcurrent, maxConcurrent < 1 {
      throw ValidationError("--max-concurrent must be ≥ 1")
    }
  }

  func run() async throws {
    SecureModel.tuneAllocator()
    guard keyPoolGb > 0, keyPoolGb < 1e6 else {
      throw CommandError("--key-pool-gb must be a positive number of GB (below 10^6)")
    }
    let role: PartyRole = party == 0 ? .p0 : .p1
    var logger = network.logger("veil.serve")
    logger[metadataKey: "party"] = "p\(party)"
    let deployment = try network.deployment(role)
    let metricsEndpoint = try await startMetrics(metrics, logger: logger)
    let service: ServerService
    do {
      service = try ServerService(
        party: party, deployment: deployment, stateDirectory: state,
        peer: try peer.map { try endpoint($0, "--peer") }, dealer: try endpoint(dealer, "--dealer"),
        maxConcurrent: maxConcurrent,
        keyPool: keyPool.map { ($0, Int(keyPoolGb * 1e9)) }, logger: logger)
    } catch let error as ValidationError { throw error } catch { throw CommandError("\(error)") }
    let address = try endpoint(
      listen ?? (party == 0 ? "127.0.0.1:7410" : "127.0.0.1:7411"), "--listen")
    let accepted: Set<PartyRole> = party == 0 ? [.client, .owner] : [.client, .owner, .p0]
    let listener = try await deployment.listen(at: address, accepting: accepted)
    logger.info(
      "p\(party) listening at \(listener.host):\(listener.port), \(service.setupID.map { "setup \($0.prefix(12))" } ?? "no setup yet"), up to \(service.concurrencyLimit) requests at once"
    )
    try await runUntilSignalled(listener, metrics: metricsEndpoint, logger: logger) {
      await service.serve($0)
    }
  }
}

struct ShareModel: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "share-model",
    abstract: "The owner's one-time setup: share a model's weights with a deployment.",
    discussion: """
      Reads the model folder, encodes the weights at the recipe's ring, and sends P0 its \
      additive shares chunk by chunk and P1 one seed per chunk; the dealer draws the masks r_W \
      and gives each server its seeds, and P0 and P1 open Ŵ = W + r_W to each other and check \
      they agree (H(Ŵ) is printed). The public config and tokenizer files go to both servers, \
      which hand them to clients. A server that already holds a setup refuses another.
      """)

  @Option(help: "Model folder (config.json, model.safetensors, tokenizer files).") var model: String
  @Option(help: "P0's and P1's addresses, HOST:PORT,HOST:PORT.") var servers: String
  @Option(help: "The dealer's address.") var dealer: String
  @OptionGroup var recipe: RecipeOptions
  @OptionGroup var network: NetworkOptions

  func run() async throws {
    let deployment = try network.deployment(.owner)
    let (setupID, digest) = try await ModelOwnerUpload.share(
      modelDirectory: model,
      parameters: try recipe.parameters(for: try ModelConfig(modelDirectory: model)),
      servers: try endpoints(servers, "--servers", count: 2),
      dealer: try endpoint(dealer, "--dealer"), deployment: deployment)
    print("setup \(setupID) stored by the dealer, P0 and P1; H(Ŵ) = \(hex(digest))")
  }
}

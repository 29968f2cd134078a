// A long-running role as a swift-service-lifecycle `Service`: `veil dealer` and `veil serve`
// run one in a `ServiceGroup` that turns SIGTERM and SIGINT into a graceful shutdown (stop
// accepting, let the running requests end — each consumed run id is already fsynced in the
// ledger — then close the metrics endpoint), and exits 0.
import Foundation
import Logging
import ServiceLifecycle
import VeilNet

/// A listener and the session loop that serves it.
public struct ListeningService: Service {
  let listener: TCPListener
  let serve: @Sendable (TCPListener) async -> Void
  let metrics: MetricsEndpoint?
  let logger: Logger

  public init(
    listener: TCPListener, metrics: MetricsEndpoint?, logger: Logger,
    serve: @escaping @Sendable (TCPListener) async -> Void
  ) {
    self.listener = listener
    self.serve = serve
    self.metrics = metrics
    self.logger = logger
  }

  public func run() async throws {
    let listener = listener
    let logger = logger
    await withGracefulShutdownHandler {
      await serve(listener)
    } onGracefulShutdown: {
      logger.notice("shutting down: no new requests; finishing the running ones")
      Task { await listener.close() }
    }
    await metrics?.close()
    logger.notice("stopped")
  }

  /// Runs `service` until SIGTERM or SIGINT and its graceful end.
  public static func runUntilSignalled(_ service: ListeningService) async throws {
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
        gracefulShutdownSignals: [.sigterm, .sigint], logger: service.logger))
    try await group.run()
  }
}

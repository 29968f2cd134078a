import CoreMetrics
// The services' counters (issue 17: requests, failures, online seconds, bytes, rounds, key
// bytes) through swift-metrics, and a minimal HTTP/1 endpoint that serves them in Prometheus'
// text format at GET /metrics (swift-prometheus renders them). Counters carry the role, never a
// value of a run.
import Foundation
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// What a role counts.
struct ServiceMetrics: Sendable {
  let requests: CoreMetrics.Counter
  let failures: CoreMetrics.Counter
  let onlineSeconds: FloatingPointCounter
  let onlineBytes: CoreMetrics.Counter
  let rounds: CoreMetrics.Counter
  let keyBytes: CoreMetrics.Counter
  /// Requests that ran on pooled keys, and streams stored into the pool.
  let pooledRequests: CoreMetrics.Counter
  let poolStreams: CoreMetrics.Counter

  init(role: String) {
    let dimensions = [("role", role)]
    requests = CoreMetrics.Counter(label: "veil_requests_total", dimensions: dimensions)
    failures = CoreMetrics.Counter(label: "veil_failures_total", dimensions: dimensions)
    onlineSeconds = CoreMetrics.FloatingPointCounter(
      label: "veil_online_seconds_total", dimensions: dimensions)
    onlineBytes = CoreMetrics.Counter(label: "veil_online_bytes_total", dimensions: dimensions)
    rounds = CoreMetrics.Counter(label: "veil_rounds_total", dimensions: dimensions)
    keyBytes = CoreMetrics.Counter(label: "veil_key_bytes_total", dimensions: dimensions)
    pooledRequests = CoreMetrics.Counter(
      label: "veil_pooled_requests_total", dimensions: dimensions)
    poolStreams = CoreMetrics.Counter(
      label: "veil_pool_streams_stored_total", dimensions: dimensions)
  }
}

/// Serves a Prometheus registry at http://HOST:PORT/metrics.
public final class MetricsEndpoint: Sendable {
  public let port: Int
  private let channel: any NIOCore.Channel

  /// Bootstraps swift-metrics with a Prometheus registry (once per process) and listens.
  public static func start(host: String, port: Int) async throws -> MetricsEndpoint {
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          try channel.pipeline.syncOperations.addHandler(MetricsHandler(registry: registry))
        }
      }
    let channel = try await bootstrap.bind(host: host, port: port).get()
    return MetricsEndpoint(channel: channel)
  }

  private init(channel: any NIOCore.Channel) {
    self.channel = channel
    port = channel.localAddress?.port ?? 0
  }

  public func close() async { try? await channel.close() }
}

/// GET /metrics: the registry's text; anything else: 404.
private final class MetricsHandler: ChannelInboundHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart
  private let registry: PrometheusCollectorRegistry
  private var path = ""

  init(registry: PrometheusCollectorRegistry) { self.registry = registry }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head): path = head.uri
    case .body: break
    case .end:
      let found = path == "/metrics"
      let body = found ? registry.emitToBuffer() : Array("not found\n".utf8)
      var headers = HTTPHeaders()
      headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4" : "text/plain")
      headers.add(name: "Content-Length", value: "\(body.count)")
      headers.add(name: "Connection", value: "close")
      let head = HTTPResponseHead(
        version: .http1_1, status: found ? .ok : .notFound, headers: headers)
      context.write(wrapOutboundOut(.head(head)), promise: nil)
      context.write(
        wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))),
        promise: nil)
      context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
        context.close(promise: nil)
      }
    }
  }
}

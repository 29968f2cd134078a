// `veil bench net`: loopback throughput and 1-byte round-trip latency of each VeilNet transport
// (in-memory, TCP, TCP+TLS) beside raw POSIX sockets measured in the same run, and the rate of
// ring-element bit packing.
import ArgumentParser
import Foundation
import VeilNet
import VeilRing

#if canImport(Glibc)
  import Glibc
#endif

struct NetBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "net",
    abstract: "Loopback throughput and round-trip latency of Veil's channels beside raw sockets.",
    discussion: """
      Throughput: one party sends --messages messages of --megabytes MB, the other receives \
      them; GB/s of payload (1 GB = 10^9 bytes), best of --repeats. Latency: 1-byte ping-pong, \
      --round-trips times; median and 99th percentile. Raw sockets: a loopback TCP pair with \
      TCP_NODELAY and one blocking thread per end. Both ends run in this process, each on its \
      own thread (event loop), as two parties on two cores would.
      """)

  @Option(help: "Message size in MB for throughput.") var megabytes = 64
  @Option(help: "Messages per throughput run.") var messages = 8
  @Option(help: "Throughput runs per transport (best is reported).") var repeats = 5
  @Option(help: "Round trips for the latency measurement.") var roundTrips = 5000
  @Option(help: "Message bytes per frame, in KiB (VeilNet's chunk size).")
  var chunkKib = ChannelLimits().chunkBytes >> 10
  @Option(
    help: """
      Comma-separated transports: \(Self.transportNames.keys.sorted().joined(separator: ", ")). \
      The -el variants run each party's task on its connection's event-loop thread.
      """)
  var transports = "raw,in-memory,tcp,tls,tcp-el,tls-el"
  @Option(name: .long, help: "Write JSON to FILE ('-' for stdout).") var json: String?

  /// Command-line name → the row's name in the report.
  static let transportNames = [
    "raw": "raw-posix-tcp", "in-memory": "in-memory", "tcp": "tcp", "tls": "tcp+tls",
    "tcp-el": "tcp, tasks on event loop", "tls-el": "tcp+tls, tasks on event loop",
  ]

  func validate() throws {
    guard (1...1024).contains(megabytes) else {
      throw ValidationError("--megabytes \(megabytes) is outside 1…1024")
    }
    guard (1...4095).contains(chunkKib) else {
      throw ValidationError("--chunk-kib \(chunkKib) is outside 1…4095")
    }
    guard messages >= 1, repeats >= 1, roundTrips >= 10 else {
      throw ValidationError("--messages and --repeats must be ≥ 1 and --round-trips ≥ 10")
    }
    for name in transportList where Self.transportNames[name] == nil {
      throw ValidationError(
        "unknown transport '\(name)' (\(Self.transportNames.keys.sorted().joined(separator: ", ")))"
      )
    }
  }

  var transportList: [String] {
    transports.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
  }

  func run() async throws {
    let size = megabytes * 1_000_000
    var payload = [UInt8](repeating: 0, count: size)
    var generator = SystemRandomNumberGenerator()
    payload.withUnsafeMutableBytes { raw in
      for offset in stride(from: 0, to: size - 7, by: 8) {
        raw.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
      }
    }
    var rows: [NetRow] = []
    var raw: Measurement?
    for name in transportList {
      let result =
        name == "raw"
        ? try await measureRaw(payload: payload) : try await measureChannel(name, payload: payload)
      if name == "raw" { raw = result }
      let transport = Self.transportNames[name]!
      var row = NetRow(
        transport: transport, throughputGbPerS: result.throughput / 1e9,
        exchangeGbPerSEachWay: result.exchange / 1e9, rttMedianUs: result.rttMedian * 1e6,
        rttP99Us: result.rttP99 * 1e6, messageBytes: size, messages: messages,
        roundTrips: roundTrips)
      if let raw, name != "raw" {
        row.throughputVsRaw = result.throughput / raw.throughput
        row.exchangeVsRaw = result.exchange / raw.exchange
      }
      rows.append(row)
      printError(
        transport.padding(toLength: 30, withPad: " ", startingAt: 0)
          + String(
            format: "%7.2f GB/s, exchange %6.2f GB/s each way, rtt median %6.1f µs, p99 %6.1f µs",
            result.throughput / 1e9, result.exchange / 1e9, result.rttMedian * 1e6,
            result.rttP99 * 1e6))
    }
    let packing = measurePacking()
    if let json {
      try Report(
        schema: "veil.bench.net/1", ringBits: 64,
        params: NetParams(
          megabytes: megabytes, messages: messages, repeats: repeats, roundTrips: roundTrips,
          chunkBytes: chunkKib << 10),
        results: NetResults(net: rows, bitPacking: packing)
      ).write(to: json)
    }
  }

  /// One transport's figures: bytes per second one way and each way of a full-duplex
  /// exchange, and round-trip seconds.
  struct Measurement {
    var throughput: Double
    var exchange: Double
    var rttMedian: Double
    var rttP99: Double

    init(throughput: Double, exchange: Double, roundTrips: [Double]) {
      self.throughput = throughput
      self.exchange = exchange
      let sorted = roundTrips.sorted()
      rttMedian = percentile(sorted, 0.5)
      rttP99 = percentile(sorted, 0.99)
    }
  }

  // MARK: VeilNet channels

  func measureChannel(_ name: String, payload: [UInt8]) async throws -> Measurement {
    var limits = ChannelLimits()
    limits.maximumMessageBytes = max(limits.maximumMessageBytes, payload.count)
    limits.chunkBytes = chunkKib << 10
    let (a, b): (any Channel, any Channel)
    var loopback: LoopbackPair?
    switch name {
    case "in-memory":
      (a, b) = InMemoryChannel.makePair(.p0, .p1, limits: limits)
    default:
      let pair = try await LoopbackPair.connect(tls: name.hasPrefix("tls"), limits: limits)
      (a, b) = (pair.p0, pair.p1)
      loopback = pair
    }
    let count = messages
    let size = payload.count
    let pinned = name.hasSuffix("-el")
    var best = 0.0
    for _ in 0..<repeats {
      let start = DispatchTime.now().uptimeNanoseconds
      async let sent: Void = onParty(a, pinned: pinned) {
        for _ in 0..<count { try await a.send(payload) }
      }
      try await onParty(b, pinned: pinned) {
        for _ in 0..<count {
          let received = try await b.receive()
          guard received.count == size else {
            throw ValidationError("\(name): a message arrived with \(received.count) bytes")
          }
        }
      }
      try await sent
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      best = max(best, Double(size * count) / seconds)
    }
    // Full duplex: both send a message at once, as two parties opening shares do.
    var bestExchange = 0.0
    for _ in 0..<repeats {
      let start = DispatchTime.now().uptimeNanoseconds
      async let other: Void = onParty(b, pinned: pinned) {
        for _ in 0..<count { _ = try await b.exchange(payload) }
      }
      try await onParty(a, pinned: pinned) {
        for _ in 0..<count { _ = try await a.exchange(payload) }
      }
      try await other
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      bestExchange = max(bestExchange, Double(size * count) / seconds)
    }
    let trips = roundTrips
    async let echo: Void = onParty(b, pinned: pinned) {
      for _ in 0..<trips { try await b.send(try await b.receive()) }
    }
    let rtt: [Double] = try await onParty(a, pinned: pinned) {
      var samples: [Double] = []
      samples.reserveCapacity(trips)
      let ping: [UInt8] = [1]
      for _ in 0..<trips {
        let start = DispatchTime.now().uptimeNanoseconds
        try await a.send(ping)
        _ = try await a.receive()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
      }
      return samples
    }
    try await echo
    await a.close()
    await b.close()
    await loopback?.shutdown()
    return Measurement(throughput: best, exchange: bestExchange, roundTrips: rtt)
  }

  // MARK: Raw POSIX sockets

  func measureRaw(payload: [UInt8]) async throws -> Measurement {
    let (sender, receiver) = try loopbackPair()
    defer {
      close(sender)
      close(receiver)
    }
    let total = payload.count * messages
    let bytes = payload
    var best = 0.0
    for _ in 0..<repeats {
      let start = DispatchTime.now().uptimeNanoseconds
      let count = messages
      try await onThreads([
        { for _ in 0..<count { try bytes.withUnsafeBytes { try writeAll(sender, $0) } } },
        { try readMessages(receiver, size: bytes.count, count: count) },
      ])
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      best = max(best, Double(total) / seconds)
    }
    // Full duplex: each end writes and reads at once (a writer and a reader thread per end).
    var bestExchange = 0.0
    for _ in 0..<repeats {
      let start = DispatchTime.now().uptimeNanoseconds
      let count = messages
      try await onThreads([
        { for _ in 0..<count { try bytes.withUnsafeBytes { try writeAll(sender, $0) } } },
        { for _ in 0..<count { try bytes.withUnsafeBytes { try writeAll(receiver, $0) } } },
        { try readMessages(receiver, size: bytes.count, count: count) },
        { try readMessages(sender, size: bytes.count, count: count) },
      ])
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      bestExchange = max(bestExchange, Double(total) / seconds)
    }
    let trips = roundTrips
    let samples = RawSamples()
    try await onThreads([
      {
        var byte: UInt8 = 1
        var times: [Double] = []
        times.reserveCapacity(trips)
        for _ in 0..<trips {
          let start = DispatchTime.now().uptimeNanoseconds
          try withUnsafeMutableBytes(of: &byte) { try writeAll(sender, UnsafeRawBufferPointer($0)) }
          try withUnsafeMutableBytes(of: &byte) { try readAll(sender, $0) }
          times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        samples.set(times)
      },
      {
        var byte: UInt8 = 0
        for _ in 0..<trips {
          try withUnsafeMutableBytes(of: &byte) { try readAll(receiver, $0) }
          try withUnsafeMutableBytes(of: &byte) {
            try writeAll(receiver, UnsafeRawBufferPointer($0))
          }
        }
      },
    ])
    return Measurement(throughput: best, exchange: bestExchange, roundTrips: samples.get())
  }

  // MARK: Bit packing

  func measurePacking() -> [PackingRow] {
    var rows: [PackingRow] = []
    let count = 1 << 20
    var generator = SystemRandomNumberGenerator()
    for bits in [37, 50, 64] {
      let mask: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
      let values = (0..<count).map { _ in generator.next() & mask }
      var packed = [UInt8](
        repeating: 0, count: BitPacking.packedByteCount(count: count, bits: bits))
      var unpacked = [UInt64](repeating: 0, count: count)
      let pack = bestTime(minimumSeconds: 0.2) {
        values.withUnsafeBufferPointer { v in
          packed.withUnsafeMutableBytes { BitPacking.pack(v, bits: bits, into: $0) }
        }
      }
      let unpack = bestTime(minimumSeconds: 0.2) {
        packed.withUnsafeBytes { p in
          unpacked.withUnsafeMutableBufferPointer { BitPacking.unpack(p, bits: bits, into: $0) }
        }
      }
      precondition(unpacked == values, "bit packing round trip failed at \(bits) bits")
      // Rates in GB/s of 64-bit values (the in-memory form).
      let packRate = Double(count * 8) / pack.best / 1e9
      let unpackRate = Double(count * 8) / unpack.best / 1e9
      printError(
        String(
          format: "bit packing %2d bits: pack %5.2f GB/s, unpack %5.2f GB/s (of UInt64 values)",
          bits, packRate, unpackRate))
      rows.append(
        PackingRow(bits: bits, values: count, packGbPerS: packRate, unpackGbPerS: unpackRate))
    }
    return rows
  }
}

/// Runs a party's loop, on its connection's event-loop thread when `pinned` (see
/// `EventLoopTaskExecutor`), else on the cooperative pool.
private func onParty<T: Sendable>(
  _ channel: any VeilNet.Channel, pinned: Bool, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
  if pinned, let tcp = channel as? TCPChannel {
    return try await withTaskExecutorPreference(tcp.taskExecutor) { try await body() }
  }
  return try await body()
}

private func percentile(_ sorted: [Double], _ p: Double) -> Double {
  guard !sorted.isEmpty else { return .nan }
  return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

/// Latency samples handed from a raw-socket thread back to the task.
private final class RawSamples: @unchecked Sendable {
  private let lock = NSLock()
  private var samples: [Double] = []
  func set(_ values: [Double]) { lock.withLock { samples = values } }
  func get() -> [Double] { lock.withLock { samples } }
}

private struct SocketError: Error, CustomStringConvertible {
  let description: String
  init(_ call: String) {
    description = "raw socket benchmark: \(call) failed: \(String(cString: strerror(errno)))"
  }
}

/// Reads `count` messages of `size` bytes into one reused buffer.
private func readMessages(_ descriptor: Int32, size: Int, count: Int) throws {
  var buffer = [UInt8](repeating: 0, count: size)
  for _ in 0..<count { try buffer.withUnsafeMutableBytes { try readAll(descriptor, $0) } }
}

/// Runs blocking bodies on threads of their own (never on the cooperative pool, which they
/// would block) and waits for all.
private func onThreads(_ bodies: [@Sendable () throws -> Void]) async throws {
  let state = RawJoin(count: bodies.count)
  try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
    state.continuation = continuation
    for body in bodies {
      Thread.detachNewThread {
        var failure: Error?
        do { try body() } catch { failure = error }
        state.finish(failure)
      }
    }
  }
}

private final class RawJoin: @unchecked Sendable {
  private let lock = NSLock()
  var continuation: CheckedContinuation<Void, Error>?
  private var remaining: Int
  init(count: Int) { remaining = count }
  private var failure: Error?
  func finish(_ error: Error?) {
    let done: CheckedContinuation<Void, Error>? = lock.withLock {
      if let error, failure == nil { failure = error }
      remaining -= 1
      return remaining == 0 ? continuation : nil
    }
    guard let done else { return }
    if let failure { done.resume(throwing: failure) } else { done.resume() }
  }
}

/// A connected loopback TCP pair with TCP_NODELAY on both ends.
private func loopbackPair() throws -> (Int32, Int32) {
  let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard listener >= 0 else { throw SocketError("socket") }
  defer { close(listener) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  address.sin_port = 0
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  try withUnsafeMutablePointer(to: &address) { pointer in
    try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
      guard bind(listener, raw, length) == 0 else { throw SocketError("bind") }
      guard listen(listener, 1) == 0 else { throw SocketError("listen") }
      guard getsockname(listener, raw, &length) == 0 else { throw SocketError("getsockname") }
    }
  }
  let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard client >= 0 else { throw SocketError("socket") }
  try withUnsafePointer(to: &address) { pointer in
    try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
      guard connect(client, raw, length) == 0 else { throw SocketError("connect") }
    }
  }
  let server = accept(listener, nil, nil)
  guard server >= 0 else { throw SocketError("accept") }
  var one: Int32 = 1
  for descriptor in [client, server] {
    setsockopt(
      descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
  }
  return (client, server)
}

private func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) throws {
  var offset = 0
  while offset < bytes.count {
    let written = send(
      descriptor, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
    if written < 0 {
      if errno == EINTR { continue }
      throw SocketError("send")
    }
    offset += written
  }
}

private func readAll(_ descriptor: Int32, _ bytes: UnsafeMutableRawBufferPointer) throws {
  var offset = 0
  while offset < bytes.count {
    let count = recv(descriptor, bytes.baseAddress! + offset, bytes.count - offset, 0)
    if count < 0 {
      if errno == EINTR { continue }
      throw SocketError("recv")
    }
    guard count > 0 else { throw SocketError("recv (peer closed)") }
    offset += count
  }
}

struct NetParams: Codable {
  var megabytes: Int
  var messages: Int
  var repeats: Int
  var roundTrips: Int
  var chunkBytes: Int
}

struct NetResults: Codable {
  var net: [NetRow]
  var bitPacking: [PackingRow]
}

/// One transport's throughput and round trips (and against raw sockets, measured alike).
struct NetRow: Codable {
  var transport: String
  var throughputGbPerS: Double
  var exchangeGbPerSEachWay: Double
  var rttMedianUs: Double
  var rttP99Us: Double
  var messageBytes: Int
  var messages: Int
  var roundTrips: Int
  var throughputVsRaw: Double?
  var exchangeVsRaw: Double?
}

/// Packing ring elements into `bits` bits per value and back.
struct PackingRow: Codable {
  var bits: Int
  var values: Int
  var packGbPerS: Double
  var unpackGbPerS: Double
}

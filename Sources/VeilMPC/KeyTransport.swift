// How per-inference keys travel from the dealer to P0, P1 and the client with bounded memory
// (issue 6, DESIGN §7, §9 "Memory"): the dealer appends each gate's records to one key stream
// per recipient (VeilFSS `KeyStreamWriter`), seals them into MAC'd segments and pushes the
// segments into a bounded pipe; a recipient feeds the segments to its `KeyStreamReader`, which
// verifies each before handing out its records in op order. When a pipe holds `capacity`
// bytes the dealer waits until its reader has drained it, and memory stays at about
// `capacity` + one segment per stream however large the model. With `alternating` streams the
// dealer also waits, after each shipment, until those readers have used every key and wait for
// more: keygen and online work then alternate instead of sharing the cores (DESIGN §9
// "Counting").
import Crypto
import Foundation
import VeilFSS
import VeilNet

/// Where the dealer pushes one recipient's sealed segments: a pipe in this process, or a
/// channel to another (whose send waits while the peer's buffer is full: the same bound).
protocol KeySegmentSink: Sendable {
  func push(_ chunk: [UInt8]) async throws
  /// No more chunks will come.
  func close() async throws
  /// Returns once the recipient has used every chunk and waits for more (a no-op across
  /// processes, where keygen and online work overlap).
  func waitUntilConsumerIdle() async
}

/// Where a recipient pops its segments from; nil at the end of the stream.
protocol KeySegmentSource: Sendable {
  func pop() async throws -> [UInt8]?
  /// Why a chunk that is not stream data came, if the source can tell (a dealer's failure).
  func explain(_ chunk: [UInt8]) -> (any Error)?
}

extension KeySegmentSource {
  func explain(_ chunk: [UInt8]) -> (any Error)? { nil }
}

/// A key stream over a channel: one message per chunk, an empty message for the end.
struct ChannelKeySink: KeySegmentSink {
  let channel: any Channel
  func push(_ chunk: [UInt8]) async throws { try await channel.send(chunk) }
  func close() async throws { try await channel.send([]) }
  func waitUntilConsumerIdle() async {}
}

struct ChannelKeySource: KeySegmentSource {
  let channel: any Channel
  func pop() async throws -> [UInt8]? {
    let chunk = try await channel.receive()
    return chunk.isEmpty ? nil : chunk
  }

  /// The dealer's own word when it aborted the stream with a failure message.
  func explain(_ chunk: [UInt8]) -> (any Error)? {
    RoleMessage.failureReason(in: chunk).map {
      RoleError.peerFailed(peer: channel.peerDescription, reason: $0)
    }
  }
}

/// A bounded pipe of byte chunks with one producer and one consumer.
actor KeyPipe: KeySegmentSink, KeySegmentSource {
  let capacity: Int
  private var chunks: [[UInt8]] = []
  private var head = 0
  private var bytes = 0
  private var closed = false
  private var cancelled = false
  private var producer: CheckedContinuation<Void, Never>?
  private var consumer: CheckedContinuation<Void, Never>?
  private var idleWaiters: [CheckedContinuation<Void, Never>] = []
  /// The most bytes the pipe ever held.
  private(set) var peakBytes = 0

  init(capacity: Int) { self.capacity = capacity }

  /// Appends a chunk; first waits, if the pipe holds `capacity` bytes or more, until it is empty.
  func push(_ chunk: [UInt8]) async throws {
    if bytes >= capacity && !cancelled { await withCheckedContinuation { producer = $0 } }
    if cancelled { throw CancellationError() }
    chunks.append(chunk)
    bytes += chunk.count
    peakBytes = max(peakBytes, bytes)
    wakeConsumer()
  }

  /// The next chunk, waiting for one; nil once the producer closed the pipe and it is empty.
  func pop() async -> [UInt8]? {
    while head == chunks.count {
      if closed || cancelled { return nil }
      await withCheckedContinuation {
        consumer = $0
        wakeIdleWaiters()
      }
    }
    let chunk = chunks[head]
    chunks[head] = []
    head += 1
    if head == chunks.count {
      chunks.removeAll(keepingCapacity: true)
      head = 0
    }
    bytes -= chunk.count
    if bytes == 0, let waiting = producer {
      producer = nil
      waiting.resume()
    }
    return chunk
  }

  /// Returns once the pipe is empty and its consumer waits for more (or the pipe ended).
  func waitUntilConsumerIdle() async {
    if (head == chunks.count && consumer != nil) || closed || cancelled { return }
    await withCheckedContinuation { idleWaiters.append($0) }
  }

  private func wakeIdleWaiters() {
    let waiting = idleWaiters
    idleWaiters = []
    for w in waiting { w.resume() }
  }

  /// No more chunks will come.
  func close() {
    closed = true
    wakeConsumer()
    wakeIdleWaiters()
  }

  /// Abandons the pipe (a run failed): the producer's waits end with an error, the consumer's with nil.
  func cancel() {
    cancelled = true
    wakeConsumer()
    wakeIdleWaiters()
    if let waiting = producer {
      producer = nil
      waiting.resume()
    }
  }

  private func wakeConsumer() {
    if let waiting = consumer {
      consumer = nil
      waiting.resume()
    }
  }
}

/// The dealer's side of all streams of one run: P0's, P1's and the client's.
actor DealerKeyStreams {
  private var writers: [KeyStreamWriter]
  private let pipes: [any KeySegmentSink]
  private let segmentBytes: Int
  /// Streams whose reader must be idle before the dealer goes on (see `RunOptions.alternate`).
  private let alternating: [Int]
  /// Bytes shipped per stream (headers, segment framing and MACs included).
  private(set) var streamBytes: [Int]
  /// Time spent waiting for a recipient to drain its pipe (not key generation).
  private(set) var waitSeconds = 0.0
  private let clock = ContinuousClock()

  init(
    headers: [KeyStreamHeader], macKeys: [SymmetricKey], pipes: [any KeySegmentSink],
    segmentBytes: Int,
    alternating: [Int] = []
  ) {
    writers = zip(headers, macKeys).map { KeyStreamWriter(header: $0, macKey: $1) }
    self.pipes = pipes
    self.segmentBytes = segmentBytes
    self.alternating = alternating
    streamBytes = Array(repeating: 0, count: headers.count)
  }

  /// Appends records (stream index, op index, record). Once a stream has a segment's worth of
  /// records, every stream is sealed and shipped together: a recipient never waits for a record
  /// that sits unsealed at the dealer while the dealer waits for some pipe to drain.
  func append(_ records: [(stream: Int, op: Int, record: [UInt8])]) async throws {
    for r in records { writers[r.stream].append(opIndex: r.op, record: r.record) }
    if writers.contains(where: { $0.pendingBytes >= segmentBytes }) { try await ship(final: false) }
  }

  /// Seals and ships every stream's pending records; `final` ends the streams.
  func ship(final: Bool) async throws {
    for i in writers.indices where final || writers[i].pendingBytes > 0 {
      let segment = writers[i].seal(final: final)
      streamBytes[i] += segment.count
      let start = clock.now
      try await pipes[i].push(segment)
      waitSeconds += (clock.now - start).seconds
      if final { try await pipes[i].close() }
    }
    guard !final else { return }
    let start = clock.now
    for i in alternating { await pipes[i].waitUntilConsumerIdle() }
    waitSeconds += (clock.now - start).seconds
  }
}

/// A recipient's side of one stream: records in op order, verified segment by segment.
actor KeySource {
  private var reader: KeyStreamReader
  private let pipe: any KeySegmentSource
  private let runID: [UInt8]
  private let clock = ContinuousClock()
  /// Time spent waiting for the dealer (not online time).
  private(set) var waitSeconds: Double = 0

  init(
    pipe: any KeySegmentSource, expected: KeyStreamHeader, macKey: SymmetricKey, ledger: RunLedger
  ) {
    self.pipe = pipe
    runID = expected.runID
    reader = KeyStreamReader(expected: expected, macKey: macKey, ledger: ledger)
  }

  /// The record of op `opIndex`, waiting for the dealer while it has not arrived.
  func next(opIndex: Int) async throws -> ArraySlice<UInt8> {
    while true {
      if let record = try reader.next(opIndex: opIndex) { return record }
      try await pullChunk()
    }
  }

  /// Waits for the stream's header and first segment: once this returns, the run id is burnt
  /// in the ledger (DESIGN §7: before the party sends anything) and is this run's.
  func start() async throws {
    while !reader.hasPendingRecords && !reader.isFinished { try await pullChunk() }
  }

  /// Waits for the dealer's next chunk (timed as a wait) and feeds it to the reader; a stream
  /// that ends before its final segment is refused.
  private func pullChunk() async throws {
    let waited = clock.now
    let chunk = try await pipe.pop()
    waitSeconds += (clock.now - waited).seconds
    guard let chunk else {
      try reader.endOfInput()
      throw KeyStreamError.truncated
    }
    do { try reader.feed(chunk) } catch { throw pipe.explain(chunk) ?? error }
    try checkRunID()
  }

  /// The reader accepts any run id (and burns it); a recipient that was told the run's id
  /// refuses a stream of another run.
  private func checkRunID() throws {
    guard let header = reader.header, header.runID != runID else { return }
    throw KeyStreamError.mismatch(field: "run id (\(hex(header.runID)), not \(hex(runID)))")
  }

  /// Reads the stream to its end and fails if it holds records beyond op `afterOp` − 1.
  func finish(afterOp: Int) async throws {
    while !reader.isFinished, let chunk = try await pipe.pop() {
      do { try reader.feed(chunk) } catch { throw pipe.explain(chunk) ?? error }
      try checkRunID()
    }
    try reader.endOfInput()
    guard !reader.hasPendingRecords else {
      throw MPCError.protocolViolation(
        "the key stream holds records beyond the graph's \(afterOp) gates")
    }
  }
}

extension Duration {
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

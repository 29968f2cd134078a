// Shared helpers of the VeilNet tests: fast deterministic random bytes, a byte-exact compare
// that stays quick in debug builds, a test PKI, and connected pairs for each transport.
import Foundation
import Testing
import VeilTestSupport
@testable import VeilNet

/// `count` random bytes, filled a word at a time (64 MB in well under a second in debug).
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
  var generator = SplitMix64(seed: seed)
  return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
    let raw = UnsafeMutableRawBufferPointer(buffer)
    var offset = 0
    while offset + 8 <= count {
      raw.storeBytes(of: generator.next(), toByteOffset: offset, as: UInt64.self)
      offset += 8
    }
    while offset < count {
      raw[offset] = UInt8(truncatingIfNeeded: generator.next())
      offset += 1
    }
    initialized = count
  }
}

/// Byte equality by memcmp (Array's == walks elements, slow for 64 MB in debug).
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
  guard a.count == b.count else { return false }
  if a.isEmpty { return true }
  return a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
}

/// The error an operation threw, or nil.
func netError(_ body: () async throws -> Void) async -> NetError? {
  do {
    try await body()
    return nil
  } catch let error as NetError {
    return error
  } catch {
    Issue.record("not a NetError: \(error)")
    return nil
  }
}

/// One CA for the whole test run, and a second one that nobody trusts.
enum TestPKI {
  static let authority = try! VeilCertificateAuthority.generate(commonName: "Veil test CA")
  static let otherAuthority = try! VeilCertificateAuthority.generate(commonName: "Some other CA")
  static let identities: [PartyRole: TLSIdentity] = Dictionary(
    uniqueKeysWithValues: PartyRole.allCases.map { ($0, try! authority.issue(role: $0)) })
}

enum Transport: String, CaseIterable, CustomTestStringConvertible, Sendable {
  case inMemory = "in-memory"
  case tcp = "TCP"
  case tls = "TLS"
  var testDescription: String { rawValue }
}

/// Limits for tests: short idle timeout so that a bug shows as an error, not a hang.
func testLimits(idleSeconds: Int = 10) -> ChannelLimits {
  var limits = ChannelLimits()
  limits.idleTimeout = .seconds(idleSeconds)
  limits.maximumMessageBytes = 128 << 20
  return limits
}

func security(_ role: PartyRole, tls: Bool) -> TransportSecurity {
  tls ? .mutualTLS(TestPKI.identities[role]!) : .insecurePlainTCP
}

/// A connected (p0, p1) pair over `transport`; p0 listens, p1 connects.
func makePair(_ transport: Transport, limits: ChannelLimits = testLimits(), runID: RunID = RunID.random())
  async throws -> (any Channel, any Channel)
{
  switch transport {
  case .inMemory:
    let (a, b) = InMemoryChannel.makePair(.p0, .p1, limits: limits)
    return (a, b)
  case .tcp, .tls:
    let (server, client) = try await makeTCPPair(tls: transport == .tls, limits: limits, runID: runID)
    return (server, client)
  }
}

func makeTCPPair(tls: Bool, limits: ChannelLimits = testLimits(), runID: RunID = RunID.random())
  async throws -> (TCPChannel, TCPChannel)
{
  let serverConfiguration = SessionConfiguration(
    runID: runID, localRole: .p0, peerRole: .p1, limits: limits, connectTimeout: .seconds(10))
  let clientConfiguration = SessionConfiguration(
    runID: runID, localRole: .p1, peerRole: .p0, limits: limits, connectTimeout: .seconds(10))
  let listener = try await TCPListener.bind(
    host: "127.0.0.1", port: 0, configuration: serverConfiguration, security: security(.p0, tls: tls))
  async let accepted = listener.accept()
  let client = try await TCPChannel.connect(
    host: "127.0.0.1", port: listener.port, configuration: clientConfiguration, security: security(.p1, tls: tls))
  let server = try await accepted
  await listener.close()
  return (server, client)
}

/// Seconds since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
  let (s, atto) = (ContinuousClock.now - start).components
  return Double(s) + Double(atto) * 1e-18
}

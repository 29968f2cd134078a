// Mutual TLS 1.3 for sessions between parties: the identity a party presents, the NIOSSL
// contexts built from it, the check that the peer's certificate names the expected role, a
// first-byte check that turns a plain-TCP peer into a clear error, and readable TLS errors.
import NIOCore
import NIOSSL

/// What a party presents and trusts in TLS: the Veil CA certificate, its own certificate
/// (which names its role) and its private key, all PEM.
public struct TLSIdentity: Sendable {
  /// The CA certificate every peer's certificate must chain to.
  public let trustRootPEM: String
  /// This party's certificate.
  public let certificatePEM: String
  /// This party's private key.
  public let privateKeyPEM: String

  /// An identity from PEM text (as `VeilCertificateAuthority.issue(role:)` makes it).
  public init(trustRootPEM: String, certificatePEM: String, privateKeyPEM: String) {
    self.trustRootPEM = trustRootPEM
    self.certificatePEM = certificatePEM
    self.privateKeyPEM = privateKeyPEM
  }

  /// Reads the files `veil certs` wrote for `role` from `directory`.
  public init(directory: String, role: PartyRole) throws(NetError) {
    let base = directory.hasSuffix("/") ? directory : directory + "/"
    self.init(
      trustRootPEM: try CertificateFiles.read(base + CertificateFiles.caCertificate),
      certificatePEM: try CertificateFiles.read(base + CertificateFiles.certificate(role)),
      privateKeyPEM: try CertificateFiles.read(base + CertificateFiles.privateKey(role)))
  }

  /// The role this identity's certificate names, if any.
  public var role: String? { VeilCertificateAuthority.role(inCertificatePEM: certificatePEM) }

  /// A TLS 1.3 context that presents this identity, requires the peer's certificate and
  /// verifies it against the trust root. Host names are not checked — parties connect by
  /// address and the role in the certificate is checked after the handshake instead.
  func makeContext(server: Bool, localRole: PartyRole, shutdownTimeout: TimeAmount) throws(NetError) -> NIOSSLContext {
    guard let ownRole = role else {
      throw .invalidConfiguration("this end's certificate names no Veil role")
    }
    guard ownRole == localRole.name else {
      throw .invalidConfiguration("this end's certificate names role \(ownRole), but it runs as \(localRole)")
    }
    let trustRoot: NIOSSLCertificate
    let certificate: NIOSSLCertificate
    let privateKey: NIOSSLPrivateKey
    do {
      trustRoot = try NIOSSLCertificate(bytes: Array(trustRootPEM.utf8), format: .pem)
      certificate = try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem)
      privateKey = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
    } catch {
      throw .certificate(
        path: "TLS identity of \(localRole)", reason: "cannot load the PEM certificate or key: \(error)")
    }
    var configuration =
      server
      ? TLSConfiguration.makeServerConfiguration(
        certificateChain: [.certificate(certificate)], privateKey: .privateKey(privateKey))
      : TLSConfiguration.makeClientConfiguration()
    configuration.certificateChain = [.certificate(certificate)]
    configuration.privateKey = .privateKey(privateKey)
    configuration.trustRoots = .certificates([trustRoot])
    configuration.certificateVerification = .noHostnameVerification
    configuration.minimumTLSVersion = .tlsv13
    // Closing waits this long for the peer's close_notify; a failed session's peer may have
    // stopped reading, and waiting NIO's default 5 s helps nobody.
    configuration.shutdownTimeout = shutdownTimeout
    do {
      return try NIOSSLContext(configuration: configuration)
    } catch {
      throw .certificate(path: "TLS identity of \(localRole)", reason: "cannot build a TLS context: \(error)")
    }
  }
}

/// How a session is protected.
public enum TransportSecurity: Sendable {
  /// TLS 1.3 with mutual authentication under the Veil CA, and the peer's role checked.
  case mutualTLS(TLSIdentity)
  /// Plain TCP: neither encrypted nor authenticated. For tests and trusted loopback only;
  /// using it prints a warning on standard error.
  case insecurePlainTCP
}

/// Sits before the TLS server handler and looks at the first byte a client sends: a TLS
/// handshake record starts with 22, a Veil frame with 0x56. Without it a plain client would
/// only get BoringSSL's "wrong version number".
final class PlaintextDetector: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  private let peerRole: PartyRole
  private var decided = false

  init(peerRole: PartyRole) { self.peerRole = peerRole }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    if !decided {
      let buffer = unwrapInboundIn(data)
      guard let first = buffer.readableBytesView.first else { return }
      decided = true
      if first == FrameFormat.magic.0 {
        let peer = describePeer(peerRole, context.channel.remoteAddress)
        context.fireErrorCaught(NetError.peerNotUsingTLS(peer: peer))
        context.close(promise: nil)
        return
      }
    }
    context.fireChannelRead(data)
  }
}

/// "p1 at 127.0.0.1:40123".
func describePeer(_ role: PartyRole, _ address: SocketAddress?) -> String {
  guard let address else { return role.name }
  return "\(role) at \(describeAddress(address))"
}

func describeAddress(_ address: SocketAddress) -> String {
  guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
  if case .v6 = address { return "[\(ip)]:\(port)" }
  return "\(ip):\(port)"
}

/// A TLS error in words, with the likely cause first.
func describeTLSError(_ error: any Error) -> String {
  let raw = String(describing: error)
  let hints: [(String, String)] = [
    ("CERTIFICATE_VERIFY_FAILED", "the peer's certificate does not verify against this end's Veil CA"),
    ("UNKNOWN_CA", "the peer refused this end's certificate (it trusts another CA)"),
    ("BAD_CERTIFICATE", "the peer refused this end's certificate"),
    ("DECRYPT_ERROR", "the peer refused this end's certificate"),
    ("CERTIFICATE_REQUIRED", "the peer requires a client certificate"),
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "the peer presented no certificate"),
    ("WRONG_VERSION_NUMBER", "the peer does not speak TLS (is it running with --insecure?)"),
    ("UNSUPPORTED_PROTOCOL", "the peer does not offer TLS 1.3"),
    ("PROTOCOL_VERSION", "the peer does not offer TLS 1.3"),
  ]
  for (marker, hint) in hints where raw.contains(marker) { return "\(hint) (\(raw))" }
  return raw
}

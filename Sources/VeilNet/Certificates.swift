// The Veil certificate authority: a P-256 CA (swift-crypto keys, swift-certificates X.509) that
// issues each role a certificate naming the role, and the PEM files `veil certs` writes. The
// role sits in the subject alternative name as the URI urn:veil:role:<role> (and in the common
// name, for people); TLS checks the chain, and each session end then checks that the peer's
// certificate names the role it expects — a valid certificate of the dealer must not pass for P1.
import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A certificate authority for one Veil deployment.
public struct VeilCertificateAuthority: Sendable {
  /// The CA certificate (PEM): every party trusts it.
  public let certificatePEM: String
  /// The CA's private key (PKCS #8 PEM). Whoever holds it can mint any role.
  public let privateKeyPEM: String

  private let certificate: Certificate
  private let privateKey: P256.Signing.PrivateKey

  /// The URI prefix of the role in a certificate's subject alternative names.
  static let roleURIPrefix = "urn:veil:role:"

  /// A new CA with a fresh P-256 key.
  /// - Parameters:
  ///   - commonName: the CA's name.
  ///   - validityDays: days from now until the CA certificate expires.
  public static func generate(commonName: String = "Veil CA", validityDays: Int = 825) throws(NetError)
    -> VeilCertificateAuthority
  {
    let key = P256.Signing.PrivateKey()
    do {
      let name = try DistinguishedName { CommonName(commonName) }
      let signingKey = Certificate.PrivateKey(key)
      let now = Date()
      let extensions = try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        SubjectKeyIdentifier(hash: signingKey.publicKey)
      }
      let certificate = try Certificate(
        version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: signingKey.publicKey,
        notValidBefore: now.addingTimeInterval(-300),
        notValidAfter: now.addingTimeInterval(Double(validityDays) * 86_400),
        issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
        issuerPrivateKey: signingKey)
      return VeilCertificateAuthority(certificate: certificate, privateKey: key)
    } catch {
      throw .certificate(path: "CA", reason: "cannot make the CA certificate: \(error)")
    }
  }

  /// A CA read back from its PEM certificate and key.
  public init(certificatePEM: String, privateKeyPEM: String) throws(NetError) {
    do {
      let certificate = try Certificate(pemEncoded: certificatePEM)
      let key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
      guard certificate.publicKey == Certificate.PrivateKey(key).publicKey else {
        throw NetError.certificate(path: "CA", reason: "the CA key does not match the CA certificate")
      }
      self.init(certificate: certificate, privateKey: key)
    } catch let error as NetError {
      throw error
    } catch {
      throw .certificate(path: "CA", reason: "cannot read the CA certificate or key: \(error)")
    }
  }

  private init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) {
    self.certificate = certificate
    self.privateKey = privateKey
    // Serializing a certificate we just made or parsed cannot fail.
    self.certificatePEM = (try? certificate.serializeAsPEM().pemString) ?? ""
    self.privateKeyPEM = privateKey.pemRepresentation
  }

  /// Issues a certificate and key for `role`, usable as TLS server and client.
  /// - Parameters:
  ///   - role: the role the certificate names.
  ///   - validityDays: days from now until it expires.
  public func issue(role: PartyRole, validityDays: Int = 825) throws(NetError) -> TLSIdentity {
    let key = P256.Signing.PrivateKey()
    do {
      let subject = try DistinguishedName {
        OrganizationName("Veil")
        CommonName("veil \(role.name)")
      }
      let publicKey = Certificate.PrivateKey(key).publicKey
      let now = Date()
      let extensions = try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        Critical(KeyUsage(digitalSignature: true))
        try ExtendedKeyUsage([.serverAuth, .clientAuth])
        SubjectAlternativeNames([.uniformResourceIdentifier(Self.roleURIPrefix + role.name)])
        SubjectKeyIdentifier(hash: publicKey)
        AuthorityKeyIdentifier(keyIdentifier: (try? certificate.extensions.subjectKeyIdentifier)??.keyIdentifier)
      }
      let issued = try Certificate(
        version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
        notValidBefore: now.addingTimeInterval(-300),
        notValidAfter: now.addingTimeInterval(Double(validityDays) * 86_400),
        issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
        issuerPrivateKey: Certificate.PrivateKey(privateKey))
      return TLSIdentity(
        trustRootPEM: certificatePEM, certificatePEM: try issued.serializeAsPEM().pemString,
        privateKeyPEM: key.pemRepresentation)
    } catch {
      throw .certificate(path: role.name, reason: "cannot issue a certificate: \(error)")
    }
  }

  /// The role named by a DER certificate's subject alternative names, or nil if it names none.
  /// A certificate naming two roles names none of them.
  static func role(inCertificateDER der: [UInt8]) -> String? {
    guard let certificate = try? Certificate(derEncoded: der),
      let names = try? certificate.extensions.subjectAlternativeNames
    else { return nil }
    let roles = names.compactMap { name -> String? in
      guard case .uniformResourceIdentifier(let uri) = name, uri.hasPrefix(roleURIPrefix) else { return nil }
      return String(uri.dropFirst(roleURIPrefix.count))
    }
    return roles.count == 1 ? roles[0] : nil
  }

  /// The role named by a PEM certificate, or nil.
  static func role(inCertificatePEM pem: String) -> String? {
    guard let certificate = try? Certificate(pemEncoded: pem) else { return nil }
    var serializer = DER.Serializer()
    guard (try? serializer.serialize(certificate)) != nil else { return nil }
    return role(inCertificateDER: serializer.serializedBytes)
  }
}

/// The files `veil certs` writes, and where `TLSIdentity(directory:role:)` reads them.
public enum CertificateFiles {
  /// The CA certificate.
  public static let caCertificate = "ca.pem"
  /// The CA key; keep it offline once the roles have their certificates.
  public static let caPrivateKey = "ca-key.pem"
  /// A role's certificate.
  public static func certificate(_ role: PartyRole) -> String { "\(role.name).pem" }
  /// A role's private key.
  public static func privateKey(_ role: PartyRole) -> String { "\(role.name)-key.pem" }

  /// Makes a CA and a certificate + key per role in `directory` (created if missing, mode
  /// 0700). Private keys are written with mode 0600. Existing files are refused unless
  /// `overwrite`.
  /// - Returns: the paths written, the CA's first.
  @discardableResult
  public static func write(
    to directory: String, roles: [PartyRole], validityDays: Int = 825, overwrite: Bool = false
  ) throws(NetError) -> [String] {
    let url = URL(fileURLWithPath: directory)
    do {
      try FileManager.default.createDirectory(
        at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch {
      throw .certificate(path: directory, reason: "cannot create the folder: \(error.localizedDescription)")
    }
    var files: [(name: String, contents: String, secret: Bool)] = []
    let authority = try VeilCertificateAuthority.generate(validityDays: validityDays)
    files.append((caCertificate, authority.certificatePEM, false))
    files.append((caPrivateKey, authority.privateKeyPEM, true))
    for role in roles {
      let identity = try authority.issue(role: role, validityDays: validityDays)
      files.append((certificate(role), identity.certificatePEM, false))
      files.append((privateKey(role), identity.privateKeyPEM, true))
    }
    if !overwrite {
      for file in files where FileManager.default.fileExists(atPath: url.appendingPathComponent(file.name).path) {
        throw .certificate(
          path: url.appendingPathComponent(file.name).path, reason: "already exists (pass --force to replace)")
      }
    }
    var written: [String] = []
    for file in files {
      let path = url.appendingPathComponent(file.name).path
      try writeFile(path, contents: file.contents, mode: file.secret ? 0o600 : 0o644)
      written.append(path)
    }
    return written
  }

  /// Writes a file created with `mode` from the start (a key is never readable by others, not
  /// even for a moment), replacing an existing one.
  static func writeFile(_ path: String, contents: String, mode: mode_t) throws(NetError) {
    unlink(path)
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard descriptor >= 0 else {
      throw .certificate(path: path, reason: "cannot create: \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    // The umask may have cleared bits of `mode`; never more than asked, but say exactly this.
    fchmod(descriptor, mode)
    let bytes = Array(contents.utf8)
    var offset = 0
    while offset < bytes.count {
      let written = bytes[offset...].withUnsafeBytes { posixWrite(descriptor, $0.baseAddress, $0.count) }
      if written < 0 {
        if errno == EINTR { continue }
        throw .certificate(path: path, reason: "cannot write: \(String(cString: strerror(errno)))")
      }
      offset += written
    }
  }

  /// Reads a text file.
  static func read(_ path: String) throws(NetError) -> String {
    do {
      return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw .certificate(path: path, reason: "cannot read: no such file or not readable")
    }
  }
}

private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
  write(descriptor, buffer, count)
}

// `veil certs`: the Veil certificate authority and one certificate + key per role, as PEM files
// for mutual TLS between parties (keys readable by their owner only).
import ArgumentParser
import Foundation
import VeilMPC
import VeilNet

struct Certs: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Make a CA and a TLS certificate + key per role (p0, p1, dealer, client, owner).",
    discussion: """
      Writes ca.pem, ca-key.pem and <role>.pem, <role>-key.pem into --out (created with mode \
      0700; keys 0600). Each certificate names its role, and parties check the role of their \
      peer, not only the CA. Copy each role's files and ca.pem to the machine that plays it, \
      and keep ca-key.pem offline. With the dealer's certificate it also writes \
      dealer-state.key, 32 random bytes (hex) that seal the dealer's state at rest: keep it on \
      the dealer's machine only.
      """)

  @Option(help: "Folder for the PEM files.") var out: String
  @Option(help: "Comma-separated roles to issue certificates for.") var roles =
    "p0,p1,dealer,client,owner"
  @Option(help: "Days until the certificates expire.") var days = 825
  @Flag(help: "Replace existing files.") var force = false

  func validate() throws {
    guard (1...3650).contains(days) else {
      throw ValidationError("--days \(days) is outside 1…3650")
    }
    _ = try parsedRoles()
  }

  func parsedRoles() throws -> [PartyRole] {
    let names = roles.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    guard !names.isEmpty else { throw ValidationError("--roles is empty") }
    var parsed: [PartyRole] = []
    for name in names {
      guard let role = PartyRole(name: name) else {
        throw ValidationError("unknown role '\(name)' (roles are p0, p1, dealer, client, owner)")
      }
      if !parsed.contains(role) { parsed.append(role) }
    }
    return parsed
  }

  func run() throws {
    let written = try CertificateFiles.write(
      to: out, roles: try parsedRoles(), validityDays: days, overwrite: force)
    var paths = written
    if try parsedRoles().contains(.dealer) {
      let path = (out as NSString).appendingPathComponent("dealer-state.key")
      if force || !FileManager.default.fileExists(atPath: path) {
        var generator = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        guard FileManager.default.createFile(
            atPath: path, contents: Data((hex(key) + "\n").utf8),
            attributes: [.posixPermissions: 0o600])
        else { throw CommandError("cannot write \(path)") }
        paths.append(path)
      }
    }
    for path in paths { print(path) }
    printError("keep \(CertificateFiles.caPrivateKey) offline: whoever holds it can mint any role")
  }
}

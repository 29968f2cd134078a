// Real processes for the deployment tests: the release `veil` binary started as the dealer, P0
// and P1 on loopback (mutual TLS with certificates from `veil certs`), each with its own state
// folder and log, and clients run as `veil embed --remote`. Every wait is bounded.
import Foundation
import Testing
import VeilTestSupport

/// The package's root folder (this file is Tests/VeilServiceTests/ProcessFixture.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// The `veil` binary the tests start: VEIL_BINARY, else the package's release build.
enum VeilBinary {
  static var path: String {
    if let explicit = ProcessInfo.processInfo.environment["VEIL_BINARY"], !explicit.isEmpty {
      return explicit
    }
    return packageRoot.appendingPathComponent(".build/release/veil").path
  }

  static var isPresent: Bool { FileManager.default.isExecutableFile(atPath: path) }

  /// Deployment tests need the model and the release binary (`swift build -c release
  /// --product veil`, which scripts/test.sh runs first); CI (VEIL_REQUIRE_MODEL=1) never skips.
  static var shouldRun: Bool { (isPresent && TestModel.isPresent) || TestModel.isRequired }
}

/// What a finished command printed and returned.
struct CommandResult {
  let status: Int32
  let stdout: String
  let stderr: String
}

/// Runs `veil ARGUMENTS` to its end (at most `timeout` seconds).
func runVeil(_ arguments: [String], in directory: String, timeout: Double = 120) throws
  -> CommandResult
{
  let process = Process()
  process.executableURL = URL(fileURLWithPath: VeilBinary.path)
  process.arguments = arguments
  process.currentDirectoryURL = URL(fileURLWithPath: directory)
  let out = directory + "/cmd-\(UUID().uuidString).out"
  let err = out + ".err"
  FileManager.default.createFile(atPath: out, contents: nil)
  FileManager.default.createFile(atPath: err, contents: nil)
  process.standardOutput = FileHandle(forWritingAtPath: out)
  process.standardError = FileHandle(forWritingAtPath: err)
  process.standardInput = FileHandle.nullDevice
  try process.run()
  let deadline = Date().addingTimeInterval(timeout)
  while process.isRunning && Date() < deadline { usleep(20_000) }
  if process.isRunning {
    process.terminate()
    process.waitUntilExit()
  }
  return CommandResult(
    status: process.terminationStatus,
    stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
    stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}

/// A long-running role (`veil dealer` or `veil serve`), its port read from its first line.
final class Service: @unchecked Sendable {
  let name: String
  let arguments: [String]
  let directory: String
  private(set) var process = Process()
  private(set) var port = 0

  init(_ name: String, _ arguments: [String], in directory: String) {
    self.name = name
    self.arguments = arguments
    self.directory = directory
  }

  var log: String {
    (try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8)) ?? ""
  }

  /// Starts it and waits (≤ 60 s) for its 'listening HOST:PORT' line.
  func start() throws {
    process = Process()
    process.executableURL = URL(fileURLWithPath: VeilBinary.path)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let out = directory + "/\(name).out"
    FileManager.default.createFile(atPath: out, contents: nil)
    if !FileManager.default.fileExists(atPath: directory + "/\(name).log") {
      FileManager.default.createFile(atPath: directory + "/\(name).log", contents: nil)
    }
    process.standardOutput = FileHandle(forWritingAtPath: out)
    let log = FileHandle(forWritingAtPath: directory + "/\(name).log")
    log?.seekToEndOfFile()
    process.standardError = log
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline {
      if let text = try? String(contentsOfFile: out, encoding: .utf8),
        let line = text.split(separator: "\n").first, line.hasPrefix("listening "),
        let value = line.split(separator: ":").last.flatMap({ Int($0) })
      {
        port = value
        return
      }
      guard process.isRunning else { break }
      usleep(20_000)
    }
    throw ServiceError("\(name) did not start: \(self.log.suffix(2000))")
  }

  var address: String { "127.0.0.1:\(port)" }
  var isRunning: Bool { process.isRunning }

  /// SIGKILL: no goodbye, as when a machine dies.
  func kill() {
    Foundation.kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }

  /// SIGTERM and wait (≤ 30 s) for a clean exit; returns its status.
  @discardableResult func stop() -> Int32 {
    guard process.isRunning else { return process.terminationStatus }
    process.terminate()
    let deadline = Date().addingTimeInterval(30)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { kill() }
    return process.terminationStatus
  }

  /// Restarts it on the same port (the others are configured with it).
  func restart() throws {
    var fixed = arguments
    if let listen = fixed.firstIndex(of: "--listen"), listen + 1 < fixed.count {
      fixed[listen + 1] = "127.0.0.1:\(port)"
    }
    let again = Service(name, fixed, in: directory)
    try again.start()
    process = again.process
    port = again.port
  }
}

struct ServiceError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// A deployment of three real processes on loopback: certificates, the dealer, P1 and P0.
final class ProcessDeployment: @unchecked Sendable {
  let directory: String
  let dealer: Service
  var p1: Service
  var p0: Service

  /// `extra` adds arguments to the dealer's, P0's and P1's command lines.
  init(extra: (dealer: [String], p0: [String], p1: [String]) = ([], [], [])) throws {
    directory =
      FileManager.default.temporaryDirectory.appendingPathComponent(
        "veil-deploy-\(UUID().uuidString)"
      ).path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let certs = try runVeil(["certs", "--out", "certs"], in: directory)
    guard certs.status == 0 else { throw ServiceError("veil certs: \(certs.stderr)") }
    dealer = Service(
      "dealer",
      [
        "dealer", "--state", "dealer", "--listen", "127.0.0.1:0", "--certs", "certs",
        "--state-key-file", "certs/dealer-state.key",
      ] + extra.dealer, in: directory)
    try dealer.start()
    p1 = Service(
      "p1",
      [
        "serve", "--party", "1", "--state", "p1", "--listen", "127.0.0.1:0", "--dealer",
        dealer.address, "--certs", "certs",
      ] + extra.p1, in: directory)
    try p1.start()
    p0 = Service(
      "p0",
      [
        "serve", "--party", "0", "--state", "p0", "--listen", "127.0.0.1:0", "--peer", p1.address,
        "--dealer", dealer.address, "--certs", "certs", "--metrics", "127.0.0.1:0",
      ] + extra.p0, in: directory)
    try p0.start()
  }

  var servers: String { "\(p0.address),\(p1.address)" }

  /// P0's Prometheus text, from the address its log names.
  func p0Metrics() throws -> String { try p0.metrics() }
}

extension Service {
  /// The service's Prometheus text, from the address its log names.
  func metrics() throws -> String {
    guard
      let line = log.split(separator: "\n").first(where: { $0.contains("metrics at http://") }),
      let url = line.split(separator: " ").last
    else { throw ServiceError("\(name) logged no metrics address") }
    let curl = Process()
    curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    curl.arguments = ["curl", "-s", "--max-time", "5", String(url)]
    let pipe = Pipe()
    curl.standardOutput = pipe
    try curl.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    curl.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }
}

extension ProcessDeployment {
  func shareModel(_ model: String) throws -> CommandResult {
    try runVeil(
      [
        "share-model", "--model", model, "--servers", servers, "--dealer", dealer.address,
        "--certs", "certs",
      ], in: directory)
  }

  func embedArguments(_ texts: [String], certs: String = "certs", extra: [String] = []) -> [String]
  {
    [
      "embed", "--remote", servers, "--dealer", dealer.address, "--certs", certs, "--state",
      "client", "--json",
    ] + extra + texts
  }

  /// `veil embed --remote … --json TEXTS`.
  func embed(_ texts: [String], certs: String = "certs", extra: [String] = []) throws
    -> CommandResult
  {
    try runVeil(embedArguments(texts, certs: certs, extra: extra), in: directory)
  }

  /// Starts a client without waiting for it; `output` is where its stdout and stderr go.
  func startEmbed(_ texts: [String]) throws -> (process: Process, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: VeilBinary.path)
    process.arguments = embedArguments(texts)
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let out = directory + "/bg-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: out, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = FileHandle(forWritingAtPath: out)
    try process.run()
    return (process, out)
  }

  func stopAll() {
    for service in [p0, p1, dealer] { service.stop() }
  }

  var logs: String {
    "p0:\n\(p0.log.suffix(3000))\np1:\n\(p1.log.suffix(3000))\ndealer:\n\(dealer.log.suffix(3000))"
  }
}

/// The embeddings of a `veil embed --json` output.
func embeddings(_ result: CommandResult) throws -> [[Double]] {
  guard let data = result.stdout.data(using: .utf8),
    let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
    let vectors = object["embeddings"] as? [[Double]]
  else {
    throw ServiceError(
      "no embeddings in: \(result.stdout.prefix(400)) \(result.stderr.suffix(800))")
  }
  return vectors
}

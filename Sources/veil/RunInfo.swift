// What every --json report carries beside its results (DESIGN §9): schema, commit, date,
// machine (cpu, cores, features, kernel paths) and params.
import Foundation
import VeilRing

enum RunInfo {
  /// The git commit of the working directory, or VEIL_COMMIT, or "unknown".
  static var commit: String {
    if let env = ProcessInfo.processInfo.environment["VEIL_COMMIT"] { return env }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["git", "rev-parse", "--short=12", "HEAD"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return "unknown" }
    process.waitUntilExit()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      .trimmingCharacters(in: .whitespacesAndNewlines)
    return process.terminationStatus == 0 && !out.isEmpty ? out : "unknown"
  }

  static var date: String { ISO8601DateFormatter().string(from: Date()) }

  static var cpuModel: String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
      return "unknown"
    }
    for line in text.split(separator: "\n") where line.hasPrefix("model name") {
      return line.split(separator: ":", maxSplits: 1).last.map {
        $0.trimmingCharacters(in: .whitespaces)
      } ?? "unknown"
    }
    return "unknown"
  }

  static func machine(kernels: [String: String]) -> [String: Any] {
    [
      "cpu": cpuModel, "cores": ProcessInfo.processInfo.activeProcessorCount,
      "features": CPUFeatures.names, "kernels": kernels,
      "memory_gib": Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
    ]
  }

  /// Resets the peak resident set to the current one (Linux: "5" to /proc/self/clear_refs), so
  /// that a later `peakRSSBytes` measures one phase; false where that is not possible.
  static func resetPeakRSS() -> Bool {
    (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
  }

  /// The process's peak resident set (VmHWM), in bytes; 0 where /proc is missing.
  static var peakRSSBytes: Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
      return 0
    }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
      // "VmHWM:\t 123456 kB": a tab, then padding spaces only while the number is short.
      let kib =
        line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }.first ?? 0
      return kib * 1024
    }
    return 0
  }

  static func envelope(schema: String, params: [String: Any], kernels: [String: String]) -> [String:
    Any]
  {
    [
      "schema": schema, "commit": commit, "date": date, "machine": machine(kernels: kernels),
      "params": params,
    ]
  }
}

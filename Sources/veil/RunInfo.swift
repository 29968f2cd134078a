// Facts about the machine and the process that reports record (Reports.swift): the CPU model
// and the peak resident set.
import Foundation
import VeilRing

enum RunInfo {
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
}

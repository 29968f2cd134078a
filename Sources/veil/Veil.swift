// The `veil` command line: embed, share-model, serve, dealer, gateway, bench, certs. Each subcommand prints one clear line and exits
// non-zero on bad input; `--json` output is for machines, progress goes to stderr.
import ArgumentParser
import CVeilKernels
import Foundation

@main
struct Veil: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "veil",
    abstract: "Private Transformer inference on secret shares (SIGMA, PUMA and SecFormer recipes).",
    subcommands: [
      Embed.self, ShareModel.self, ServeCommand.self, DealerCommand.self, GatewayCommand.self,
      Generate.self, Tokenize.self, Bench.self, Certs.self,
    ])

  /// Sets the allocator up before any thread exists (see `veil_keep_freed_memory`), then parses
  /// and runs the command as ArgumentParser's own `main` does.
  static func main() async {
    _ = veil_keep_freed_memory()
    do {
      var command = try parseAsRoot()
      if var asynchronous = command as? AsyncParsableCommand {
        try await asynchronous.run()
      } else {
        try command.run()
      }
    } catch {
      exit(withError: error)
    }
  }
}

/// Writes a line to standard error (progress, warnings, errors).
func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The lines of FILE, or of standard input for "-" (LF or CRLF; a final newline ends the last
/// line). Split on scalars: Swift reads "\r\n" as one Character.
func readLines(_ input: String) throws -> [String] {
  let data =
    input == "-"
    ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: input)
  guard let data else { throw CommandError("cannot read --input \(input)") }
  var lines = String(decoding: data, as: UTF8.self).unicodeScalars.split(
    separator: "\n", omittingEmptySubsequences: false
  ).map { line in String(String.UnicodeScalarView(line.last == "\r" ? line.dropLast() : line)) }
  if lines.last == "" { lines.removeLast() }
  return lines
}

/// A bad option value found while running: one line on stderr (ArgumentParser's
/// `ValidationError` adds the usage lines).
struct CommandError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

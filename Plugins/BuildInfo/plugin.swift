// Embeds the commit a build was made from (DESIGN §9): before each build of a target that uses
// this plugin, `git rev-parse` of the package's checkout is written into `BuildCommit.swift`,
// rewritten only when it changes so that an unchanged commit costs no recompilation. A report
// then names the build's commit, not whatever repository the caller's directory is in.
import Foundation
import PackagePlugin

@main
struct BuildInfo: BuildToolPlugin {
  func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
    let output = context.pluginWorkDirectoryURL.appending(path: "generated")
    let script = """
      set -e
      mkdir -p "$1"
      commit=$(git -C "$2" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
      if [ "$commit" != unknown ] && [ -n "$(git -C "$2" status --porcelain --untracked-files=no 2>/dev/null | head -c 1)" ]; then
        commit="$commit-modified"
      fi
      line="/// The commit this binary was built from (\\"-modified\\": with uncommitted changes).
      let buildCommit = \\"$commit\\""
      if [ "$(cat "$1/BuildCommit.swift" 2>/dev/null)" != "$line" ]; then
        printf '%s\\n' "$line" > "$1/BuildCommit.swift"
      fi
      """
    return [
      .prebuildCommand(
        displayName: "Embedding the build's commit",
        executable: URL(filePath: "/bin/sh"),
        arguments: ["-c", script, "sh", output.path(), context.package.directoryURL.path()],
        outputFilesDirectory: output)
    ]
  }
}

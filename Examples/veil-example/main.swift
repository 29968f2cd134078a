// An application of Veil through its public API only: the same sentence embedded securely with
// every role in this process, then (if a deployment's addresses are given) as the client of
// that deployment, and the two compared.
//
//   veil-example MODEL_DIR
//   veil-example MODEL_DIR P0_HOST:PORT,P1_HOST:PORT DEALER_HOST:PORT CERTS_DIR
import Foundation
import VeilService

let arguments = CommandLine.arguments
guard arguments.count == 2 || arguments.count == 5 else {
  FileHandle.standardError.write(Data("usage: veil-example MODEL_DIR [P0,P1 DEALER CERTS]\n".utf8))
  exit(2)
}
let text = "Veil keeps this sentence private."
do {
  let local = try await LocalDeployment(modelDirectory: arguments[1])
  let embedding = try await local.embed(text)
  print("local: \(embedding.count) dimensions, first \(embedding.prefix(3))")
  if arguments.count == 5 {
    let client = try VeilClient(
      servers: arguments[2].split(separator: ",").map(String.init), dealer: arguments[3],
      certificates: arguments[4])
    let remote = try await client.embed(text)
    print("remote: \(remote == embedding ? "identical to the local run" : "DIFFERENT from the local run")")
    if remote != embedding { exit(1) }
  }
} catch {
  FileHandle.standardError.write(Data("veil-example: \(error)\n".utf8))
  exit(1)
}

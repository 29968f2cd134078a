// The `--json` reports (DESIGN §9), typed: one `Codable` struct per schema, wrapped in the
// envelope every report carries (schema, the build's commit, date, machine with its kernel
// paths, params). Field names are the structs' in snake case; a report's results sit beside
// the envelope's fields at the top level.
import Foundation
import VeilFSS
import VeilMPC
import VeilRing

/// The kernel paths a run took: AES for every PRG and DPF, and the ring GEMM at the run's width.
struct KernelPaths: Codable, Equatable {
  var aes: String
  var ringGemm: String

  init(ringBits: Int) {
    aes = AESKernel.best.rawValue
    ringGemm = RingGEMMKernel.best(forBits: ringBits).rawValue
  }
}

/// The machine a report was measured on.
struct MachineInfo: Codable, Equatable {
  var cpu: String
  var cores: Int
  var features: [String]
  var kernels: KernelPaths
  var memoryGib: Double

  init(ringBits: Int) {
    cpu = RunInfo.cpuModel
    cores = ProcessInfo.processInfo.activeProcessorCount
    features = CPUFeatures.names
    kernels = KernelPaths(ringBits: ringBits)
    memoryGib = Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824
  }
}

/// One report: the envelope, and the results flattened beside it.
struct Report<Params: Codable, Results: Codable>: Codable {
  var schema: String
  var commit: String
  var date: String
  var machine: MachineInfo
  var params: Params
  var results: Results

  /// A report of this build, now, on this machine; `ringBits` picks the GEMM kernel named.
  init(schema: String, ringBits: Int, params: Params, results: Results) {
    self.schema = schema
    commit = buildCommit
    date = ISO8601DateFormatter().string(from: Date())
    machine = MachineInfo(ringBits: ringBits)
    self.params = params
    self.results = results
  }

  enum CodingKeys: String, CodingKey { case schema, commit, date, machine, params }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    schema = try container.decode(String.self, forKey: .schema)
    commit = try container.decode(String.self, forKey: .commit)
    date = try container.decode(String.self, forKey: .date)
    machine = try container.decode(MachineInfo.self, forKey: .machine)
    params = try container.decode(Params.self, forKey: .params)
    results = try Results(from: decoder)
  }

  func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(schema, forKey: .schema)
    try container.encode(commit, forKey: .commit)
    try container.encode(date, forKey: .date)
    try container.encode(machine, forKey: .machine)
    try container.encode(params, forKey: .params)
    try results.encode(to: encoder)
  }

  /// Writes the report as JSON to `path`, or to stdout for "-".
  func write(to path: String) throws {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var data = try encoder.encode(self)
    data.append(0x0A)
    if path == "-" {
      FileHandle.standardOutput.write(data)
    } else {
      try data.write(to: URL(fileURLWithPath: path))
      printError("wrote \(path)")
    }
  }
}

/// The parameters of a recipe run, as every model and operation report names them.
struct RecipeParams: Codable {
  var recipe: String
  var ringBits: Int
  var fractionalBits: Int
  var recipeParameters: String?
  var transport: String?
  var engine: String?
  var tokens: [Int]?
  var setupId: String?
}

extension RecipeParams {
  init(
    _ p: RecipeParameters, transport: String? = nil, engine: String? = nil, tokens: [Int]? = nil,
    setupID: String? = nil
  ) {
    self.init(
      recipe: p.recipeName, ringBits: p.ringBits, fractionalBits: p.fractionalBits,
      recipeParameters: p.description, transport: transport, engine: engine, tokens: tokens,
      setupId: setupID)
  }
}

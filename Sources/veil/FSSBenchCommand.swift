// `veil bench fss`: AES, DPF and gate throughput on one core, against raw AES measured in the
// same run; key bytes per gate. Keys are generated for batches larger than the caches, so the
// evaluation streams them from memory as a real inference would.
import ArgumentParser
import CVeilKernels
import Foundation
import VeilFSS
import VeilRing

struct FSSBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "fss", abstract: "AES PRG, DPF and FSS gate throughput and key sizes.")

  @Option(help: "Keys per DPF batch (large enough to stream from memory).") var batch = 262_144
  @Option(help: "Minimum seconds per measurement.") var seconds = 0.3
  @Option(help: "Threads per evaluation (1 = one core, as when both parties share the machine).")
  var threads = 1
  @Option(name: .long, help: "Write JSON to FILE ('-' for stdout).") var json: String?

  func run() throws {
    let prg = try TreePRG(runKey: Array("veil bench fss".utf8))
    var random = try SecureRandom()
    var rows: [FSSRow] = []
    func log(_ row: FSSRow) {
      rows.append(row)
      let ratio = row.aesFraction.map { String(format: "  %.0f%% of raw AES", $0 * 100) } ?? ""
      printError(String(format: "%-34@ %12.3f M/s%@", row.name, row.perSecond / 1e6, ratio))
    }

    // Raw AES, both kernels: the ceiling every DPF number is compared with.
    var rawAES: [String: Double] = [:]
    let blocks = 1 << 14
    var buffer = random.bytes(16 * blocks)
    var key = try AESKey(random.bytes(16)).expandedKey
    func rawRate(_ kernel: AESKernel, minimumSeconds: Double) -> Double {
      let t = bestTime(minimumSeconds: minimumSeconds) {
        buffer.withUnsafeMutableBufferPointer { b in
          veil_aes128_encrypt_blocks(kernel.cKernel, &key, b.baseAddress, b.baseAddress, blocks)
        }
      }
      return Double(blocks) / t.best
    }
    for kernel in AESKernel.allCases where kernel.isAvailable {
      rawAES[kernel.rawValue] = rawRate(kernel, minimumSeconds: seconds)
      log(
        FSSRow(
          name: "aes-raw-\(kernel.rawValue)", perSecond: rawAES[kernel.rawValue]!, unit: "blocks"))
    }
    // A shared VM's speed drifts by tens of percent within a run, so each DPF row is compared
    // with raw AES measured right before it, under the same conditions (the row records it).
    func aesLimit() -> Double { rawRate(.best, minimumSeconds: seconds / 2) }

    // DPF single-point and comparison evaluation, batched over many keys.
    for bits in [16, 32, 50] {
      let n = batch
      let alphas = random.elements(n, bits: bits)
      let genStart = DispatchTime.now().uptimeNanoseconds
      let (k0, _, _) = try DPF.gen(bits: bits, alphas: alphas, prg: prg, random: &random)
      let genSeconds = Double(DispatchTime.now().uptimeNanoseconds - genStart) / 1e9
      let points = random.elements(n, bits: bits)
      let depth = Double(max(bits - 7, 0))
      for lessThan in [false, true] {
        let limit = aesLimit()
        let t = bestTime(minimumSeconds: seconds) {
          _ = try? DPF.evalPoints(
            party: 0, keys: k0, points: points, lessThan: lessThan, prg: prg, threads: threads)
        }
        // AES calls performed per key: both children on every level (cheaper than compacting
        // the batch by path bit) and the leaf. The path itself needs depth + 1.
        let calls = 2 * depth + 1
        let rate = Double(n) / t.best
        log(
          FSSRow(
            name: "dpf-\(lessThan ? "compare" : "point")-\(bits)", bits: bits, perSecond: rate,
            unit: "evals", aesCallsPerSecond: rate * calls, aesFraction: rate * calls / limit,
            pathAesFraction: rate * (depth + 1) / limit, aesRawPerSecond: limit,
            keyBytes: Double(k0.serialized(party: 0).count) / Double(n),
            genPerSecond: Double(n) / genSeconds))
      }
    }

    // Full-domain evaluation (lookup-table sized domains). Each run evaluates both parties'
    // keys: their roots' control bits differ (party 0 applies no corrections at the first
    // level), and so do their costs when keys have one or two levels.
    for bits in [8, 13] {
      let n = max(1, batch >> (bits - 7))
      let (k0, k1, _) = try DPF.gen(
        bits: bits, alphas: random.elements(n, bits: bits), prg: prg, random: &random)
      let limit = aesLimit()
      let t = bestTime(minimumSeconds: seconds) {
        _ = try? DPF.evalAll(party: 0, keys: k0, prg: prg)
        _ = try? DPF.evalAll(party: 1, keys: k1, prg: prg)
      }
      let leavesPerKey = Double(2 << bits)  // both parties'
      let blocksPerKey = Double(1 << (bits - 7))
      let calls = Double(2 * n) * (2 * (blocksPerKey - 1) + blocksPerKey)
      log(
        FSSRow(
          name: "dpf-eval-all-\(bits)", bits: bits, perSecond: Double(n) * leavesPerKey / t.best,
          unit: "leaves", aesCallsPerSecond: calls / t.best, aesFraction: calls / t.best / limit,
          aesRawPerSecond: limit))
    }

    // Gates on masked wires at n = 50.
    let ring = try Ring(bits: 50)
    let n = batch / 4
    let masks = random.elements(n, bits: 50)
    let masked = random.elements(n, bits: 50)
    let (d0, d1) = try DReLUGate.gen(
      ring: ring, offsets: [0], inputMasks: masks, outputMasks: random.bits(n), prg: prg,
      random: &random)
    var t = bestTime(minimumSeconds: seconds) {
      _ = try? DReLUGate.eval(party: 0, key: d0, maskedInputs: masked, prg: prg, threads: threads)
    }
    log(
      FSSRow(
        name: "drelu-50", perSecond: Double(n) / t.best, unit: "comparisons",
        keyBytes: keyBytes(d0.serialized(party: 0), d1.count)))

    // GeLU's key: one DPF evaluated at three offsets in one walk of its tree.
    let (g0, _) = try DReLUGate.gen(
      ring: ring, offsets: [0, 1 << 20, (1 << 50) - (1 << 20)], inputMasks: masks,
      outputMasks: random.bits(3 * n), prg: prg, random: &random)
    t = bestTime(minimumSeconds: seconds) {
      _ = try? DReLUGate.eval(party: 0, key: g0, maskedInputs: masked, prg: prg, threads: threads)
    }
    log(
      FSSRow(
        name: "drelu-50-3-offsets", perSecond: Double(3 * n) / t.best, unit: "comparisons",
        keyBytes: keyBytes(g0.serialized(party: 0), g0.count)))

    let (s0, _) = try SelectGate.gen(
      ring: ring, bitMasks: random.bits(n), valueMasks: masks, outputMasks: masks, random: &random)
    let bits = random.bits(n)
    t = bestTime(minimumSeconds: seconds) {
      _ = try? SelectGate.eval(party: 0, key: s0, maskedBits: bits, maskedValues: masked)
    }
    log(
      FSSRow(
        name: "select-50", perSecond: Double(n) / t.best, unit: "selects",
        keyBytes: keyBytes(s0.serialized(party: 0), n)))

    for (name, kind, inBits, shift, outBits) in [
      ("truncate-reduce-50-12", TruncationKind.reduce, 50, 12, 38),
      ("truncate-slack-50-12", .slack, 50, 12, 50),
      ("sign-extend-38-50", .signExtend, 38, 0, 50),
    ] {
      let (k0, _) = try TruncationGate.gen(
        kind: kind, inputBits: inBits, shift: shift, outputBits: outBits,
        inputMasks: random.elements(n, bits: inBits),
        outputMasks: random.elements(n, bits: outBits), prg: prg, random: &random)
      let x = random.elements(n, bits: inBits)
      let opened = random.bits(n)
      let tt = bestTime(minimumSeconds: seconds) {
        _ = try? TruncationGate.evalBits(
          party: 0, key: k0, maskedInputs: x, prg: prg, threads: threads)
        _ = try? TruncationGate.evalOutput(party: 0, key: k0, maskedInputs: x, openedBits: opened)
      }
      log(
        FSSRow(
          name: name, perSecond: Double(n) / tt.best, unit: "truncations",
          keyBytes: keyBytes(k0.serialized(party: 0), n)))
    }

    for inputBits in [8, 13] {
      let count = max(1, batch >> (inputBits - 5))
      let table = random.elements(1 << inputBits, bits: 50)
      let (l0, _) = try LUTGate.gen(
        inputBits: inputBits, outputRing: ring, inputMasks: random.elements(count, bits: inputBits),
        outputMasks: random.elements(count, bits: 50), prg: prg, random: &random)
      let x = random.elements(count, bits: inputBits)
      let tt = bestTime(minimumSeconds: seconds) {
        if let r1 = try? LUTGate.evalRound1(
          party: 0, key: l0, maskedInputs: x, table: table, prg: prg, threads: threads)
        {
          _ = try? LUTGate.evalRound2(party: 0, key: l0, opened: r1)
        }
      }
      log(
        FSSRow(
          name: "lut-\(inputBits)-50", perSecond: Double(count) / tt.best, unit: "lookups",
          keyBytes: keyBytes(l0.serialized(party: 0), count)))
    }

    if let json {
      try Report(
        schema: "veil.bench.fss/1", ringBits: 50,
        params: FSSParams(batch: batch, minSeconds: seconds, threads: threads),
        results: FSSResults(fss: rows, aesBlocksPerSecond: rawAES)
      ).write(to: json)
    }
  }

  func keyBytes(_ record: [UInt8], _ count: Int) -> Double { Double(record.count) / Double(count) }
}

struct FSSParams: Codable {
  var batch: Int
  var minSeconds: Double
  var threads: Int
}

struct FSSResults: Codable {
  var fss: [FSSRow]
  /// Raw AES per kernel path, blocks per second.
  var aesBlocksPerSecond: [String: Double]
}

/// One measured primitive: its rate, and for DPF rows the AES work against raw AES.
struct FSSRow: Codable {
  var name: String
  var bits: Int?
  var perSecond: Double
  var unit: String
  var aesCallsPerSecond: Double?
  var aesFraction: Double?
  var pathAesFraction: Double?
  var aesRawPerSecond: Double?
  var keyBytes: Double?
  var genPerSecond: Double?
}

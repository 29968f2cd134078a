// Distributed point functions with bit outputs (Boyle–Gilboa–Ishai tree, early termination at
// 128-bit leaves). A key pair for point alpha gives each party a bit per domain point whose XOR
// over the parties is [x == alpha]; the same keys evaluate [alpha < x] by XOR-ing the control
// bits of left siblings along x's path (Grotto-style comparison with one DPF). Domains of at
// most 7 bits are secret-shared truth tables (no PRG calls).
import CVeilKernels
import Dispatch

/// A heap buffer that threads fill in disjoint ranges; read back once all have finished.
final class OutputBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
  // @unchecked: writers touch disjoint ranges, and `array()` runs after they have joined.
  let base: UnsafeMutablePointer<Element>
  let count: Int

  init(count: Int, zero: Element) {
    self.count = count
    base = .allocate(capacity: Swift.max(count, 1))
    base.initialize(repeating: zero, count: Swift.max(count, 1))
  }

  func array() -> [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }

  deinit { base.deallocate() }
}

/// A pointer handed to worker threads that only read through it.
struct UnsafeSendable<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}

/// One party's DPF keys for a batch of points over a domain of `bits` bits. The seed arrays
/// are slices: keys decoded from a key record share the record's buffer (gigabytes per model
/// run; copying them was about 14 % of the parties' online time in BERT-base).
public struct DPFKeys: Sendable, Equatable {
  /// Domain width in bits (1…64).
  public let bits: Int
  public let count: Int
  /// Root seeds (or, for bits ≤ 7, the truth-table shares), 16 bytes per key.
  let roots: ArraySlice<UInt8>
  /// Trees only: the 16-byte seed this party's roots expand from (`expandRoots`), so a record
  /// carries one seed instead of 16 bytes per key. Truth tables are shares of a public
  /// function of the other party's, so they are sent whole (nil).
  let rootSeed: [UInt8]?
  /// Seed correction words, depth × count × 16 bytes, in tiles of `VEIL_DPF_TILE` keys each
  /// stored level-major (CVeilKernels.h), so that evaluating a tile streams one region.
  let cwSeeds: ArraySlice<UInt8>
  /// Control-bit corrections, depth × count bytes (bit 0 left, bit 1 right), tiled the same way.
  let cwBits: [UInt8]
  /// Leaf correction words, 16 bytes per key (empty for truth tables).
  let leafCW: ArraySlice<UInt8>

  /// Tree levels above the 128-bit leaves.
  public var depth: Int { Swift.max(bits - 7, 0) }

  /// Key bits per point: (bits − 7)(λ + 2) + λ for trees (2 control bits packed in a byte on
  /// disk are counted at 2 bits here), λ for truth tables; a batch of trees adds one λ-bit
  /// root seed (`batchBits`).
  public static func keyBits(domainBits bits: Int) -> Int {
    bits <= 7 ? 128 : (bits - 7) * 130 + 128
  }

  /// Bits a batch adds once, whatever its size: the root seed of a tree batch.
  public static func batchBits(domainBits bits: Int) -> Int { bits <= 7 ? 0 : 128 }

  /// The roots of `count` tree keys from their party's seed: AES-128-CTR keyed by the seed
  /// (`SecureRandom(seed:)`), the generator the dealer draws everything else from. The roots
  /// must be uniform and independent between the parties, and each party's seed is drawn
  /// fresh per batch from the dealer's generator and sent to that party only.
  static func expandRoots(seed: [UInt8], count: Int) throws(FSSError) -> [UInt8] {
    var generator = try SecureRandom(seed: seed)
    var roots = generator.bytes(16 * count)
    // The kernels keep a root's low bit clear (the control bit is the party's number).
    for i in 0..<count { roots[16 * i] &= 0xFE }
    return roots
  }

  init(
    bits: Int, count: Int, roots: ArraySlice<UInt8>, rootSeed: [UInt8]?,
    cwSeeds: ArraySlice<UInt8>, cwBits: [UInt8], leafCW: ArraySlice<UInt8>
  ) {
    self.bits = bits
    self.count = count
    self.roots = roots
    self.rootSeed = rootSeed
    self.cwSeeds = cwSeeds
    self.cwBits = cwBits
    self.leafCW = leafCW
  }

  /// Checks the internal sizes (after decoding a key record).
  func validate() throws(FSSError) {
    let d = depth
    guard roots.count == 16 * count, cwSeeds.count == 16 * d * count, cwBits.count == d * count,
      leafCW.count == (d == 0 ? 0 : 16 * count), (rootSeed?.count ?? 0) == (d == 0 ? 0 : 16)
    else { throw .corruptKey("DPF key arrays do not match \(count) keys of \(bits) bits") }
  }

  /// Runs `body` with the kernels' view of the key arrays.
  func withKernelKeys<R>(_ body: (KernelKeys) -> R) -> R {
    roots.withUnsafeBufferPointer { r in
      cwSeeds.withUnsafeBufferPointer { s in
        cwBits.withUnsafeBufferPointer { b in
          leafCW.withUnsafeBufferPointer { l in
            body(
              KernelKeys(
                roots: r.baseAddress, cwSeeds: s.baseAddress, cwBits: b.baseAddress,
                leafCW: l.baseAddress))
          }
        }
      }
    }
  }
}

/// Pointers to one batch's key arrays, valid inside `DPFKeys.withKernelKeys`; the worker
/// threads only read through them. Truth tables (depth 0) have no corrections, and the
/// kernels do not read those pointers then.
struct KernelKeys: @unchecked Sendable {
  let roots, cwSeeds, cwBits, leafCW: UnsafePointer<UInt8>?
}

/// DPF generation (dealer) and evaluation (parties).
public enum DPF {
  static func checkWidth(_ bits: Int) throws(FSSError) {
    guard (1...64).contains(bits) else { throw .invalidWidth("DPF domain of \(bits) bits") }
  }

  static func domainMask(_ bits: Int) -> UInt64 { bits >= 64 ? .max : (1 << UInt64(bits)) - 1 }

  /// Keys for points `alphas` (reduced mod 2^bits). Returns both parties' keys and, per key,
  /// party 0's output bit at alpha (the dealer needs it to undo the sign of a signed sum).
  public static func gen(
    bits: Int, alphas: [UInt64], prg: TreePRG, random: inout SecureRandom
  ) throws(FSSError) -> (DPFKeys, DPFKeys, signBits: [UInt8]) {
    try checkWidth(bits)
    let n = alphas.count
    let depth = Swift.max(bits - 7, 0)
    let mask = domainMask(bits)
    let points = alphas.map { $0 & mask }
    let seed0 = depth == 0 ? nil : random.bytes(16)
    let seed1 = depth == 0 ? nil : random.bytes(16)
    var roots0: [UInt8]
    var roots1: [UInt8]
    if let seed0, let seed1 {
      roots0 = try DPFKeys.expandRoots(seed: seed0, count: n)
      roots1 = try DPFKeys.expandRoots(seed: seed1, count: n)
    } else {
      roots0 = random.bytes(16 * n)
      roots1 = random.bytes(16 * n)
    }
    if depth == 0 {
      // Only the low 2^bits bits of a truth table are meaningful: keep the rest zero in both
      // shares so equal keys encode equal tables.
      let used = 1 << bits
      for i in 0..<n { clearUnusedTableBits(&roots0, key: i, used: used) }
    }
    var cwSeeds = [UInt8](repeating: 0, count: 16 * depth * n)
    var cwBits = [UInt8](repeating: 0, count: depth * n)
    var leafCW = [UInt8](repeating: 0, count: 16 * n)
    var signBits = [UInt8](repeating: 0, count: n)
    prg.withKeys { keys in
      veil_dpf_gen(
        prg.kernel.cValue, keys, depth, n, points, &roots0, &roots1, &cwSeeds, &cwBits, &leafCW,
        &signBits)
    }
    if depth == 0 { leafCW = [] }
    let k0 = DPFKeys(
      bits: bits, count: n, roots: roots0[...], rootSeed: seed0, cwSeeds: cwSeeds[...],
      cwBits: cwBits, leafCW: leafCW[...])
    let k1 = DPFKeys(
      bits: bits, count: n, roots: roots1[...], rootSeed: seed1, cwSeeds: cwSeeds[...],
      cwBits: cwBits, leafCW: leafCW[...])
    return (k0, k1, signBits)
  }

  private static func clearUnusedTableBits(_ roots: inout [UInt8], key: Int, used: Int) {
    guard used < 128 else { return }
    for bit in used..<128 { roots[16 * key + bit / 8] &= ~UInt8(1 << (bit % 8)) }
  }

  /// Splits `count` keys into at most `threads` contiguous ranges and runs `body` on each,
  /// concurrently when there is more than one (batches below 4096 keys stay on one thread).
  /// Ranges start on tile boundaries, so no tile's correction words are split between threads.
  static func forEachRange(count: Int, threads: Int, _ body: @Sendable (Int, Int) -> Void) {
    let parts = Swift.max(1, Swift.min(threads, count / 4096))
    if parts == 1 { return body(0, count) }
    let tile = Int(VEIL_DPF_TILE)
    let starts = (0...parts).map { p in p == parts ? count : count * p / parts / tile * tile }
    DispatchQueue.concurrentPerform(iterations: parts) { p in
      body(starts[p], starts[p + 1] - starts[p])
    }
  }

  /// This party's bit shares of [x == alpha] (or [alpha < x] when `lessThan`) at
  /// `pointsPerKey` points per key: points and shares are key-major (key i's points at
  /// i·pointsPerKey …), and one walk of a key's tree serves all its points.
  public static func evalPoints(
    party: Int, keys: DPFKeys, points: [UInt64], pointsPerKey: Int = 1, lessThan: Bool,
    prg: TreePRG,
    threads: Int = 1
  ) throws(FSSError) -> [UInt8] {
    guard pointsPerKey >= 1, points.count == keys.count * pointsPerKey else {
      throw .countMismatch(expected: keys.count * Swift.max(pointsPerKey, 1), found: points.count)
    }
    // The kernels take each point mod 2^(depth + 7) and write every output byte, so only the
    // truth tables of domains under 7 bits need their points reduced here.
    let mask = domainMask(keys.bits)
    let xs = keys.bits < 7 ? points.map { $0 & mask } : points
    return [UInt8](unsafeUninitializedCapacity: points.count) { buffer, initialized in
      let out = UnsafeSendable(buffer.baseAddress)
      prg.withKeys { k in
        let kp = UnsafeSendable(k)
        keys.withKernelKeys { c in
          forEachRange(count: keys.count, threads: threads) { first, count in
            veil_dpf_eval_points(
              prg.kernel.cValue, kp.value, Int32(party), keys.depth, keys.count, first, count,
              c.roots, c.cwSeeds, c.cwBits, c.leafCW, xs, pointsPerKey, lessThan ? 1 : 0,
              out.value)
          }
        }
      }
      initialized = points.count
    }
  }

  /// This party's bit shares of the whole domain, 2^bits bits per key packed little-endian
  /// (for domains of fewer than 7 bits the 128-bit truth table is returned, low bits meaningful).
  public static func evalAll(party: Int, keys: DPFKeys, prg: TreePRG) throws(FSSError) -> [UInt8] {
    guard keys.bits <= 24 else {
      throw .invalidWidth("full-domain evaluation of \(keys.bits) bits")
    }
    let byteCount = (16 << keys.depth) * keys.count
    let workspace = UnsafeMutableRawPointer.allocate(
      byteCount: veil_dpf_workspace_size(keys.depth), alignment: 64)
    defer { workspace.deallocate() }
    // The kernel writes every output byte: no need to zero the (megabytes of) output first.
    return [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
      prg.withKeys { k in
        keys.withKernelKeys { c in
          veil_dpf_eval_all(
            prg.kernel.cValue, k, Int32(party), keys.depth, keys.count, c.roots, c.cwSeeds,
            c.cwBits, c.leafCW, workspace, buffer.baseAddress)
        }
      }
      initialized = byteCount
    }
  }

  /// Fused full-domain evaluation and rotated-table dot product (lookup tables): per key,
  /// (Σ_y t(y), Σ_y t(y)·table[(xhat − y) mod 2^bits]) with t this party's bit at y.
  static func lookup(
    party: Int, keys: DPFKeys, maskedInputs: [UInt64], table: [UInt64], prg: TreePRG,
    threads: Int = 1
  ) throws(FSSError) -> (ones: [UInt64], dot: [UInt64]) {
    guard maskedInputs.count == keys.count else {
      throw .countMismatch(expected: keys.count, found: maskedInputs.count)
    }
    guard keys.bits <= 24, table.count == 1 << keys.bits else {
      throw .invalidWidth("a table of \(table.count) entries for a \(keys.bits)-bit input")
    }
    // A truth table covers 128 positions; smaller domains repeat the table to that size so the
    // rotation (xhat − y) mod 2^bits stays correct for every position that can hold a 1.
    let domainBits = Swift.max(keys.bits, 7)
    let fullTable =
      domainBits == keys.bits ? table : (0..<(1 << domainBits)).map { table[$0 % table.count] }
    let mask = domainMask(keys.bits)
    let xs = maskedInputs.map { $0 & mask }
    let ones = OutputBuffer<UInt64>(count: keys.count, zero: 0)
    let dot = OutputBuffer<UInt64>(count: keys.count, zero: 0)
    prg.withKeys { k in
      let kp = UnsafeSendable(k)
      keys.withKernelKeys { c in
        forEachRange(count: keys.count, threads: threads) { first, count in
          var workspace = [UInt8](repeating: 0, count: veil_dpf_workspace_size(keys.depth))
          veil_dpf_lut(
            prg.kernel.cValue, kp.value, Int32(party), keys.depth, keys.count, first, count,
            c.roots, c.cwSeeds, c.cwBits, c.leafCW, xs, fullTable, &workspace, ones.base,
            dot.base)
        }
      }
    }
    return (ones.array(), dot.array())
  }
}

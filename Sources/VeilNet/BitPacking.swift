// Ring elements on the wire at their ring width: n-bit values packed into a little-endian bit
// stream (value i occupies stream bits [i·n, (i+1)·n), stream bit k is bit k mod 8 of byte
// k / 8), so a 50-bit share costs 50 bits, not 64. The loops keep a 64-bit accumulator and move
// whole words; they run at several GB/s (`veil bench net` reports the rate).

/// Packs and unpacks n-bit ring elements (n = 1…64).
public enum BitPacking {
  /// Bytes that `count` values of `bits` bits occupy: ⌈count · bits / 8⌉.
  public static func packedByteCount(count: Int, bits: Int) -> Int {
    precondition((1...64).contains(bits) && count >= 0, "bit width \(bits) or count \(count) out of range")
    let (product, overflow) = count.multipliedReportingOverflow(by: bits)
    precondition(!overflow, "\(count) values of \(bits) bits overflow")
    return (product + 7) / 8
  }

  /// Packs `values` (each reduced mod 2^bits on the way) into `output`, which must hold
  /// `packedByteCount(count: values.count, bits: bits)` bytes. Unused high bits of the last
  /// byte are zero.
  public static func pack(
    _ values: UnsafeBufferPointer<UInt64>, bits: Int, into output: UnsafeMutableRawBufferPointer
  ) {
    let byteCount = packedByteCount(count: values.count, bits: bits)
    precondition(output.count >= byteCount, "output of \(output.count) bytes, need \(byteCount)")
    guard let source = values.baseAddress, let destination = output.baseAddress, byteCount > 0 else { return }
    if bits == 64 {
      // Little-endian hosts store UInt64 as the stream does.
      for i in 0..<values.count {
        destination.storeBytes(of: source[i].littleEndian, toByteOffset: 8 * i, as: UInt64.self)
      }
      return
    }
    let mask: UInt64 = (1 << UInt64(bits)) - 1
    let shift = UInt64(bits)
    var accumulator: UInt64 = 0
    var filled: UInt64 = 0  // bits of `accumulator` in use, 0…63
    var word = 0
    for i in 0..<values.count {
      let value = source[i] & mask
      accumulator |= value &<< filled
      filled += shift
      if filled >= 64 {
        destination.storeBytes(of: accumulator.littleEndian, toByteOffset: 8 * word, as: UInt64.self)
        word += 1
        filled -= 64
        // The `filled` high bits of `value` that did not fit start the next word. They are
        // value >> (bits − filled); two shifts avoid an out-of-range shift by 64.
        let used = shift - filled  // 1…63
        accumulator = (value &>> (used - 1)) &>> 1
      }
    }
    // Tail: the bytes of the last partial word.
    var offset = 8 * word
    while offset < byteCount {
      destination.storeBytes(of: UInt8(truncatingIfNeeded: accumulator), toByteOffset: offset, as: UInt8.self)
      accumulator >>= 8
      offset += 1
    }
  }

  /// Unpacks `output.count` values of `bits` bits from `input`, which must hold at least
  /// `packedByteCount(count: output.count, bits: bits)` bytes.
  public static func unpack(
    _ input: UnsafeRawBufferPointer, bits: Int, into output: UnsafeMutableBufferPointer<UInt64>
  ) {
    let byteCount = packedByteCount(count: output.count, bits: bits)
    precondition(input.count >= byteCount, "input of \(input.count) bytes, need \(byteCount)")
    guard let source = input.baseAddress, let destination = output.baseAddress, byteCount > 0 else { return }
    if bits == 64 {
      for i in 0..<output.count {
        destination[i] = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
      }
      return
    }
    let mask: UInt64 = (1 << UInt64(bits)) - 1
    let shift = UInt64(bits)
    let fullWords = byteCount / 8
    var accumulator: UInt64 = 0
    var available: UInt64 = 0  // unread bits in `accumulator`, 0…63
    var word = 0
    for i in 0..<output.count {
      if available >= shift {
        destination[i] = accumulator & mask
        accumulator &>>= shift
        available -= shift
      } else {
        let next: UInt64
        if word < fullWords {
          next = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * word, as: UInt64.self))
        } else {
          var tail: UInt64 = 0
          for b in 0..<(byteCount - 8 * word) {
            tail |= UInt64(source.load(fromByteOffset: 8 * word + b, as: UInt8.self)) << UInt64(8 * b)
          }
          next = tail
        }
        word += 1
        destination[i] = (accumulator | next &<< available) & mask
        let used = shift - available  // 1…64 bits taken from `next`
        accumulator = (next &>> (used - 1)) &>> 1
        available = 64 - used
      }
    }
  }

  /// `values` packed at `bits` bits each.
  public static func pack(_ values: [UInt64], bits: Int) -> [UInt8] {
    let byteCount = packedByteCount(count: values.count, bits: bits)
    return [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, count in
      values.withUnsafeBufferPointer { pack($0, bits: bits, into: UnsafeMutableRawBufferPointer(buffer)) }
      count = byteCount
    }
  }

  /// `count` values of `bits` bits unpacked from `bytes`.
  public static func unpack(_ bytes: [UInt8], bits: Int, count: Int) -> [UInt64] {
    [UInt64](unsafeUninitializedCapacity: count) { buffer, initialized in
      bytes.withUnsafeBytes { unpack($0, bits: bits, into: buffer) }
      initialized = count
    }
  }
}

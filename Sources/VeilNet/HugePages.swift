// Large receive buffers backed by transparent huge pages where the kernel offers them. A fresh
// 64 MB message buffer costs 16 384 page faults at 4 KiB — more time than copying the bytes
// over loopback — and 32 at 2 MiB. Linux with THP in "madvise" mode needs the hint; elsewhere
// this does nothing.
#if canImport(Glibc)
  import Glibc
#endif

enum HugePages {
  /// Buffers at least this large get the hint (smaller ones come from malloc's heap, whose
  /// pages are already mapped after the first few messages).
  static let threshold = 8 << 20
  private static let hugePage = 2 << 20

  /// Asks for huge pages under the reserved, not yet touched capacity of `buffer`.
  static func advise(_ buffer: inout [UInt8], capacity: Int) {
    #if os(Linux)
      guard capacity >= threshold else { return }
      buffer.withUnsafeMutableBufferPointer { storage in
        guard let base = storage.baseAddress else { return }
        let start = (UInt(bitPattern: base) + UInt(hugePage) - 1) & ~UInt(hugePage - 1)
        let end = (UInt(bitPattern: base) + UInt(capacity)) & ~UInt(hugePage - 1)
        guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
        // Advice only: if the kernel declines, the buffer simply uses small pages.
        _ = madvise(pointer, Int(end - start), MADV_HUGEPAGE)
      }
    #endif
  }
}

// Ring tensors as channel messages: a small header (ring width and shape) and the values
// bit-packed at the ring width. Both ends know what they expect, and the header lets the
// receiver check it, so a protocol that has drifted out of step fails loudly rather than
// reinterpreting bytes.
//
//   "RT" | ring bits (1) | rank (1) | rank × dimension (8, little endian) | packed values
import VeilRing

enum RingTensorMessage {
  static let tag: [UInt8] = [0x52, 0x54]

  static func headerBytes(rank: Int) -> Int { 4 + 8 * rank }

  static func encode(_ tensor: RingTensor) -> [UInt8] {
    let shape = tensor.shape
    precondition(shape.count <= 255, "a tensor of rank \(shape.count) cannot be sent")
    let header = headerBytes(rank: shape.count)
    let packed = BitPacking.packedByteCount(count: tensor.count, bits: tensor.ring.bits)
    return [UInt8](unsafeUninitializedCapacity: header + packed) { buffer, count in
      let raw = UnsafeMutableRawBufferPointer(buffer)
      raw[0] = tag[0]
      raw[1] = tag[1]
      raw[2] = UInt8(tensor.ring.bits)
      raw[3] = UInt8(shape.count)
      for (axis, dimension) in shape.enumerated() {
        raw.storeBytes(of: UInt64(dimension).littleEndian, toByteOffset: 4 + 8 * axis, as: UInt64.self)
      }
      tensor.scalars.withUnsafeBufferPointer { values in
        BitPacking.pack(values, bits: tensor.ring.bits, into: UnsafeMutableRawBufferPointer(rebasing: raw[header...]))
      }
      count = header + packed
    }
  }

  static func describe(bits: Int, shape: [Int]) -> String { "Z_2^\(bits) \(shape)" }

  /// Decodes a message; when `expecting` is given, the ring and shape must match it.
  static func decode(
    _ bytes: [UInt8], expecting: (ring: Ring, shape: [Int])?, peer: String
  ) throws(NetError) -> RingTensor {
    func malformed(_ reason: String) -> NetError { .malformedMessage(peer: peer, reason: "ring tensor: \(reason)") }
    guard bytes.count >= 4, bytes[0] == tag[0], bytes[1] == tag[1] else {
      throw malformed("\(bytes.count)-byte message without the tensor tag")
    }
    let bits = Int(bytes[2])
    let rank = Int(bytes[3])
    let header = headerBytes(rank: rank)
    guard (1...64).contains(bits) else { throw malformed("ring width \(bits) is outside 1…64") }
    guard bytes.count >= header else { throw malformed("\(bytes.count) bytes cannot hold a rank-\(rank) header") }
    var shape: [Int] = []
    var count = 1
    for axis in 0..<rank {
      var dimension: UInt64 = 0
      for i in 0..<8 { dimension |= UInt64(bytes[4 + 8 * axis + i]) << UInt64(8 * i) }
      let product = count.multipliedReportingOverflow(by: Int(truncatingIfNeeded: dimension))
      guard dimension <= UInt64(Int32.max), !product.overflow, product.partialValue <= bytes.count * 8 else {
        throw malformed("shape dimension \(dimension) is too large for the message")
      }
      shape.append(Int(dimension))
      count = product.partialValue
    }
    if let expecting, expecting.ring.bits != bits || expecting.shape != shape {
      throw .tensorMismatch(
        peer: peer, local: describe(bits: expecting.ring.bits, shape: expecting.shape),
        remote: describe(bits: bits, shape: shape))
    }
    let packed = BitPacking.packedByteCount(count: count, bits: bits)
    guard bytes.count == header + packed else {
      throw malformed("\(bytes.count - header) bytes of values for \(count) values of \(bits) bits (need \(packed))")
    }
    let values = bytes.withUnsafeBytes { raw in
      [UInt64](unsafeUninitializedCapacity: count) { buffer, initialized in
        BitPacking.unpack(UnsafeRawBufferPointer(rebasing: raw[header...]), bits: bits, into: buffer)
        initialized = count
      }
    }
    do {
      // Unpacked values are already < 2^bits, so `reducing` changes nothing.
      return try RingTensor(ring: Ring(bits: bits), shape: shape, reducing: values)
    } catch {
      throw malformed("\(error)")
    }
  }
}

extension Channel {
  /// Sends a ring tensor, packed at its ring width behind a small header.
  public func send(_ tensor: RingTensor) async throws(NetError) {
    try await send(RingTensorMessage.encode(tensor))
  }

  /// Receives a ring tensor and checks that it has `ring` and `shape`.
  /// - Throws: ``NetError/tensorMismatch(peer:local:remote:)`` if the peer sent another.
  public func receive(ring: Ring, shape: [Int]) async throws(NetError) -> RingTensor {
    try RingTensorMessage.decode(try await receive(), expecting: (ring, shape), peer: peerDescription)
  }

  /// Receives a ring tensor of whatever ring and shape its header says.
  public func receiveTensor() async throws(NetError) -> RingTensor {
    try RingTensorMessage.decode(try await receive(), expecting: nil, peer: peerDescription)
  }

  /// Sends `tensor` and receives the peer's tensor of the same ring and shape at once (one
  /// round): the way two parties open a masked value from their shares.
  /// - Throws: ``NetError/tensorMismatch(peer:local:remote:)`` if the peer's differs.
  public func exchange(_ tensor: RingTensor) async throws(NetError) -> RingTensor {
    let received = try await exchange(RingTensorMessage.encode(tensor))
    return try RingTensorMessage.decode(received, expecting: (tensor.ring, tensor.shape), peer: peerDescription)
  }
}

// Small values (1, 2 or 4 bits each) packed little-endian into bytes: the key records' control
// bits and DPF control-bit corrections. Eight values at a time move as one 64-bit word through
// PEXT/PDEP (one value per byte on one side, 8·b bits on the other), so packing gigabytes of
// keys costs a few instructions per 8 values instead of a division and a shift per value.
#include "CVeilKernels.h"

#include <string.h>

// The low `bits` bits of each of a word's 8 bytes.
static inline uint64_t lane_mask(unsigned bits) { return 0x0101010101010101ull * ((1u << bits) - 1); }

static void pack_scalar(const uint8_t *values, size_t first, size_t count, unsigned bits, uint8_t *out) {
  const unsigned perByte = 8 / bits, valueMask = (1u << bits) - 1;
  for (size_t i = first; i < count; i++) {
    if (i % perByte == 0) out[i / perByte] = 0;
    out[i / perByte] |= (uint8_t)((values[i] & valueMask) << ((i % perByte) * bits));
  }
}

static void unpack_scalar(const uint8_t *packed, size_t first, size_t count, unsigned bits, uint8_t *out) {
  const unsigned perByte = 8 / bits, valueMask = (1u << bits) - 1;
  for (size_t i = first; i < count; i++) out[i] = (uint8_t)((packed[i / perByte] >> ((i % perByte) * bits)) & valueMask);
}

#if defined(__x86_64__)
#include <immintrin.h>

// Inlined with a constant `bits`, so the partial-word copies are plain loads and stores.
__attribute__((target("bmi2"), always_inline)) static inline size_t pack_bmi2(const uint8_t *values, size_t count,
                                                                             const unsigned bits, uint8_t *out) {
  const uint64_t mask = lane_mask(bits);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    uint64_t word;
    memcpy(&word, values + i, 8);
    uint64_t packed = _pext_u64(word, mask);  // 8 · bits bits = `bits` bytes
    memcpy(out + i / 8 * bits, &packed, bits);
  }
  return i;
}

__attribute__((target("bmi2"), always_inline)) static inline size_t unpack_bmi2(const uint8_t *packed,
                                                                               size_t count, const unsigned bits,
                                                                               uint8_t *out) {
  const uint64_t mask = lane_mask(bits);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    uint64_t word = 0;
    memcpy(&word, packed + i / 8 * bits, bits);
    uint64_t values = _pdep_u64(word, mask);
    memcpy(out + i, &values, 8);
  }
  return i;
}

__attribute__((target("bmi2"))) static size_t pack_words(const uint8_t *values, size_t count, unsigned bits,
                                                         uint8_t *out) {
  switch (bits) {
  case 1: return pack_bmi2(values, count, 1, out);
  case 2: return pack_bmi2(values, count, 2, out);
  default: return pack_bmi2(values, count, 4, out);
  }
}

__attribute__((target("bmi2"))) static size_t unpack_words(const uint8_t *packed, size_t count, unsigned bits,
                                                           uint8_t *out) {
  switch (bits) {
  case 1: return unpack_bmi2(packed, count, 1, out);
  case 2: return unpack_bmi2(packed, count, 2, out);
  default: return unpack_bmi2(packed, count, 4, out);
  }
}
#endif

void veil_pack_small(const uint8_t *values, size_t count, unsigned bitsPerValue, uint8_t *out) {
  size_t done = 0;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("bmi2")) done = pack_words(values, count, bitsPerValue, out);
#endif
  pack_scalar(values, done, count, bitsPerValue, out);
}

void veil_unpack_small(const uint8_t *packed, size_t count, unsigned bitsPerValue, uint8_t *out) {
  size_t done = 0;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("bmi2")) done = unpack_words(packed, count, bitsPerValue, out);
#endif
  unpack_scalar(packed, done, count, bitsPerValue, out);
}

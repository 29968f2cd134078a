// DPF generation and evaluation over batches of keys. Every tree level of a chunk of keys is
// hashed with one call into the AES kernels, so the AES units see long independent streams
// (a single key's path is a serial chain of dependent AES calls and would run at latency).
//
// Correctness sketch (BGI 2016): at every node off the path to alpha both parties hold the
// same seed and control bit; on the path their control bits differ. The correction word of a
// level makes the two "lose" children equal and keeps the "keep" children different, and the
// leaf correction makes the two leaf blocks differ exactly in bit alpha mod 128.
// Comparison (Boyle et al., Grotto): along x's path, the left sibling at a level where x has a
// 1 is on alpha's path iff alpha agrees with x above that level and has a 0 there, i.e. iff
// alpha < x is decided at that level; at most one level (or the final leaf) decides it, so
// XOR-ing those siblings' control bits and the leaf bits below x's position gives [alpha < x].
#include "CVeilKernels.h"
#include "ccr_sigma.h"

#include <string.h>

enum { CHUNK = 512 };

typedef struct {
  uint64_t lo, hi;
} block;

static inline block xorb(block a, block b) { return (block){a.lo ^ b.lo, a.hi ^ b.hi}; }
static inline block andmask(block a, uint64_t bit) {
  uint64_t m = 0 - bit;
  return (block){a.lo & m, a.hi & m};
}
static inline block loadb(const uint8_t *p) {
  block b;
  memcpy(&b, p, 16);
  return b;
}
static inline void storeb(uint8_t *p, block b) { memcpy(p, &b, 16); }
static inline uint64_t lowbit(block b) { return b.lo & 1; }
static inline block clearlow(block b) { return (block){b.lo & ~(uint64_t)1, b.hi}; }
static inline uint64_t leafbit(block b, unsigned pos) { return pos < 64 ? (b.lo >> pos) & 1 : (b.hi >> (pos - 64)) & 1; }

// A point evaluation's output share from its leaf block: the leaf's bit at x (equality), or the
// comparison accumulator XOR the parity of the leaf bits below x (less-than).
static inline uint8_t point_output(block leaf, uint64_t x, unsigned accBit, int lessThan) {
  unsigned pos = (unsigned)(x & 127);
  if (!lessThan) return (uint8_t)leafbit(leaf, pos);
  uint64_t lo = pos >= 64 ? leaf.lo : (pos == 0 ? 0 : leaf.lo & (((uint64_t)1 << pos) - 1));
  uint64_t hi = pos <= 64 ? 0 : leaf.hi & (((uint64_t)1 << (pos - 64)) - 1);
  return (uint8_t)(accBit ^ (__builtin_popcountll(lo ^ hi) & 1));
}

static void hash(veil_aes_kernel kernel, const veil_aes128_key *key, const block *in, block *out, size_t n) {
  veil_ccr_hash(kernel, key, (const uint8_t *)in, (uint8_t *)out, n);
}

void veil_dpf_gen(veil_aes_kernel kernel, const veil_aes128_key prg[3], size_t depth, size_t n,
                  const uint64_t *alphas, uint8_t *roots0, uint8_t *roots1, uint8_t *cwSeeds,
                  uint8_t *cwBits, uint8_t *leafCW, uint8_t *signBits) {
  const size_t bits = depth + 7;
  block s[2][CHUNK], l[2][CHUNK], r[2][CHUNK];
  uint8_t t[2][CHUNK];
  if (depth == 0) {
    // Domains of at most 7 bits: a secret-shared truth table of e_alpha, no PRG calls.
    for (size_t i = 0; i < n; i++) {
      unsigned pos = (unsigned)(alphas[i] & 127);
      block unit = pos < 64 ? (block){(uint64_t)1 << pos, 0} : (block){0, (uint64_t)1 << (pos - 64)};
      block share0 = loadb(roots0 + 16 * i);
      storeb(roots1 + 16 * i, xorb(share0, unit));
      memset(leafCW + 16 * i, 0, 16);
      signBits[i] = (uint8_t)leafbit(share0, pos);
    }
    return;
  }
  for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
    size_t cn = n - c0 < CHUNK ? n - c0 : CHUNK;
    for (size_t j = 0; j < cn; j++) {
      s[0][j] = clearlow(loadb(roots0 + 16 * (c0 + j)));
      s[1][j] = clearlow(loadb(roots1 + 16 * (c0 + j)));
      storeb(roots0 + 16 * (c0 + j), s[0][j]);
      storeb(roots1 + 16 * (c0 + j), s[1][j]);
      t[0][j] = 0;
      t[1][j] = 1;
    }
    for (size_t level = 0; level < depth; level++) {
      for (int b = 0; b < 2; b++) {
        hash(kernel, &prg[0], s[b], l[b], cn);
        hash(kernel, &prg[1], s[b], r[b], cn);
      }
      for (size_t j = 0; j < cn; j++) {
        uint64_t a = (alphas[c0 + j] >> (bits - 1 - level)) & 1;
        uint64_t tl0 = lowbit(l[0][j]), tl1 = lowbit(l[1][j]);
        uint64_t tr0 = lowbit(r[0][j]), tr1 = lowbit(r[1][j]);
        block lose0 = clearlow(a ? l[0][j] : r[0][j]), lose1 = clearlow(a ? l[1][j] : r[1][j]);
        block scw = xorb(lose0, lose1);
        uint64_t tlcw = tl0 ^ tl1 ^ a ^ 1;
        uint64_t trcw = tr0 ^ tr1 ^ a;
        size_t at = level * n + c0 + j;
        storeb(cwSeeds + 16 * at, scw);
        cwBits[at] = (uint8_t)(tlcw | (trcw << 1));
        uint64_t tkcw = a ? trcw : tlcw;
        for (int b = 0; b < 2; b++) {
          block keep = clearlow(a ? r[b][j] : l[b][j]);
          uint64_t tkeep = a ? lowbit(r[b][j]) : lowbit(l[b][j]);
          s[b][j] = xorb(keep, andmask(scw, t[b][j]));
          t[b][j] = (uint8_t)(tkeep ^ (t[b][j] & tkcw));
        }
      }
    }
    hash(kernel, &prg[2], s[0], l[0], cn);
    hash(kernel, &prg[2], s[1], l[1], cn);
    for (size_t j = 0; j < cn; j++) {
      unsigned pos = (unsigned)(alphas[c0 + j] & 127);
      block unit = pos < 64 ? (block){(uint64_t)1 << pos, 0} : (block){0, (uint64_t)1 << (pos - 64)};
      block cw = xorb(xorb(l[0][j], l[1][j]), unit);
      storeb(leafCW + 16 * (c0 + j), cw);
      block leaf0 = xorb(l[0][j], andmask(cw, t[0][j]));
      signBits[c0 + j] = (uint8_t)leafbit(leaf0, pos);
    }
  }
}

#if defined(__x86_64__)
#include <immintrin.h>

// One tree level for 8 keys at a time (keys j … j+7 of the chunk): pick each key's child by
// its path bit, apply the parent's seed and control-bit corrections, and fold the left
// sibling's control bit into the comparison accumulator where the path goes right. Control
// bits and accumulators travel as one byte per 8 keys, so the bit logic is a few word
// operations; seeds move 4 per zmm register. Returns how many keys it handled.
__attribute__((target("avx512f,bmi2"))) static size_t level_avx512(size_t cn, unsigned shift, const uint64_t *points,
                                                                   const block *left, const block *right,
                                                                   const uint8_t *levelSeeds, const uint8_t *levelBits,
                                                                   block *s, uint8_t *t, uint8_t *acc) {
  const __m512i clear = _mm512_set_epi64(-1, -2, -1, -2, -1, -2, -1, -2);
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i shiftv = _mm512_set1_epi64((long long)shift);
  size_t j = 0;
  for (; j + 8 <= cn; j += 8) {
    __m512i p = _mm512_loadu_si512((const void *)(points + j));
    unsigned r = (unsigned)_mm512_test_epi64_mask(_mm512_srlv_epi64(p, shiftv), one);
    unsigned tk = t[j / 8];
    uint64_t cbWord;
    memcpy(&cbWord, levelBits + j, 8);
    unsigned cbL = (unsigned)_pext_u64(cbWord, 0x0101010101010101ull);
    unsigned cbR = (unsigned)_pext_u64(cbWord, 0x0202020202020202ull);
    unsigned childLow = 0, leftLow = 0;
    for (unsigned half = 0; half < 2; half++) {
      size_t b = j + 4 * half;
      __mmask8 rm = (__mmask8)(_pdep_u32((r >> (4 * half)) & 0xF, 0x55) * 3);
      __mmask8 tm = (__mmask8)(_pdep_u32((tk >> (4 * half)) & 0xF, 0x55) * 3);
      __m512i l = _mm512_loadu_si512((const void *)(left + b));
      __m512i child = _mm512_mask_blend_epi64(rm, l, _mm512_loadu_si512((const void *)(right + b)));
      __m512i cw = _mm512_maskz_loadu_epi64(tm, (const void *)(levelSeeds + 16 * b));
      _mm512_storeu_si512((void *)(s + b), _mm512_xor_si512(_mm512_and_si512(child, clear), cw));
      childLow |= (unsigned)_pext_u32(_mm512_test_epi64_mask(child, one), 0x55) << (4 * half);
      leftLow |= (unsigned)_pext_u32(_mm512_test_epi64_mask(l, one), 0x55) << (4 * half);
    }
    unsigned tcw = (r & cbR) | (~r & cbL);
    t[j / 8] = (uint8_t)(childLow ^ (tk & tcw));
    acc[j / 8] ^= (uint8_t)(r & (leftLow ^ (tk & cbL)));
  }
  return j;
}
#endif

static inline unsigned getbit(const uint8_t *bits, size_t j) { return (bits[j / 8] >> (j % 8)) & 1; }
static inline void putbit(uint8_t *bits, size_t j, unsigned v) {
  bits[j / 8] = (uint8_t)((bits[j / 8] & ~(1u << (j % 8))) | ((v & 1) << (j % 8)));
}

#if defined(__x86_64__)
// Point evaluation of up to 256 keys per block, level by level, with both children of up to
// 16 seeds at a time computed as up to 8 independent AES chains sharing one σ and consumed in
// registers: the child choice, the correction word and the control and comparison bits are
// lane masks (each key's bit duplicated over its block's two 64-bit lanes), and only the
// seeds, control and comparison masks go back to a 4 KiB state between levels. Walking a
// block level by level reads each level's correction words contiguously (a key-by-key walk
// would read them n keys apart, and with n a power of two every level lands in the same cache
// sets). Several points of one key (a DReLU key at its offsets) share the key's loads. Needs
// depth ≥ 1.
enum { FUSED = 16, FUSED_REGS = FUSED / 4, FUSED_BLOCK = 256 };

// The low bit of each block, as a mask over both of its lanes.
__attribute__((target("avx512f"))) static inline __mmask8 lowbits_z(__m512i x) {
  return _mm512_test_epi64_mask(_mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0x44), _mm512_set1_epi64(1));
}

// One bit per key from a lane mask (its even lanes).
static inline unsigned keybits(__mmask8 m) {
  unsigned v = m & 0x55;
  v = (v | (v >> 1)) & 0x33;
  return (v | (v >> 2)) & 0x0F;
}

// Four bytes (one per key or node), each widened to its block's two 64-bit lanes.
__attribute__((target("avx512f"))) static inline __m512i byte_lanes(const uint8_t *bytes) {
  uint32_t four;
  memcpy(&four, bytes, 4);
  return _mm512_permutexvar_epi64(_mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0),
                                  _mm512_cvtepu8_epi64(_mm_cvtsi32_si128((int)four)));
}

// The evaluations of one call: `pointsPerKey` points per key (points and out are key-major),
// of which this pass takes points p0 … p0 + PQ − 1.
typedef struct {
  int party;
  size_t depth, n, stride, p0;
  const uint8_t *roots, *cwSeeds, *cwBits, *leafCW;
  const uint64_t *points;
  int lessThan;
  uint8_t *out;
} point_job;

// K4 groups of 4 keys × PQ points per unit (K4·PQ ≤ 4 registers a side, 2·K4·PQ AES chains); a
// key group's correction word and control-bit corrections are loaded and decoded once for its
// PQ points. Inlined with constant K4 and PQ so the chains live in registers.
__attribute__((target("avx512f,vaes,aes,sse4.1"), always_inline)) static inline size_t fused_points(
    const int K4, const int PQ, const veil_aes128_key prg[3], const point_job *job, size_t first, size_t count) {
  __m512i kl[11], kr[11], kv[11];
  for (int r = 0; r < 11; r++) {
    kl[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)prg[0].roundKeys[r]));
    kr[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)prg[1].roundKeys[r]));
    kv[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)prg[2].roundKeys[r]));
  }
  const __m512i clear = _mm512_set_epi64(-1, -2, -1, -2, -1, -2, -1, -2);
  const __m512i one = _mm512_set1_epi64(1), two = _mm512_set1_epi64(2);
  const size_t depth = job->depth, n = job->n, bits = depth + 7, unitKeys = 4 * (size_t)K4;
  block seedState[4][FUSED_BLOCK];
  uint64_t pathPoints[4][2 * FUSED_BLOCK];  // each key's point twice (its block's two lanes)
  __mmask8 tState[4][FUSED_BLOCK / 4], accState[4][FUSED_BLOCK / 4];
  const size_t total = count - count % unitKeys;
  for (size_t b0 = 0; b0 < total; b0 += FUSED_BLOCK) {
    const size_t c0 = first + b0, bn = total - b0 < FUSED_BLOCK ? total - b0 : FUSED_BLOCK;
    for (int p = 0; p < PQ; p++) {
      memcpy(seedState[p], job->roots + 16 * c0, 16 * bn);
      for (size_t j = 0; j < bn; j++) {
        uint64_t x = job->points[(c0 + j) * job->stride + job->p0 + (size_t)p];
        pathPoints[p][2 * j] = pathPoints[p][2 * j + 1] = x;
      }
      memset(tState[p], job->party ? 0xFF : 0, bn / 4);
      memset(accState[p], 0, bn / 4);
    }
    for (size_t level = 0; level < depth; level++) {
      const __m512i bit = _mm512_set1_epi64((long long)((uint64_t)1 << (bits - 1 - level)));
      const uint8_t *levelSeeds = job->cwSeeds + 16 * (level * n + c0);
      const uint8_t *levelBits = job->cwBits + level * n + c0;
      if (level + 1 < depth) {
        for (size_t j = 0; j < bn; j += 4) __builtin_prefetch(levelSeeds + 16 * n + 16 * j);
        for (size_t j = 0; j < bn; j += 64) __builtin_prefetch(levelBits + n + j);
      }
      for (size_t u = 0; u < bn; u += unitKeys) {
        __m512i x[4], l[4], r[4];
        for (int kq = 0; kq < K4; kq++)
          for (int p = 0; p < PQ; p++) {
            const int g = kq * PQ + p;
            x[g] = ccr_sigma512(_mm512_loadu_si512((const void *)(seedState[p] + u + 4 * kq)));
            l[g] = _mm512_xor_si512(x[g], kl[0]);
            r[g] = _mm512_xor_si512(x[g], kr[0]);
          }
        for (int round = 1; round < 10; round++) {
          for (int g = 0; g < K4 * PQ; g++) {
            l[g] = _mm512_aesenc_epi128(l[g], kl[round]);
            r[g] = _mm512_aesenc_epi128(r[g], kr[round]);
          }
        }
        for (int kq = 0; kq < K4; kq++) {
          const size_t q = (u >> 2) + (size_t)kq;  // the group of 4 keys in the block
          __m512i cbv = byte_lanes(levelBits + 4 * q);
          const __mmask8 cbL = _mm512_test_epi64_mask(cbv, one), cbR = _mm512_test_epi64_mask(cbv, two);
          const __m512i cwAll = _mm512_loadu_si512((const void *)(levelSeeds + 64 * q));
          for (int p = 0; p < PQ; p++) {
            const int g = kq * PQ + p;
            l[g] = _mm512_xor_si512(_mm512_aesenclast_epi128(l[g], kl[10]), x[g]);
            r[g] = _mm512_xor_si512(_mm512_aesenclast_epi128(r[g], kr[10]), x[g]);
            __mmask8 goRight =
                _mm512_test_epi64_mask(_mm512_loadu_si512((const void *)(pathPoints[p] + 8 * q)), bit);
            __mmask8 t = tState[p][q];
            __m512i child = _mm512_mask_blend_epi64(goRight, l[g], r[g]);
            __m512i cw = _mm512_maskz_mov_epi64(t, cwAll);
            __mmask8 tcw = (__mmask8)((goRight & cbR) | (~goRight & cbL));
            accState[p][q] ^= (__mmask8)(goRight & (lowbits_z(l[g]) ^ (t & cbL)));
            tState[p][q] = (__mmask8)(lowbits_z(child) ^ (t & tcw));
            _mm512_storeu_si512((void *)(seedState[p] + 4 * q), _mm512_xor_si512(_mm512_and_si512(child, clear), cw));
          }
        }
      }
    }
    // The leaves: H_V(s) ⊕ (t ? leaf correction : 0), then the output bits.
    for (size_t u = 0; u < bn; u += unitKeys) {
      __m512i x[4], v[4];
      for (int kq = 0; kq < K4; kq++)
        for (int p = 0; p < PQ; p++) {
          const int g = kq * PQ + p;
          x[g] = ccr_sigma512(_mm512_loadu_si512((const void *)(seedState[p] + u + 4 * kq)));
          v[g] = _mm512_xor_si512(x[g], kv[0]);
        }
      for (int round = 1; round < 10; round++)
        for (int g = 0; g < K4 * PQ; g++) v[g] = _mm512_aesenc_epi128(v[g], kv[round]);
      for (int kq = 0; kq < K4; kq++) {
        const size_t q = (u >> 2) + (size_t)kq;
        const __m512i cwAll = _mm512_loadu_si512((const void *)(job->leafCW + 16 * (c0 + 4 * q)));
        for (int p = 0; p < PQ; p++) {
          const int g = kq * PQ + p;
          v[g] = _mm512_xor_si512(_mm512_aesenclast_epi128(v[g], kv[10]), x[g]);
          _mm512_storeu_si512((void *)(seedState[p] + 4 * q),
                              _mm512_xor_si512(v[g], _mm512_maskz_mov_epi64(tState[p][q], cwAll)));
        }
      }
    }
    for (int p = 0; p < PQ; p++) {
      for (size_t j = 0; j < bn; j++) {
        unsigned accBit = (keybits(accState[p][j / 4]) >> (j % 4)) & 1;
        job->out[(c0 + j) * job->stride + job->p0 + (size_t)p] =
            point_output(seedState[p][j], pathPoints[p][2 * j], accBit, job->lessThan);
      }
    }
  }
  return total;
}

// Evaluates points p0 … p0 + pq − 1 (pq ≤ 4) of every key in whole units; returns how many keys.
__attribute__((target("avx512f,vaes,aes,sse4.1"))) static size_t eval_points_fused(
    const veil_aes128_key prg[3], const point_job *job, size_t pq, size_t first, size_t count) {
  switch (pq) {
  case 1: return fused_points(4, 1, prg, job, first, count);
  case 2: return fused_points(2, 2, prg, job, first, count);
  case 3: return fused_points(1, 3, prg, job, first, count);
  default: return fused_points(1, 4, prg, job, first, count);
  }
}
#endif

// Point p of keys [first, first + count) (points and out key-major with `stride` points a key),
// CHUNK keys at a time: both children of every seed by the AES kernel, then the child choice.
static void eval_points_chunked(veil_aes_kernel kernel, const veil_aes128_key prg[3], const point_job *job,
                                size_t p, size_t first, size_t count) {
  const size_t depth = job->depth, n = job->n, bits = depth + 7, end = first + count;
  block s[CHUNK], left[CHUNK], right[CHUNK];
  uint64_t points[CHUNK];
  // Control bits and comparison accumulators, one bit per key.
  uint8_t t[CHUNK / 8], acc[CHUNK / 8];
#if defined(__x86_64__)
  const int wide = (veil_cpu_features() & VEIL_CPU_AVX512F) && __builtin_cpu_supports("bmi2");
#endif
  for (size_t c0 = first; c0 < end; c0 += CHUNK) {
    size_t cn = end - c0 < CHUNK ? end - c0 : CHUNK;
    for (size_t j = 0; j < cn; j++) {
      s[j] = loadb(job->roots + 16 * (c0 + j));
      points[j] = job->points[(c0 + j) * job->stride + p];
    }
    memset(t, job->party ? 0xFF : 0, sizeof t);
    memset(acc, 0, sizeof acc);
    for (size_t level = 0; level < depth; level++) {
      unsigned shift = (unsigned)(bits - 1 - level);
      // Both children of every node: with VAES an AES call costs about a cycle, less than
      // compacting the batch into left- and right-goers (the path bits are random, so any
      // branch on them mispredicts half the time).
      hash(kernel, &prg[0], s, left, cn);
      hash(kernel, &prg[1], s, right, cn);
      const uint8_t *levelSeeds = job->cwSeeds + 16 * (level * n + c0);
      const uint8_t *levelBits = job->cwBits + level * n + c0;
      // Each level's correction words sit n keys apart: too many streams for the hardware
      // prefetcher, so fetch the next level's while this one is processed.
      const uint8_t *nextSeeds = level + 1 < depth ? levelSeeds + 16 * n : job->leafCW + 16 * c0;
      for (size_t j = 0; j < cn; j += 4) __builtin_prefetch(nextSeeds + 16 * j);
      size_t j = 0;
#if defined(__x86_64__)
      if (wide) j = level_avx512(cn, shift, points, left, right, levelSeeds, levelBits, s, t, acc);
#endif
      for (; j < cn; j++) {
        uint64_t r = (points[j] >> shift) & 1, m = 0 - r;
        uint64_t tj = getbit(t, j), cb = levelBits[j];
        block l = left[j], rr = right[j];
        block child = {(rr.lo & m) | (l.lo & ~m), (rr.hi & m) | (l.hi & ~m)};
        uint64_t tcw = (cb >> r) & 1;
        putbit(acc, j, getbit(acc, j) ^ (unsigned)(r & (lowbit(l) ^ (tj & cb & 1))));
        s[j] = xorb(clearlow(child), andmask(loadb(levelSeeds + 16 * j), tj));
        putbit(t, j, (unsigned)(lowbit(child) ^ (tj & tcw)));
      }
    }
    if (depth > 0) hash(kernel, &prg[2], s, left, cn);
    for (size_t j = 0; j < cn; j++) {
      block leaf = depth == 0 ? s[j] : xorb(left[j], andmask(loadb(job->leafCW + 16 * (c0 + j)), getbit(t, j)));
      job->out[(c0 + j) * job->stride + p] = point_output(leaf, points[j], getbit(acc, j), job->lessThan);
    }
  }
}

void veil_dpf_eval_points(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth,
                          size_t n, size_t first, size_t count, const uint8_t *roots, const uint8_t *cwSeeds,
                          const uint8_t *cwBits, const uint8_t *leafCW, const uint64_t *points,
                          size_t pointsPerKey, int lessThan, uint8_t *out) {
  point_job job = {party, depth, n, pointsPerKey, 0, roots, cwSeeds, cwBits, leafCW, points, lessThan, out};
#if defined(__x86_64__)
  const int fused = kernel == VEIL_AES_VAES512 && veil_aes_kernel_available(VEIL_AES_VAES512) && depth > 0;
#endif
  // Up to 4 points of every key per pass; whole units take the fused kernel, the rest of the
  // keys the chunked path.
  for (size_t p0 = 0; p0 < pointsPerKey; p0 += 4) {
    const size_t pq = pointsPerKey - p0 < 4 ? pointsPerKey - p0 : 4;
    size_t done = 0;
    job.p0 = p0;
#if defined(__x86_64__)
    if (fused) done = eval_points_fused(prg, &job, pq, first, count);
#endif
    for (size_t p = p0; p < p0 + pq; p++)
      if (done < count) eval_points_chunked(kernel, prg, &job, p, first + done, count - done);
  }
}

#if defined(__x86_64__)
// `groups` groups of 4 nodes from node i0 of one full-domain level (see expand_level_fused);
// inlined with a constant `groups` so the chains live in registers.
__attribute__((target("avx512f,vaes,aes,sse4.1,bmi2"), always_inline)) static inline void expand_unit(
    const int groups, size_t i0, const __m512i *kl, const __m512i *kr, size_t level, size_t n, size_t c0,
    unsigned widthLog, const uint8_t *cwSeeds, const uint8_t *cwBits, const block *cur, const uint8_t *tcur,
    block *next, uint8_t *tnext) {
  const __m512i clear = _mm512_set_epi64(-1, -2, -1, -2, -1, -2, -1, -2);
  const __m512i first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  __m512i x[FUSED_REGS], l[FUSED_REGS], r[FUSED_REGS];
  for (int g = 0; g < groups; g++) {
    x[g] = ccr_sigma512(_mm512_loadu_si512((const void *)(cur + i0 + 4 * g)));
    l[g] = _mm512_xor_si512(x[g], kl[0]);
    r[g] = _mm512_xor_si512(x[g], kr[0]);
  }
  for (int round = 1; round < 10; round++) {
    for (int g = 0; g < groups; g++) {
      l[g] = _mm512_aesenc_epi128(l[g], kl[round]);
      r[g] = _mm512_aesenc_epi128(r[g], kr[round]);
    }
  }
  for (int g = 0; g < groups; g++) {
    const size_t i = i0 + 4 * (size_t)g, at = level * n + c0 + (i >> widthLog);
    l[g] = _mm512_xor_si512(_mm512_aesenclast_epi128(l[g], kl[10]), x[g]);
    r[g] = _mm512_xor_si512(_mm512_aesenclast_epi128(r[g], kr[10]), x[g]);
    __mmask8 t = _mm512_test_epi64_mask(byte_lanes(tcur + i), _mm512_set1_epi64(1));
    __m512i cw = _mm512_maskz_mov_epi64(t, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(cwSeeds + 16 * at))));
    const unsigned cb = cwBits[at];
    __mmask8 tl = (__mmask8)(lowbits_z(l[g]) ^ (t & (cb & 1 ? 0xFF : 0)));
    __mmask8 tr = (__mmask8)(lowbits_z(r[g]) ^ (t & (cb & 2 ? 0xFF : 0)));
    __m512i lc = _mm512_xor_si512(_mm512_and_si512(l[g], clear), cw);
    __m512i rc = _mm512_xor_si512(_mm512_and_si512(r[g], clear), cw);
    _mm512_storeu_si512((void *)(next + 2 * i), _mm512_permutex2var_epi64(lc, first, rc));
    _mm512_storeu_si512((void *)(next + 2 * i + 4), _mm512_permutex2var_epi64(lc, second, rc));
    uint64_t bytes = _pdep_u64(keybits(tl), 0x0001000100010001ull) | _pdep_u64(keybits(tr), 0x0100010001000100ull);
    memcpy(tnext + 2 * i, &bytes, 8);
  }
}

// One full-domain level of `cn` keys with `width` ≥ 4 nodes each, in one pass: 16 nodes at a
// time, both children as 8 VAES chains sharing one σ, corrected in registers and written
// child-major (node k's children at 2k, 2k + 1) into `next`, with their control bytes.
__attribute__((target("avx512f,vaes,aes,sse4.1,bmi2"))) static void expand_level_fused(
    const veil_aes128_key prg[2], size_t level, size_t n, size_t c0, size_t cn, size_t width,
    const uint8_t *cwSeeds, const uint8_t *cwBits, const block *cur, const uint8_t *tcur, block *next,
    uint8_t *tnext) {
  __m512i kl[11], kr[11];
  for (int r = 0; r < 11; r++) {
    kl[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)prg[0].roundKeys[r]));
    kr[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)prg[1].roundKeys[r]));
  }
  const unsigned widthLog = (unsigned)__builtin_ctzll(width);
  const size_t total = cn * width;
  size_t i0 = 0;
  for (; i0 + FUSED <= total; i0 += FUSED)
    expand_unit(FUSED_REGS, i0, kl, kr, level, n, c0, widthLog, cwSeeds, cwBits, cur, tcur, next, tnext);
  for (; i0 < total; i0 += 4)
    expand_unit(1, i0, kl, kr, level, n, c0, widthLog, cwSeeds, cwBits, cur, tcur, next, tnext);
}

// `groups` groups of 4 leaves from node i0 (see leaves_fused).
__attribute__((target("avx512f,vaes,aes,sse4.1"), always_inline)) static inline void leaf_unit(
    const int groups, size_t i0, const __m512i *kv, size_t c0, unsigned widthLog, const uint8_t *leafCW,
    const block *cur, const uint8_t *tcur, block *out) {
  __m512i x[FUSED_REGS], v[FUSED_REGS];
  for (int g = 0; g < groups; g++) {
    x[g] = ccr_sigma512(_mm512_loadu_si512((const void *)(cur + i0 + 4 * g)));
    v[g] = _mm512_xor_si512(x[g], kv[0]);
  }
  for (int round = 1; round < 10; round++)
    for (int g = 0; g < groups; g++) v[g] = _mm512_aesenc_epi128(v[g], kv[round]);
  for (int g = 0; g < groups; g++) {
    const size_t i = i0 + 4 * (size_t)g;
    __mmask8 t = _mm512_test_epi64_mask(byte_lanes(tcur + i), _mm512_set1_epi64(1));
    __m512i cw = _mm512_maskz_mov_epi64(
        t, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(leafCW + 16 * (c0 + (i >> widthLog))))));
    v[g] = _mm512_xor_si512(_mm512_xor_si512(_mm512_aesenclast_epi128(v[g], kv[10]), x[g]), cw);
    _mm512_storeu_si512((void *)(out + i), v[g]);
  }
}

// The leaves of `cn` keys with `width` ≥ 4 nodes each: H_V(s) ⊕ (t ? leaf correction : 0), into
// `out` (which may be `cur`: each unit is read before it is written).
__attribute__((target("avx512f,vaes,aes,sse4.1"))) static void leaves_fused(
    const veil_aes128_key *prg, size_t c0, size_t cn, size_t width, const uint8_t *leafCW, const block *cur,
    const uint8_t *tcur, block *out) {
  __m512i kv[11];
  for (int r = 0; r < 11; r++) kv[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)prg->roundKeys[r]));
  const unsigned widthLog = (unsigned)__builtin_ctzll(width);
  const size_t total = cn * width;
  size_t i0 = 0;
  for (; i0 + FUSED <= total; i0 += FUSED) leaf_unit(FUSED_REGS, i0, kv, c0, widthLog, leafCW, cur, tcur, out);
  for (; i0 < total; i0 += 4) leaf_unit(1, i0, kv, c0, widthLog, leafCW, cur, tcur, out);
}
#endif

// Expands `cn` keys (starting at key c0 of the batch) to their leaf blocks, key-major:
// leaves[j · 2^depth + k] is leaf k of key c0 + j. nodes must hold cn · 2^depth blocks. Levels
// of at least 4 nodes per key take the fused VAES pass, ping-ponging between nodes and scratch.
static void expand_all(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth, size_t n,
                       size_t c0, size_t cn, const uint8_t *roots, const uint8_t *cwSeeds, const uint8_t *cwBits,
                       const uint8_t *leafCW, block *nodes, block *scratch, uint8_t *tbits, uint8_t *tscratch) {
#if defined(__x86_64__)
  const int fused = kernel == VEIL_AES_VAES512 && veil_aes_kernel_available(VEIL_AES_VAES512) &&
                    __builtin_cpu_supports("bmi2");
#else
  const int fused = 0;
#endif
  for (size_t j = 0; j < cn; j++) {
    nodes[j] = loadb(roots + 16 * (c0 + j));
    tbits[j] = (uint8_t)party;
  }
  block *cur = nodes, *spare = scratch;
  uint8_t *tcur = tbits, *tspare = tscratch;
  size_t width = 1;
  for (size_t level = 0; level < depth; level++) {
#if defined(__x86_64__)
    if (fused && width >= 4) {
      expand_level_fused(prg, level, n, c0, cn, width, cwSeeds, cwBits, cur, tcur, spare, tspare);
      block *b = cur;
      cur = spare;
      spare = b;
      uint8_t *tb = tcur;
      tcur = tspare;
      tspare = tb;
      width *= 2;
      continue;
    }
#endif
    size_t count = cn * width;
    // spare receives left children in [0, count) and right children in [count, 2count).
    hash(kernel, &prg[0], cur, spare, count);
    hash(kernel, &prg[1], cur, spare + count, count);
    for (size_t j = 0; j < cn; j++) {
      size_t at = level * n + c0 + j;
      block scw = loadb(cwSeeds + 16 * at);
      uint8_t cb = cwBits[at];
      for (size_t k = 0; k < width; k++) {
        size_t idx = j * width + k;
        uint64_t tp = tcur[idx];
        block l = spare[idx], r = spare[count + idx];
        size_t child = j * 2 * width + 2 * k;
        cur[child] = xorb(clearlow(l), andmask(scw, tp));
        cur[child + 1] = xorb(clearlow(r), andmask(scw, tp));
        tspare[child] = (uint8_t)(lowbit(l) ^ (tp & cb & 1));
        tspare[child + 1] = (uint8_t)(lowbit(r) ^ (tp & (cb >> 1)));
      }
    }
    // cur was overwritten in place child-major; only the t bits need the swap.
    memcpy(tcur, tspare, cn * 2 * width);
    width *= 2;
  }
  if (depth == 0) return;  // the roots are the truth-table shares
#if defined(__x86_64__)
  if (fused && width >= 4) {
    leaves_fused(&prg[2], c0, cn, width, leafCW, cur, tcur, nodes);
    return;
  }
#endif
  size_t count = cn * width;
  hash(kernel, &prg[2], cur, spare, count);
  for (size_t j = 0; j < cn; j++) {
    block cw = loadb(leafCW + 16 * (c0 + j));
    for (size_t k = 0; k < width; k++) {
      size_t idx = j * width + k;
      nodes[idx] = xorb(spare[idx], andmask(cw, tcur[idx]));
    }
  }
}

/// Keys per chunk in full-domain evaluation: about 4096 leaves per chunk (64 KiB of nodes).
static size_t all_chunk(size_t depth) {
  size_t leaves = (size_t)1 << depth;
  return leaves >= 4096 ? 1 : 4096 / leaves;
}

size_t veil_dpf_workspace_size(size_t depth) {
  size_t blocks = all_chunk(depth) << depth;
  // nodes and scratch blocks, two control-bit arrays, and the doubled reversed table of lookups.
  return blocks * 16 * 2 + blocks * 2 + ((size_t)16 << (depth + 7)) + 64;
}

#if defined(__x86_64__)
#include <immintrin.h>
// Σ_y bit(y) · rev[start + y] over the 2^(depth+7) bits of one key's leaves, 8 lanes a step.
__attribute__((target("avx512f"))) static uint64_t masked_dot_avx512(const block *leaves, size_t leafCount,
                                                                   const uint64_t *rev) {
  __m512i acc = _mm512_setzero_si512();
  for (size_t k = 0; k < leafCount; k++) {
    uint64_t words[2] = {leaves[k].lo, leaves[k].hi};
    for (int w = 0; w < 2; w++)
      for (int q = 0; q < 8; q++) {
        __mmask8 m = (__mmask8)(words[w] >> (8 * q));
        acc = _mm512_mask_add_epi64(acc, m, acc, _mm512_loadu_si512((const void *)(rev + k * 128 + w * 64 + q * 8)));
      }
  }
  return (uint64_t)_mm512_reduce_add_epi64(acc);
}
#endif

void veil_dpf_eval_all(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth,
                       size_t n, const uint8_t *roots, const uint8_t *cwSeeds, const uint8_t *cwBits,
                       const uint8_t *leafCW, void *workspace, uint8_t *out) {
  size_t chunk = all_chunk(depth), leaves = (size_t)1 << depth;
  block *nodes = (block *)workspace, *scratch = nodes + (chunk << depth);
  uint8_t *tbits = (uint8_t *)(scratch + (chunk << depth)), *tscratch = tbits + (chunk << depth);
  for (size_t c0 = 0; c0 < n; c0 += chunk) {
    size_t cn = n - c0 < chunk ? n - c0 : chunk;
    expand_all(kernel, prg, party, depth, n, c0, cn, roots, cwSeeds, cwBits, leafCW, nodes, scratch, tbits, tscratch);
    memcpy(out + c0 * leaves * 16, nodes, cn * leaves * 16);
  }
}

void veil_dpf_lut(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth, size_t n,
                  size_t first, size_t count, const uint8_t *roots, const uint8_t *cwSeeds, const uint8_t *cwBits, const uint8_t *leafCW,
                  const uint64_t *xhat, const uint64_t *table, void *workspace, uint64_t *ones, uint64_t *dot) {
  size_t chunk = all_chunk(depth), leaves = (size_t)1 << depth;
  uint64_t domain = leaves << 7, domainMask = domain - 1;
  block *nodes = (block *)workspace, *scratch = nodes + (chunk << depth);
  uint8_t *tbits = (uint8_t *)(scratch + (chunk << depth)), *tscratch = tbits + (chunk << depth);
  uint64_t *rev = (uint64_t *)(((uintptr_t)(tscratch + (chunk << depth)) + 63) & ~(uintptr_t)63);
  for (uint64_t i = 0; i < 2 * domain; i++) rev[i] = table[(domain - (i & domainMask)) & domainMask];
#if defined(__x86_64__)
  int wide = (veil_cpu_features() & VEIL_CPU_AVX512F) != 0;
#endif
  for (size_t c0 = first; c0 < first + count; c0 += chunk) {
    size_t cn = first + count - c0 < chunk ? first + count - c0 : chunk;
    expand_all(kernel, prg, party, depth, n, c0, cn, roots, cwSeeds, cwBits, leafCW, nodes, scratch, tbits, tscratch);
    for (size_t j = 0; j < cn; j++) {
      uint64_t x = xhat[c0 + j] & domainMask, count = 0, sum = 0;
      const block *leaves_ = nodes + j * leaves;
      for (size_t k = 0; k < leaves; k++)
        count += (uint64_t)__builtin_popcountll(leaves_[k].lo) + (uint64_t)__builtin_popcountll(leaves_[k].hi);
      // table[(x − y) mod D] = rev[((D − x) mod D) + y] with rev[i] = table[(D − i) mod D], i < 2D.
      const uint64_t *window = rev + ((domain - x) & domainMask);
#if defined(__x86_64__)
      if (wide) {
        sum = masked_dot_avx512(leaves_, leaves, window);
      } else
#endif
      {
        for (size_t k = 0; k < leaves; k++) {
          uint64_t words[2] = {leaves_[k].lo, leaves_[k].hi};
          for (int w = 0; w < 2; w++)
            for (unsigned p = 0; p < 64; p++) sum += ((words[w] >> p) & 1) * window[k * 128 + (size_t)w * 64 + p];
        }
      }
      ones[c0 + j] = count;
      dot[c0 + j] = sum;
    }
  }
}

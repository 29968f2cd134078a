// DPF generation and evaluation over batches of keys. Keys are walked a tile (256 keys) at a
// time, level by level, so the AES units see many independent streams (a single key's path is
// a serial chain of dependent AES calls and would run at latency) and the tile's correction
// words stream from one contiguous region. With VAES the fused kernels hash, correct and choose
// in registers; elsewhere every level of a tile is hashed with one call into the AES kernels.
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

// Keys per pass of the generic paths: one tile, so a pass reads each level's corrections as
// one contiguous row.
enum { TILE = VEIL_DPF_TILE };

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

// The tiled correction layout (CVeilKernels.h): keys in the tile starting at `start`, and the
// index of key `key`'s level-`level` entry.
static inline size_t tile_keys(size_t start, size_t n) { return n - start < TILE ? n - start : TILE; }
static inline size_t cw_at(size_t level, size_t key, size_t n, size_t depth) {
  size_t start = key & ~(size_t)(TILE - 1);
  return start * depth + level * tile_keys(start, n) + (key - start);
}
// The end of the run of keys from `key` that shares its tile, within [key, end).
static inline size_t run_end(size_t key, size_t end, size_t n) {
  size_t start = key & ~(size_t)(TILE - 1), stop = start + tile_keys(start, n);
  return stop < end ? stop : end;
}
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
  block s[2][TILE], l[2][TILE], r[2][TILE];
  uint8_t t[2][TILE];
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
  for (size_t c0 = 0; c0 < n; c0 += TILE) {
    size_t cn = tile_keys(c0, n);
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
        size_t at = cw_at(level, c0 + j, n, depth);
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
// Point evaluation of one run of up to 256 keys (one tile's), level by level, with both
// children of up to 16 seeds at a time computed as up to 8 independent AES chains sharing one
// σ and consumed in registers. A node is its seed with its control bit in the low bit; the
// child choice, the correction word's mask and the comparison bits are lane masks (each key's
// bit duplicated over its block's two 64-bit lanes), and only the nodes (and comparison
// accumulators) go back to a 4 KiB state between levels. The CCR hash's final ⊕ σ(s) is folded
// with the correction into one three-way XOR on the chosen child, so the vector unit's work per
// level is the first AES state (one ternary op, one shuffle, one more ternary op), one choice,
// two masked XORs, the three-way XOR and two bit tests, next to the 20 AES rounds of the two
// children. Several points of one key (a DReLU key at its offsets) share the key's loads.
// Needs depth ≥ 1.
enum { FUSED = 16, FUSED_REGS = FUSED / 4 };

// One bit per key from a lane mask (its even lanes).
static inline unsigned keybits(__mmask8 m) {
  unsigned v = m & 0x55;
  v = (v | (v >> 1)) & 0x33;
  return (v | (v >> 2)) & 0x0F;
}

// Bit `bit` of each of four bytes (one per key or node, little-endian in `four`), as a lane
// mask over each one's two lanes: `four` broadcast and tested against byte k's bit in lanes
// 2k and 2k + 1. (Vector work: the scalar PEXT/PDEP and mask moves it replaces made 8-bit
// evaluate-all 7 % slower.)
__attribute__((target("avx512f"))) static inline __mmask8 bit_lanes(uint32_t four, unsigned bit) {
  const __m512i at = _mm512_set_epi64(1 << 24, 1 << 24, 1 << 16, 1 << 16, 1 << 8, 1 << 8, 1, 1);
  return _mm512_test_epi64_mask(_mm512_set1_epi32((int)four), _mm512_slli_epi64(at, bit));
}
__attribute__((target("avx512f"))) static inline __mmask8 byte_bit_lanes(const uint8_t *bytes, unsigned bit) {
  uint32_t four;
  memcpy(&four, bytes, 4);
  return bit_lanes(four, bit);
}

// The low bit of each block, as a mask over both of its lanes: the low half copied to both
// lanes, then tested.
__attribute__((target("avx512f"))) static inline __mmask8 lowbits_z(__m512i x) {
  return _mm512_test_epi64_mask(_mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0x44), _mm512_set1_epi64(1));
}

// σ⁻¹ of a round key, for ccr_input: σ(lo, hi) = (hi, lo ⊕ hi), so σ⁻¹(p, q) = (p ⊕ q, p).
__attribute__((target("avx512f"))) static inline __m512i ccr_sigma_inverse512(__m512i k) {
  return _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(k, (_MM_PERM_ENUM)0x4E), k,
                                   _mm512_set_epi64(0, -1, 0, -1, 0, -1, 0, -1), 0x78);
}

// A node's first AES state, σ(s) ⊕ k0 with s the node with its control bit cleared, as
// σ(s ⊕ σ⁻¹(k0)) (σ is linear): the clear and the key fold into one ternary-logic operation.
// The CCR hash's final ⊕ σ(s) is then ⊕ this state ⊕ k0, folded by the callers into their
// corrections.
__attribute__((target("avx512f"))) static inline __m512i ccr_input(__m512i node, __m512i k0Inverse) {
  const __m512i clear = _mm512_set_epi64(-1, -2, -1, -2, -1, -2, -1, -2);
  return ccr_sigma512(_mm512_ternarylogic_epi64(node, clear, k0Inverse, 0x6A));  // (node ∧ clear) ⊕ k
}

// The 4 nodes at `at`: their control bits (a lane mask, into *t) and first AES state.
__attribute__((target("avx512f"))) static inline __m512i node_input(const block *at, __m512i k0Inverse,
                                                                    __mmask8 *t) {
  const __m512i node = _mm512_loadu_si512((const void *)at);
  *t = lowbits_z(node);
  return ccr_input(node, k0Inverse);
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

// The first AES states (ccr_input with σ⁻¹(k0) = kInverse) and control bits of the K4 · PQ
// register groups of the unit at key u: group kq · PQ + p holds keys u + 4kq … of point p.
__attribute__((target("avx512f"), always_inline)) static inline void unit_inputs(
    const int K4, const int PQ, const block *const from[4], size_t u, __m512i kInverse, __mmask8 tRoot, __m512i *x,
    __mmask8 *ts) {
  UNROLL for (int kq = 0; kq < K4; kq++)
    UNROLL for (int p = 0; p < PQ; p++) {
      x[kq * PQ + p] = node_input(from[p] + u + 4 * kq, kInverse, &ts[kq * PQ + p]);
      ts[kq * PQ + p] |= tRoot;
    }
}

// K4 groups of 4 keys × PQ points per unit (K4·PQ ≤ 4 registers a side, 2·K4·PQ AES chains); a
// key group's correction word and control-bit corrections are loaded and decoded once for its
// PQ points. Inlined with constant K4, PQ and LT (comparison) so the chains live in registers.
// Evaluates the whole units of the run [first, first + count) (one tile's keys); returns how
// many keys that is.
__attribute__((target("avx512f,avx512vpopcntdq,vaes,aes,sse4.1,bmi2"), always_inline)) static inline size_t fused_points(
    const int K4, const int PQ, const int LT, const veil_aes128_key prg[3], const point_job *job, size_t first,
    size_t count) {
  const size_t unitKeys = 4 * (size_t)K4, bn = count - count % unitKeys;
  if (bn == 0) return 0;
  __m512i kl[11], kr[11], kv[11];
  round_keys512(&prg[0], kl);
  round_keys512(&prg[1], kr);
  round_keys512(&prg[2], kv);
  const __m512i lowOne = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
  const __m512i klInverse = ccr_sigma_inverse512(kl[0]), kvInverse = ccr_sigma_inverse512(kv[0]);
  const __m512i keyDifference = _mm512_xor_si512(kl[0], kr[0]);
  const size_t depth = job->depth, n = job->n, bits = depth + 7, c0 = first;
  const size_t rowKeys = tile_keys(first & ~(size_t)(TILE - 1), n), at0 = cw_at(0, first, n, depth);
  // Each key's node: its seed with its control bit in the low bit (hashed with it cleared).
  block seedState[4][TILE];
  uint64_t pathPoints[4][2 * TILE];  // each key's point twice (its block's two lanes)
  // Comparison accumulators as blocks: the XOR of the left siblings (and their control-bit
  // corrections) where the path went right; the low bit is the share of [alpha < x] decided
  // above the leaf. One masked ternary XOR a level keeps this off the scalar registers.
  block accState[LT ? 4 : 1][LT ? TILE : 4];
  const __m512i pairs = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0);
  for (int p = 0; p < PQ; p++) {
    if (job->stride == 1) {
      for (size_t j = 0; j < bn; j += 4)
        _mm512_storeu_si512((void *)(pathPoints[p] + 2 * j),
                            _mm512_permutexvar_epi64(pairs, _mm512_castsi256_si512(_mm256_loadu_si256(
                                                                (const __m256i *)(job->points + c0 + j)))));
    } else {
      for (size_t j = 0; j < bn; j++) {
        uint64_t x = job->points[(c0 + j) * job->stride + job->p0 + (size_t)p];
        pathPoints[p][2 * j] = pathPoints[p][2 * j + 1] = x;
      }
    }
    if (LT) memset(accState[p], 0, 16 * bn);
  }
  // Prefetches are spread over the units, a unit's share each (up to 4 lines of the next
  // level's row, and during the first level the next run's roots, leaf corrections and points),
  // so that memory sees a steady stream. Issued as one burst per level or per run they fill
  // the core's miss queue, and the loads behind them wait: 16-bit point evaluation streamed
  // from memory ran 25 % slower that way (50-bit 10 %).
  const int prefetchNext = c0 + 2 * TILE <= n;
  const size_t next = c0 + TILE;
  for (size_t level = 0; level < depth; level++) {
    const __m512i bit = _mm512_set1_epi64((long long)((uint64_t)1 << (bits - 1 - level)));
    const uint8_t *levelSeeds = job->cwSeeds + 16 * (at0 + level * rowKeys);
    const uint8_t *levelBits = job->cwBits + at0 + level * rowKeys;
    // (The row after a run's last level is the next run's first: tiles are stored in order.)
    const uint8_t *nextSeeds = levelSeeds + 16 * rowKeys, *nextBits = levelBits + rowKeys;
    // The first level reads the roots in place: their low bits are clear, their control bit
    // is the party.
    const block *roots = (const block *)(const void *)(job->roots + 16 * c0);
    const block *const from[4] = {level ? seedState[0] : roots, level ? seedState[1] : roots,
                                  level ? seedState[2] : roots, level ? seedState[3] : roots};
    const __mmask8 tRoot = level == 0 && job->party ? 0xFF : 0;
    for (size_t u = 0; u < bn; u += unitKeys) {
      __m512i x[4], l[4], r[4];  // x: σ(s) ⊕ kl[0]
      __mmask8 ts[4];
      unit_inputs(K4, PQ, from, u, klInverse, tRoot, x, ts);
      for (size_t k = 0; k < unitKeys; k += 4) __builtin_prefetch(nextSeeds + 16 * (u + k));
      if (u % 64 == 0) __builtin_prefetch(nextBits + u);
      if (prefetchNext && level == 0) {
        for (size_t k = 0; k < unitKeys; k += 4) {
          __builtin_prefetch(job->roots + 16 * (next + u + k));
          __builtin_prefetch(job->leafCW + 16 * (next + u + k));
        }
        for (size_t k = 0; k < unitKeys * job->stride; k += 8)
          __builtin_prefetch(job->points + (next + u) * job->stride + k);
      }
      UNROLL for (int g = 0; g < K4 * PQ; g++) {
        l[g] = x[g];
        r[g] = _mm512_xor_si512(x[g], keyDifference);
      }
      UNROLL for (int round = 1; round < 10; round++) {
        UNROLL for (int g = 0; g < K4 * PQ; g++) {
          l[g] = _mm512_aesenc_epi128(l[g], kl[round]);
          r[g] = _mm512_aesenc_epi128(r[g], kr[round]);
        }
      }
      UNROLL for (int kq = 0; kq < K4; kq++) {
        const size_t q = (u >> 2) + (size_t)kq;  // the group of 4 keys in the run
        const __mmask8 cbL = byte_bit_lanes(levelBits + 4 * q, 0), cbR = byte_bit_lanes(levelBits + 4 * q, 1);
        const __m512i cwAll = _mm512_loadu_si512((const void *)(levelSeeds + 64 * q));
        UNROLL for (int p = 0; p < PQ; p++) {
          const int g = kq * PQ + p;
          // Raw AES outputs: the children are these ⊕ σ(s).
          l[g] = _mm512_aesenclast_epi128(l[g], kl[10]);
          r[g] = _mm512_aesenclast_epi128(r[g], kr[10]);
          const __mmask8 goRight =
              _mm512_test_epi64_mask(_mm512_loadu_si512((const void *)(pathPoints[p] + 8 * q)), bit);
          // The child (raw ⊕ σ(s), σ(s) = x ⊕ kl[0]), its raw control bit in the low bit, ⊕ (t ?
          // the correction word with the chosen side's control-bit correction in its low bit : 0).
          const __mmask8 tcw = (__mmask8)((goRight & cbR) | (~goRight & cbL)), t = ts[g];
          const __m512i cw = _mm512_mask_xor_epi64(cwAll, tcw, cwAll, lowOne);
          const __m512i cwk = _mm512_mask_xor_epi64(kl[0], t, kl[0], cw);
          _mm512_storeu_si512((void *)(seedState[p] + 4 * q),
                              _mm512_ternarylogic_epi64(_mm512_mask_blend_epi64(goRight, l[g], r[g]), x[g], cwk, 0x96));
          if (LT) {
            // ⊕ the left sibling (⊕ kl[0] too, undone at the leaf by the parity of right turns).
            __m512i acc = _mm512_loadu_si512((const void *)(accState[p] + 4 * q));
            acc = _mm512_mask_ternarylogic_epi64(acc, goRight, l[g], x[g], 0x96);
            acc = _mm512_mask_xor_epi64(acc, goRight & t & cbL, acc, lowOne);
            _mm512_storeu_si512((void *)(accState[p] + 4 * q), acc);
          }
        }
      }
    }
  }
  // The leaves, H_V(s) ⊕ (t ? leaf correction : 0), and from them the output bits in registers:
  // the leaf's bit at x mod 128, or for comparisons the parity of its bits below that
  // position. Shifting lane h (0: bits 0…63, 1: bits 64…127) by (x mod 128) − 64h moves bit x
  // to bit 0 of its lane (shift counts of 64 or more, negative ones included, give 0).
  const __m512i low7 = _mm512_set1_epi64(127), laneBase = _mm512_set_epi64(64, 0, 64, 0, 64, 0, 64, 0);
  const __m512i pathMask = _mm512_set1_epi64((long long)(depth >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << depth) - 1));
  const int leftKeyLow = prg[0].roundKeys[0][0] & 1;
  const block *const leafFrom[4] = {seedState[0], seedState[1], seedState[2], seedState[3]};
  const __m512i zero = _mm512_setzero_si512(), sixtyFour = _mm512_set1_epi64(64), ones = _mm512_set1_epi64(-1);
  for (size_t u = 0; u < bn; u += unitKeys) {
    __m512i x[4], v[4];  // x: σ(s) ⊕ kv[0]
    __mmask8 ts[4];
    unit_inputs(K4, PQ, leafFrom, u, kvInverse, 0, x, ts);
    UNROLL for (int g = 0; g < K4 * PQ; g++) v[g] = x[g];
    UNROLL for (int round = 1; round < 10; round++)
      UNROLL for (int g = 0; g < K4 * PQ; g++) v[g] = _mm512_aesenc_epi128(v[g], kv[round]);
    UNROLL for (int kq = 0; kq < K4; kq++) {
      const size_t q = (u >> 2) + (size_t)kq;
      const __m512i cwAll = _mm512_loadu_si512((const void *)(job->leafCW + 16 * (c0 + 4 * q)));
      UNROLL for (int p = 0; p < PQ; p++) {
        const int g = kq * PQ + p;
        const __m512i leaf = _mm512_ternarylogic_epi64(_mm512_aesenclast_epi128(v[g], kv[10]), x[g],
                                                       _mm512_mask_xor_epi64(kv[0], ts[g], kv[0], cwAll), 0x96);
        const __m512i point = _mm512_loadu_si512((const void *)(pathPoints[p] + 8 * q));
        const __m512i shift = _mm512_sub_epi64(_mm512_and_si512(point, low7), laneBase);
        unsigned bits4;
        if (LT) {
          // Bits below the position: lane h keeps its low clamp((x mod 128) − 64h, 0, 64) bits.
          const __m512i keep = _mm512_min_epi64(_mm512_max_epi64(shift, zero), sixtyFour);
          const __m512i below = _mm512_and_si512(leaf, _mm512_srlv_epi64(ones, _mm512_sub_epi64(sixtyFour, keep)));
          const __mmask8 odd = _mm512_test_epi64_mask(_mm512_popcnt_epi64(below), _mm512_set1_epi64(1));
          bits4 = keybits(odd) ^ keybits(odd >> 1) ^
                  keybits(lowbits_z(_mm512_loadu_si512((const void *)(accState[p] + 4 * q))));
          // The accumulator took kl[0] once per level where the path went right: its low bit
          // that many times.
          if (leftKeyLow)
            bits4 ^= keybits(_mm512_test_epi64_mask(
                _mm512_popcnt_epi64(_mm512_and_si512(_mm512_srli_epi64(point, 7), pathMask)), lowOne));
        } else {
          const __mmask8 hit = _mm512_test_epi64_mask(_mm512_srlv_epi64(leaf, shift), _mm512_set1_epi64(1));
          bits4 = keybits(hit) | keybits(hit >> 1);
        }
        UNROLL for (size_t k = 0; k < 4; k++)
          job->out[(c0 + 4 * q + k) * job->stride + job->p0 + (size_t)p] = (uint8_t)((bits4 >> k) & 1);
      }
    }
  }
  return bn;
}

// Evaluates points p0 … p0 + pq − 1 (pq ≤ 4) of the run's keys in whole units; returns how many keys.
__attribute__((target("avx512f,avx512vpopcntdq,vaes,aes,sse4.1,bmi2"))) static size_t eval_points_fused(
    const veil_aes128_key prg[3], const point_job *job, size_t pq, size_t first, size_t count) {
  const int lt = job->lessThan != 0;
  switch (pq * 2 + (size_t)lt) {
  case 2: return fused_points(4, 1, 0, prg, job, first, count);
  case 3: return fused_points(4, 1, 1, prg, job, first, count);
  case 4: return fused_points(2, 2, 0, prg, job, first, count);
  case 5: return fused_points(2, 2, 1, prg, job, first, count);
  case 6: return fused_points(1, 3, 0, prg, job, first, count);
  case 7: return fused_points(1, 3, 1, prg, job, first, count);
  case 8: return fused_points(1, 4, 0, prg, job, first, count);
  default: return fused_points(1, 4, 1, prg, job, first, count);
  }
}
#endif

// Point p of the run of keys [first, first + count) (one tile's; points and out key-major with
// `stride` points a key): both children of every seed by the AES kernel, then the child choice.
static void eval_points_chunked(veil_aes_kernel kernel, const veil_aes128_key prg[3], const point_job *job,
                                size_t p, size_t first, size_t count) {
  const size_t depth = job->depth, n = job->n, bits = depth + 7, c0 = first, cn = count;
  const size_t rowKeys = tile_keys(first & ~(size_t)(TILE - 1), n), at0 = cw_at(0, first, n, depth);
  block s[TILE], left[TILE], right[TILE];
  uint64_t points[TILE];
  // Control bits and comparison accumulators, one bit per key.
  uint8_t t[TILE / 8], acc[TILE / 8];
#if defined(__x86_64__)
  const int wide = (veil_cpu_features() & VEIL_CPU_AVX512F) && __builtin_cpu_supports("bmi2");
#endif
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
    const uint8_t *levelSeeds = job->cwSeeds + 16 * (at0 + level * rowKeys);
    const uint8_t *levelBits = job->cwBits + at0 + level * rowKeys;
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

void veil_dpf_eval_points(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth,
                          size_t n, size_t first, size_t count, const uint8_t *roots, const uint8_t *cwSeeds,
                          const uint8_t *cwBits, const uint8_t *leafCW, const uint64_t *points,
                          size_t pointsPerKey, int lessThan, uint8_t *out) {
  point_job job = {party, depth, n, pointsPerKey, 0, roots, cwSeeds, cwBits, leafCW, points, lessThan, out};
#if defined(__x86_64__)
  const int fused = kernel == VEIL_AES_VAES512 && veil_aes_kernel_available(VEIL_AES_VAES512) &&
                    __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx512vpopcntdq") && depth > 0;
#endif
  // Run by run (the keys of one tile), up to 4 points of every key per pass; whole units take
  // the fused kernel, the rest of the run's keys the chunked path.
  for (size_t c0 = first, end = first + count; c0 < end;) {
    const size_t stop = run_end(c0, end, n), cn = stop - c0;
    for (size_t p0 = 0; p0 < pointsPerKey; p0 += 4) {
      const size_t pq = pointsPerKey - p0 < 4 ? pointsPerKey - p0 : 4;
      size_t done = 0;
      job.p0 = p0;
#if defined(__x86_64__)
      if (fused) done = eval_points_fused(prg, &job, pq, c0, cn);
#endif
      for (size_t p = p0; p < p0 + pq; p++)
        if (done < cn) eval_points_chunked(kernel, prg, &job, p, c0 + done, cn - done);
    }
    c0 = stop;
  }
}

#if defined(__x86_64__)
// The correction words of nodes i … i + 3 of a level with 2^widthLog nodes per key, from the
// first of their keys' entries (consecutive keys' entries adjacent, as within a tile): one
// key's word broadcast (4 or more nodes a key), two keys' words paired, or four keys' words.
__attribute__((target("avx512f"))) static inline __m512i node_words(const uint8_t *first, unsigned widthLog) {
  if (widthLog >= 2) return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)first));
  if (widthLog == 1)
    return _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0),
                                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)first)));
  return _mm512_loadu_si512((const void *)first);
}

// The same for one byte per key: a byte per node.
static inline uint32_t node_bytes(const uint8_t *first, unsigned widthLog) {
  if (widthLog >= 2) return first[0] * 0x01010101u;
  if (widthLog == 1) return first[0] * 0x0101u | first[1] * 0x01010000u;
  uint32_t four;
  memcpy(&four, first, 4);
  return four;
}

// `groups` groups of 4 nodes from node i0 of one full-domain level (see expand_level_fused);
// inlined with a constant `groups` so the chains live in registers. A node is its seed with its
// control bit in the low bit (hashed with that bit cleared). As in the point kernel, the CCR
// hash's ⊕ σ(s) is folded into the correction: child = raw ⊕ σ(s) ⊕ (t ? cw : 0), where the
// correction's low bit is the child's control-bit correction, so one three-way XOR makes each
// child.
// WL is min(log2 width, 2), a constant so that each width class compiles to straight-line code.
__attribute__((target("avx512f,vaes,aes,sse4.1,bmi2"), always_inline)) static inline void expand_unit(
    const int groups, const unsigned WL, size_t i0, const __m512i *kl, const __m512i *kr, __m512i klInverse,
    __m512i keyDifference, unsigned widthLog, const uint8_t *rowSeeds, const uint8_t *rowBits, const __mmask8 tRoot,
    const block *cur, block *next) {
  const __m512i lowOne = _mm512_set_epi64(0, 1, 0, 1, 0, 1, 0, 1);
  const __m512i first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  __m512i x[FUSED_REGS], l[FUSED_REGS], r[FUSED_REGS];  // x: σ(s) ⊕ kl[0], the left chain's input
  __mmask8 t[FUSED_REGS];
  UNROLL for (int g = 0; g < groups; g++) {
    if (WL == 0) {  // the roots: each control bit is the party
      l[g] = x[g] = ccr_input(_mm512_loadu_si512((const void *)(cur + i0 + 4 * g)), klInverse);
      t[g] = tRoot;
    } else {
      l[g] = x[g] = node_input(cur + i0 + 4 * g, klInverse, &t[g]);
    }
    r[g] = _mm512_xor_si512(x[g], keyDifference);
  }
  UNROLL for (int round = 1; round < 10; round++) {
    UNROLL for (int g = 0; g < groups; g++) {
      l[g] = _mm512_aesenc_epi128(l[g], kl[round]);
      r[g] = _mm512_aesenc_epi128(r[g], kr[round]);
    }
  }
  UNROLL for (int g = 0; g < groups; g++) {
    const size_t i = i0 + 4 * (size_t)g, at = i >> widthLog;  // the node's key in the chunk
    __mmask8 cbL, cbR;
    if (WL >= 2) {  // one key's bits for all 4 nodes
      cbL = (__mmask8)(rowBits[at] & 1 ? 0xFF : 0);
      cbR = (__mmask8)(rowBits[at] & 2 ? 0xFF : 0);
    } else {
      const uint32_t cb = node_bytes(rowBits + at, WL);
      cbL = bit_lanes(cb, 0);
      cbR = bit_lanes(cb, 1);
    }
    // σ(s) = x ⊕ kl[0]: kl[0] ⊕ (t ? cw : 0) with each side's control-bit correction, then one
    // three-way XOR per child.
    const __m512i cwk = _mm512_mask_xor_epi64(kl[0], t[g], kl[0], node_words(rowSeeds + 16 * at, WL));
    const __m512i lc = _mm512_ternarylogic_epi64(_mm512_aesenclast_epi128(l[g], kl[10]), x[g],
                                                 _mm512_mask_xor_epi64(cwk, t[g] & cbL, cwk, lowOne), 0x96);
    const __m512i rc = _mm512_ternarylogic_epi64(_mm512_aesenclast_epi128(r[g], kr[10]), x[g],
                                                 _mm512_mask_xor_epi64(cwk, t[g] & cbR, cwk, lowOne), 0x96);
    _mm512_storeu_si512((void *)(next + 2 * i), _mm512_permutex2var_epi64(lc, first, rc));
    _mm512_storeu_si512((void *)(next + 2 * i + 4), _mm512_permutex2var_epi64(lc, second, rc));
  }
}

// One full-domain level of `cn` keys of one tile with `width` nodes each (cn · width a multiple
// of 4), whose corrections for this level start at rowSeeds and rowBits, in one pass: 16 nodes
// at a time, both children as 8 VAES chains sharing one σ, corrected in registers and written
// child-major (node k's children at 2k, 2k + 1) into `next`. tRoot is 0xFF where `cur` holds
// party 1's roots (their low bits clear, their control bits 1), otherwise 0.
__attribute__((target("avx512f,vaes,aes,sse4.1,bmi2"))) static void expand_level_fused(
    const veil_aes128_key prg[2], size_t cn, size_t width, const uint8_t *rowSeeds, const uint8_t *rowBits,
    __mmask8 tRoot, const block *cur, block *next) {
  __m512i kl[11], kr[11];
  round_keys512(&prg[0], kl);
  round_keys512(&prg[1], kr);
  const __m512i klInverse = ccr_sigma_inverse512(kl[0]), keyDifference = _mm512_xor_si512(kl[0], kr[0]);
  const unsigned widthLog = (unsigned)__builtin_ctzll(width);
  const size_t total = cn * width;
  // The roots' control bits are a constant: party 0's are 0, so its root level needs no
  // corrections at all, and party 1's are 1, so its corrections need no masks.
#define EXPAND_LEVEL(WL, T_ROOT)                                                                               \
  {                                                                                                           \
    size_t i0 = 0;                                                                                            \
    for (; i0 + FUSED <= total; i0 += FUSED)                                                                  \
      expand_unit(FUSED_REGS, WL, i0, kl, kr, klInverse, keyDifference, widthLog, rowSeeds, rowBits, T_ROOT, cur, \
                  next);                                                                                      \
    for (; i0 < total; i0 += 4)                                                                               \
      expand_unit(1, WL, i0, kl, kr, klInverse, keyDifference, widthLog, rowSeeds, rowBits, T_ROOT, cur, next); \
  }
  if (widthLog == 0 && tRoot) EXPAND_LEVEL(0, 0xFF)
  else if (widthLog == 0) EXPAND_LEVEL(0, 0)
  else if (widthLog == 1) EXPAND_LEVEL(1, 0)
  else EXPAND_LEVEL(2, 0)
#undef EXPAND_LEVEL
}

// `groups` groups of 4 leaves from node i0 (see leaves_fused); WL as in expand_unit.
__attribute__((target("avx512f,vaes,aes,sse4.1,bmi2"), always_inline)) static inline void leaf_unit(
    const int groups, const unsigned WL, size_t i0, const __m512i *kv, __m512i kvInverse, size_t c0,
    unsigned widthLog, const uint8_t *leafCW, const block *cur, block *out) {
  __m512i x[FUSED_REGS], v[FUSED_REGS];  // x: σ(s) ⊕ kv[0]
  __mmask8 t[FUSED_REGS];
  UNROLL for (int g = 0; g < groups; g++) v[g] = x[g] = node_input(cur + i0 + 4 * g, kvInverse, &t[g]);
  UNROLL for (int round = 1; round < 10; round++)
    UNROLL for (int g = 0; g < groups; g++) v[g] = _mm512_aesenc_epi128(v[g], kv[round]);
  UNROLL for (int g = 0; g < groups; g++) {
    const size_t i = i0 + 4 * (size_t)g;
    const __m512i cwk =
        _mm512_mask_xor_epi64(kv[0], t[g], kv[0], node_words(leafCW + 16 * (c0 + (i >> widthLog)), WL));
    _mm512_storeu_si512((void *)(out + i),
                        _mm512_ternarylogic_epi64(_mm512_aesenclast_epi128(v[g], kv[10]), x[g], cwk, 0x96));
  }
}

// The leaves of `cn` keys with `width` nodes each (cn · width a multiple of 4):
// H_V(s) ⊕ (t ? leaf correction : 0), into `out` (which may be `cur`: each unit is read before
// it is written).
__attribute__((target("avx512f,vaes,aes,sse4.1,bmi2"))) static void leaves_fused(
    const veil_aes128_key *prg, size_t c0, size_t cn, size_t width, const uint8_t *leafCW, const block *cur,
    block *out) {
  __m512i kv[11];
  round_keys512(prg, kv);
  const __m512i kvInverse = ccr_sigma_inverse512(kv[0]);
  const unsigned widthLog = (unsigned)__builtin_ctzll(width);
  const size_t total = cn * width;
#define LEAVES(WL)                                                                                             \
  {                                                                                                           \
    size_t i0 = 0;                                                                                            \
    for (; i0 + FUSED <= total; i0 += FUSED)                                                                  \
      leaf_unit(FUSED_REGS, WL, i0, kv, kvInverse, c0, widthLog, leafCW, cur, out);                           \
    for (; i0 < total; i0 += 4) leaf_unit(1, WL, i0, kv, kvInverse, c0, widthLog, leafCW, cur, out);          \
  }
  if (widthLog == 0) LEAVES(0) else if (widthLog == 1) LEAVES(1) else LEAVES(2)
#undef LEAVES
}
#endif

// Moves the control bits of `count` nodes out of their low bits into t, leaving the seeds.
static void split_control_bits(block *nodes, uint8_t *t, size_t count) {
  for (size_t i = 0; i < count; i++) {
    t[i] = (uint8_t)lowbit(nodes[i]);
    nodes[i] = clearlow(nodes[i]);
  }
}

// Expands `cn` keys of one tile (starting at key c0 of the batch) to their leaf blocks, key-major:
// leaves[j · 2^depth + k] is leaf k of key c0 + j (leaves may be nodes, or the caller's output,
// written once). nodes and scratch must hold cn · 2^depth blocks, tbits cn · 2^depth bytes. Nodes carry their control bit in the low bit. Levels of a multiple of 4 nodes take
// the fused VAES pass, ping-ponging between nodes and scratch; the others hash the whole
// level through the AES kernel and correct it in place.
static void expand_all(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth, size_t n,
                       size_t c0, size_t cn, const uint8_t *roots, const uint8_t *cwSeeds, const uint8_t *cwBits,
                       const uint8_t *leafCW, block *nodes, block *scratch, uint8_t *tbits, block *leaves) {
#if defined(__x86_64__)
  const int fused = kernel == VEIL_AES_VAES512 && veil_aes_kernel_available(VEIL_AES_VAES512) &&
                    __builtin_cpu_supports("bmi2");
#else
  const int fused = 0;
#endif
  if (depth == 0) {  // the roots are the truth-table shares
    memcpy(leaves, roots + 16 * c0, 16 * cn);
    return;
  }
  // The fused pass reads the roots where they are (a copy costs as much as the hashing when
  // keys have one or two levels); the others work on a copy with the control bits set.
  const block *rootNodes = (const block *)(const void *)(roots + 16 * c0);
  if (!(fused && cn % 4 == 0)) {
    memcpy(nodes, rootNodes, 16 * cn);
    if (party)  // tree roots have their low bit cleared: set it to the party
      for (size_t j = 0; j < cn; j++) nodes[j].lo |= 1;
  }
  block *cur = nodes, *spare = scratch;
  size_t width = 1;
  for (size_t level = 0; level < depth; level++, width *= 2) {
    size_t count = cn * width;
#if defined(__x86_64__)
    if (fused && count % 4 == 0) {
      const size_t at = cw_at(level, c0, n, depth);
      expand_level_fused(prg, cn, width, cwSeeds + 16 * at, cwBits + at, level == 0 && party ? 0xFF : 0,
                         level == 0 ? rootNodes : cur, spare);
      block *b = cur;
      cur = spare;
      spare = b;
      continue;
    }
#endif
    split_control_bits(cur, tbits, count);
    // spare receives left children in [0, count) and right children in [count, 2count); the
    // children then overwrite cur child-major.
    hash(kernel, &prg[0], cur, spare, count);
    hash(kernel, &prg[1], cur, spare + count, count);
    for (size_t j = 0; j < cn; j++) {
      size_t at = cw_at(level, c0 + j, n, depth);
      block scw = loadb(cwSeeds + 16 * at);
      uint8_t cb = cwBits[at];
      block cwL = {scw.lo | (cb & 1), scw.hi}, cwR = {scw.lo | ((cb >> 1) & 1), scw.hi};
      for (size_t k = 0; k < width; k++) {
        size_t idx = j * width + k;
        cur[2 * idx] = xorb(spare[idx], andmask(cwL, tbits[idx]));
        cur[2 * idx + 1] = xorb(spare[count + idx], andmask(cwR, tbits[idx]));
      }
    }
  }
#if defined(__x86_64__)
  if (fused && (cn * width) % 4 == 0) {
    leaves_fused(&prg[2], c0, cn, width, leafCW, cur, leaves);
    return;
  }
#endif
  size_t count = cn * width;
  split_control_bits(cur, tbits, count);
  hash(kernel, &prg[2], cur, spare, count);
  for (size_t j = 0; j < cn; j++) {
    block cw = loadb(leafCW + 16 * (c0 + j));
    for (size_t k = 0; k < width; k++) {
      size_t idx = j * width + k;
      leaves[idx] = xorb(spare[idx], andmask(cw, tbits[idx]));
    }
  }
}

/// Keys per chunk in full-domain evaluation: about 4096 leaves per chunk (64 KiB of nodes).
static size_t all_chunk(size_t depth) {
  size_t leaves = (size_t)1 << depth;
  return leaves >= 4096 ? 1 : 4096 / leaves;
}

/// Keys in the chunk from c0 of [c0, end): within c0's tile, and a multiple of 4 where possible
/// so that narrow levels take the fused pass (the last 1…3 keys of a tile become a chunk).
static size_t chunk_keys(size_t c0, size_t end, size_t chunk, size_t n) {
  size_t stop = run_end(c0, end, n), cn = stop - c0 < chunk ? stop - c0 : chunk;
  return cn > 4 ? cn - cn % 4 : cn;
}

size_t veil_dpf_workspace_size(size_t depth) {
  size_t blocks = all_chunk(depth) << depth;
  // nodes and scratch blocks, a control-bit array, and the doubled reversed table of lookups.
  return blocks * 16 * 2 + blocks + ((size_t)16 << (depth + 7)) + 64;
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
  uint8_t *tbits = (uint8_t *)(scratch + (chunk << depth));
  for (size_t c0 = 0, cn; c0 < n; c0 += cn) {
    cn = chunk_keys(c0, n, chunk, n);
    expand_all(kernel, prg, party, depth, n, c0, cn, roots, cwSeeds, cwBits, leafCW, nodes, scratch, tbits,
               (block *)(void *)(out + c0 * leaves * 16));
  }
}

void veil_dpf_lut(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth, size_t n,
                  size_t first, size_t count, const uint8_t *roots, const uint8_t *cwSeeds, const uint8_t *cwBits, const uint8_t *leafCW,
                  const uint64_t *xhat, const uint64_t *table, void *workspace, uint64_t *ones, uint64_t *dot) {
  size_t chunk = all_chunk(depth), leaves = (size_t)1 << depth;
  uint64_t domain = leaves << 7, domainMask = domain - 1;
  block *nodes = (block *)workspace, *scratch = nodes + (chunk << depth);
  uint8_t *tbits = (uint8_t *)(scratch + (chunk << depth));
  uint64_t *rev = (uint64_t *)(((uintptr_t)(tbits + (chunk << depth)) + 63) & ~(uintptr_t)63);
  for (uint64_t i = 0; i < 2 * domain; i++) rev[i] = table[(domain - (i & domainMask)) & domainMask];
#if defined(__x86_64__)
  int wide = (veil_cpu_features() & VEIL_CPU_AVX512F) != 0;
#endif
  for (size_t c0 = first, cn; c0 < first + count; c0 += cn) {
    cn = chunk_keys(c0, first + count, chunk, n);
    expand_all(kernel, prg, party, depth, n, c0, cn, roots, cwSeeds, cwBits, leafCW, nodes, scratch, tbits,
               nodes);
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

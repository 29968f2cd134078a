// AES-128 with AES-NI (8 blocks interleaved: aesenc has a latency of ~4 cycles and a throughput
// of 2 per cycle, so 8 independent blocks keep both units busy) and with VAES on zmm registers
// (4 blocks per register, 4 registers interleaved). On top: the fixed-key correlation-robust
// hash used by the DPF tree PRG, an AES-CTR keystream, and CRC32C for key records.
#include "CVeilKernels.h"
#include "ccr_sigma.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

int veil_aes_kernel_available(veil_aes_kernel kernel) {
  uint32_t f = veil_cpu_features();
  switch (kernel) {
  case VEIL_AES_AESNI: return (f & VEIL_CPU_AESNI) != 0;
  case VEIL_AES_VAES512: return (f & VEIL_CPU_VAES) && (f & VEIL_CPU_AVX512F) && (f & VEIL_CPU_AESNI);
  }
  return 0;
}

#define EXPAND_STEP(prev, rcon)                                                                  \
  do {                                                                                           \
    __m128i gen_ = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(prev, rcon), 0xff);               \
    __m128i shifted_ = _mm_slli_si128(prev, 4);                                                  \
    __m128i acc_ = _mm_xor_si128(prev, shifted_);                                                \
    shifted_ = _mm_slli_si128(shifted_, 4);                                                      \
    acc_ = _mm_xor_si128(acc_, shifted_);                                                        \
    shifted_ = _mm_slli_si128(shifted_, 4);                                                      \
    prev = _mm_xor_si128(_mm_xor_si128(acc_, shifted_), gen_);                                   \
  } while (0)

__attribute__((target("aes,sse4.1"))) static void expand_aesni(const uint8_t key[16], veil_aes128_key *out) {
  __m128i k = _mm_loadu_si128((const __m128i *)key);
  _mm_storeu_si128((__m128i *)out->roundKeys[0], k);
  EXPAND_STEP(k, 0x01); _mm_storeu_si128((__m128i *)out->roundKeys[1], k);
  EXPAND_STEP(k, 0x02); _mm_storeu_si128((__m128i *)out->roundKeys[2], k);
  EXPAND_STEP(k, 0x04); _mm_storeu_si128((__m128i *)out->roundKeys[3], k);
  EXPAND_STEP(k, 0x08); _mm_storeu_si128((__m128i *)out->roundKeys[4], k);
  EXPAND_STEP(k, 0x10); _mm_storeu_si128((__m128i *)out->roundKeys[5], k);
  EXPAND_STEP(k, 0x20); _mm_storeu_si128((__m128i *)out->roundKeys[6], k);
  EXPAND_STEP(k, 0x40); _mm_storeu_si128((__m128i *)out->roundKeys[7], k);
  EXPAND_STEP(k, 0x80); _mm_storeu_si128((__m128i *)out->roundKeys[8], k);
  EXPAND_STEP(k, 0x1b); _mm_storeu_si128((__m128i *)out->roundKeys[9], k);
  EXPAND_STEP(k, 0x36); _mm_storeu_si128((__m128i *)out->roundKeys[10], k);
}

int veil_aes128_expand(const uint8_t key[16], veil_aes128_key *out) {
  if (!veil_aes_kernel_available(VEIL_AES_AESNI)) return -1;
  expand_aesni(key, out);
  return 0;
}

// The three block transforms the kernels apply around AES: none (raw ECB), the σ
// orthomorphism with feed-forward (CCR hash), and counter blocks (CTR).
enum { MODE_ECB = 0, MODE_CCR = 1, MODE_CTR = 2 };

__attribute__((target("aes,sse4.1"))) static inline __m128i sigma128(__m128i x) {
  // σ(a‖b) = (a ⊕ b)‖a: swap halves, then xor the old high half into the new high half.
  __m128i swapped = _mm_shuffle_epi32(x, 0x4E);
  __m128i high = _mm_and_si128(x, _mm_set_epi64x(-1, 0));
  return _mm_xor_si128(swapped, high);
}

__attribute__((target("aes,sse4.1"))) static void aes_aesni(int mode, const veil_aes128_key *key,
                                                            const uint8_t *in, uint8_t *out, size_t n,
                                                            uint64_t ctrLo, uint64_t ctrHi) {
  __m128i rk[11];
  for (int r = 0; r < 11; r++) rk[r] = _mm_loadu_si128((const __m128i *)key->roundKeys[r]);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i x[8], ff[8];
    UNROLL for (int j = 0; j < 8; j++) {
      if (mode == MODE_CTR) {
        uint64_t lo = ctrLo + i + j;
        uint64_t hi = ctrHi + (lo < ctrLo);
        x[j] = _mm_set_epi64x((long long)hi, (long long)lo);
      } else {
        x[j] = _mm_loadu_si128((const __m128i *)(in + 16 * (i + j)));
        if (mode == MODE_CCR) x[j] = sigma128(x[j]);
      }
      ff[j] = x[j];
      x[j] = _mm_xor_si128(x[j], rk[0]);
    }
    UNROLL for (int r = 1; r < 10; r++)
      UNROLL for (int j = 0; j < 8; j++) x[j] = _mm_aesenc_si128(x[j], rk[r]);
    UNROLL for (int j = 0; j < 8; j++) {
      x[j] = _mm_aesenclast_si128(x[j], rk[10]);
      if (mode == MODE_CCR) x[j] = _mm_xor_si128(x[j], ff[j]);
      _mm_storeu_si128((__m128i *)(out + 16 * (i + j)), x[j]);
    }
  }
  for (; i < n; i++) {
    __m128i x;
    if (mode == MODE_CTR) {
      uint64_t lo = ctrLo + i;
      x = _mm_set_epi64x((long long)(ctrHi + (lo < ctrLo)), (long long)lo);
    } else {
      x = _mm_loadu_si128((const __m128i *)(in + 16 * i));
      if (mode == MODE_CCR) x = sigma128(x);
    }
    __m128i ff = x;
    x = _mm_xor_si128(x, rk[0]);
    for (int r = 1; r < 10; r++) x = _mm_aesenc_si128(x, rk[r]);
    x = _mm_aesenclast_si128(x, rk[10]);
    if (mode == MODE_CCR) x = _mm_xor_si128(x, ff);
    _mm_storeu_si128((__m128i *)(out + 16 * i), x);
  }
}

__attribute__((target("avx512f,vaes,aes,sse4.1"))) static void aes_vaes512(int mode, const veil_aes128_key *key,
                                                                          const uint8_t *in, uint8_t *out,
                                                                          size_t n, uint64_t ctrLo,
                                                                          uint64_t ctrHi) {
  __m512i rk[11];
  round_keys512(key, rk);
  size_t i = 0;
  enum { LANES = 4, REGS = 4, STEP = LANES * REGS };
  for (; i + STEP <= n; i += STEP) {
    __m512i x[REGS], ff[REGS];
    UNROLL for (int j = 0; j < REGS; j++) {
      if (mode == MODE_CTR) {
        uint64_t b = ctrLo + i + (size_t)j * LANES;
        uint64_t h0 = ctrHi + (b < ctrLo), h1 = ctrHi + (b + 1 < ctrLo), h2 = ctrHi + (b + 2 < ctrLo),
                 h3 = ctrHi + (b + 3 < ctrLo);
        x[j] = _mm512_set_epi64((long long)h3, (long long)(b + 3), (long long)h2, (long long)(b + 2),
                                (long long)h1, (long long)(b + 1), (long long)h0, (long long)b);
      } else {
        x[j] = _mm512_loadu_si512((const void *)(in + 16 * (i + (size_t)j * LANES)));
        if (mode == MODE_CCR) x[j] = ccr_sigma512(x[j]);
      }
      ff[j] = x[j];
      x[j] = _mm512_xor_si512(x[j], rk[0]);
    }
    UNROLL for (int r = 1; r < 10; r++)
      UNROLL for (int j = 0; j < REGS; j++) x[j] = _mm512_aesenc_epi128(x[j], rk[r]);
    UNROLL for (int j = 0; j < REGS; j++) {
      x[j] = _mm512_aesenclast_epi128(x[j], rk[10]);
      if (mode == MODE_CCR) x[j] = _mm512_xor_si512(x[j], ff[j]);
      _mm512_storeu_si512((void *)(out + 16 * (i + (size_t)j * LANES)), x[j]);
    }
  }
  if (i < n) aes_aesni(mode, key, in ? in + 16 * i : in, out + 16 * i, n - i, ctrLo + i, ctrHi + (ctrLo + i < ctrLo));
}

static void dispatch(veil_aes_kernel kernel, int mode, const veil_aes128_key *key, const uint8_t *in,
                     uint8_t *out, size_t n, uint64_t ctrLo, uint64_t ctrHi) {
  if (kernel == VEIL_AES_VAES512 && veil_aes_kernel_available(VEIL_AES_VAES512))
    aes_vaes512(mode, key, in, out, n, ctrLo, ctrHi);
  else
    aes_aesni(mode, key, in, out, n, ctrLo, ctrHi);
}

void veil_aes128_encrypt_blocks(veil_aes_kernel kernel, const veil_aes128_key *key, const uint8_t *in,
                                uint8_t *out, size_t n) {
  dispatch(kernel, MODE_ECB, key, in, out, n, 0, 0);
}

void veil_ccr_hash(veil_aes_kernel kernel, const veil_aes128_key *key, const uint8_t *in, uint8_t *out,
                   size_t n) {
  dispatch(kernel, MODE_CCR, key, in, out, n, 0, 0);
}

void veil_aes128_ctr(veil_aes_kernel kernel, const veil_aes128_key *key, uint64_t counterLow,
                     uint64_t counterHigh, uint8_t *out, size_t n) {
  dispatch(kernel, MODE_CTR, key, NULL, out, n, counterLow, counterHigh);
}

// CRC32C over three independent streams at once: the crc32 instruction has a latency of three
// cycles and a throughput of one, so one stream runs at a third of its speed. A block of 3 × L
// bytes is split in three, each third's CRC computed from a zero register, and the thirds joined
// with crc(A ‖ B) = shift_L(crc(A)) ⊕ crc(B), where shift_L (appending L zero bytes) is linear
// over GF(2) and tabulated per byte of the register (after Adler's crc32c.c).
enum { CRC_LONG = 8192, CRC_SHORT = 256 };
static uint32_t crc_long[4][256], crc_short[4][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, mat++)
    if (vec & 1) sum ^= *mat;
  return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat) {
  for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}

// The table of shift_len (len a power of two, at least 1) over each byte of the register.
static void crc_zeros_table(uint32_t table[4][256], size_t len) {
  uint32_t even[32], odd[32];
  odd[0] = 0x82F63B78u;  // one zero bit
  for (int n = 1; n < 32; n++) odd[n] = 1u << (n - 1);
  gf2_square(even, odd);  // two zero bits
  gf2_square(odd, even);  // four
  uint32_t *op = even;
  for (;;) {
    gf2_square(even, odd);  // 8, 32, 128, … bits
    op = even;
    if ((len >>= 1) == 0) break;
    gf2_square(odd, even);  // 16, 64, … bits
    op = odd;
    if ((len >>= 1) == 0) break;
  }
  for (uint32_t b = 0; b < 256; b++)
    for (int k = 0; k < 4; k++) table[k][b] = gf2_times(op, b << (8 * k));
}

static void crc_tables(void) {
  crc_zeros_table(crc_long, CRC_LONG);
  crc_zeros_table(crc_short, CRC_SHORT);
}

static inline uint64_t crc_shift(uint32_t table[4][256], uint64_t crc) {
  return table[0][crc & 0xFF] ^ table[1][(crc >> 8) & 0xFF] ^ table[2][(crc >> 16) & 0xFF] ^ table[3][crc >> 24];
}

__attribute__((target("sse4.2"))) static uint64_t crc_three_streams(uint64_t c, const uint8_t **p, size_t *n,
                                                                    size_t len, uint32_t table[4][256]) {
  while (*n >= 3 * len) {
    uint64_t c1 = 0, c2 = 0;
    const uint8_t *a = *p, *end = a + len;
    for (; a < end; a += 8) {
      uint64_t v0, v1, v2;
      memcpy(&v0, a, 8);
      memcpy(&v1, a + len, 8);
      memcpy(&v2, a + 2 * len, 8);
      c = _mm_crc32_u64(c, v0);
      c1 = _mm_crc32_u64(c1, v1);
      c2 = _mm_crc32_u64(c2, v2);
    }
    c = crc_shift(table, c) ^ c1;
    c = crc_shift(table, c) ^ c2;
    *p += 3 * len;
    *n -= 3 * len;
  }
  return c;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = ~crc;
  if (n >= 3 * CRC_SHORT) {
    pthread_once(&crc_once, crc_tables);
    c = crc_three_streams(c, &p, &n, CRC_LONG, crc_long);
    c = crc_three_streams(c, &p, &n, CRC_SHORT, crc_short);
  }
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}
#else
int veil_aes_kernel_available(veil_aes_kernel kernel) { (void)kernel; return 0; }
int veil_aes128_expand(const uint8_t key[16], veil_aes128_key *out) { (void)key; (void)out; return -1; }
void veil_aes128_encrypt_blocks(veil_aes_kernel k, const veil_aes128_key *key, const uint8_t *in, uint8_t *out,
                                size_t n) { (void)k; (void)key; (void)in; (void)out; (void)n; }
void veil_ccr_hash(veil_aes_kernel k, const veil_aes128_key *key, const uint8_t *in, uint8_t *out, size_t n) {
  (void)k; (void)key; (void)in; (void)out; (void)n;
}
void veil_aes128_ctr(veil_aes_kernel k, const veil_aes128_key *key, uint64_t lo, uint64_t hi, uint8_t *out,
                     size_t n) { (void)k; (void)key; (void)lo; (void)hi; (void)out; (void)n; }
#endif

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t n) {
  uint32_t c = ~crc;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
  }
  return ~c;
}

uint32_t veil_crc32c(uint32_t crc, const uint8_t *bytes, size_t length) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2")) return crc32c_hw(crc, bytes, length);
#endif
  return crc32c_sw(crc, bytes, length);
}

// Ring GEMM over Z_2^64 (reduced to Z_2^n by a final mask) and a float64 GEMM for the
// plaintext reference. An AVX2 kernel serves CPUs without AVX-512 (below). The AVX-512 kernels keep an 8x16 block of C in 16 zmm registers and
// stream a KC-deep slice of A (broadcast) and B (two vectors a row); the B slice stays in
// L1/L2 (packed into a contiguous panel) while every row block of A passes over it.
//
// Why IFMA is exact: vpmadd52luq adds the low 52 bits of the product of the operands' low
// 52 bits to a 64-bit lane. With inputs < 2^52 the operands are the values themselves, and
// the low 52 bits of a product are the product mod 2^52; sums mod 2^64 of those stay correct
// mod 2^52, hence mod 2^n for every n <= 52 after the final mask.
#include "CVeilKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { KC = 256, MR = 8, NR = 16 };

static void gemm_u64_portable(size_t m, size_t n, size_t k, const uint64_t *a, size_t lda,
                              const uint64_t *b, size_t ldb, uint64_t *c, size_t ldc) {
  for (size_t k0 = 0; k0 < k; k0 += KC) {
    size_t kc = k - k0 < KC ? k - k0 : KC;
    for (size_t i = 0; i < m; i++) {
      uint64_t *crow = c + i * ldc;
      for (size_t p = 0; p < kc; p++) {
        uint64_t av = a[i * lda + k0 + p];
        const uint64_t *brow = b + (k0 + p) * ldb;
        for (size_t j = 0; j < n; j++) crow[j] += av * brow[j];
      }
    }
  }
}

#if defined(__x86_64__)

#define VEIL_AVX512_GEMM(NAME, TARGET, MADD)                                                    \
  __attribute__((target(TARGET))) static void NAME(size_t m, size_t n, size_t k,               \
                                                   const uint64_t *a, size_t lda,              \
                                                   const uint64_t *b, size_t ldb, uint64_t *c, \
                                                   size_t ldc) {                               \
    for (size_t k0 = 0; k0 < k; k0 += KC) {                                                    \
      size_t kc = k - k0 < KC ? k - k0 : KC;                                                   \
      for (size_t j = 0; j < n; j += NR) {                                                     \
        size_t cols = n - j < NR ? n - j : NR;                                                 \
        __mmask8 m0 = cols >= 8 ? 0xFF : (__mmask8)((1u << cols) - 1);                        \
        __mmask8 m1 = cols <= 8 ? 0 : (__mmask8)((1u << (cols - 8)) - 1);                      \
        /* Pack the kc x 16 panel of B contiguously (zero-padded): strided rows of a wide B \
           would otherwise fight over cache sets and TLB entries. 32 KiB on the stack. */      \
        uint64_t panel[KC * NR] __attribute__((aligned(64)));                                  \
        for (size_t p = 0; p < kc; p++) {                                                      \
          _mm512_store_si512(panel + p * NR, _mm512_maskz_loadu_epi64(m0, b + (k0 + p) * ldb + j)); \
          _mm512_store_si512(panel + p * NR + 8,                                               \
                             _mm512_maskz_loadu_epi64(m1, b + (k0 + p) * ldb + j + 8));        \
        }                                                                                      \
        const uint64_t *bp = panel;                                                            \
        size_t i = 0;                                                                          \
        for (; i + MR <= m; i += MR) {                                                         \
          __m512i acc[MR][2];                                                                  \
          for (int r = 0; r < MR; r++) {                                                       \
            acc[r][0] = _mm512_maskz_loadu_epi64(m0, c + (i + r) * ldc + j);                   \
            acc[r][1] = _mm512_maskz_loadu_epi64(m1, c + (i + r) * ldc + j + 8);               \
          }                                                                                    \
          const uint64_t *ap = a + i * lda + k0;                                               \
          for (size_t p = 0; p < kc; p++) {                                                    \
            __m512i b0 = _mm512_load_si512(bp + p * NR);                                      \
            __m512i b1 = _mm512_load_si512(bp + p * NR + 8);                                  \
            for (int r = 0; r < MR; r++) {                                                     \
              __m512i av = _mm512_set1_epi64((long long)ap[r * lda + p]);                      \
              acc[r][0] = MADD(acc[r][0], av, b0);                                             \
              acc[r][1] = MADD(acc[r][1], av, b1);                                             \
            }                                                                                  \
          }                                                                                    \
          for (int r = 0; r < MR; r++) {                                                       \
            _mm512_mask_storeu_epi64(c + (i + r) * ldc + j, m0, acc[r][0]);                    \
            _mm512_mask_storeu_epi64(c + (i + r) * ldc + j + 8, m1, acc[r][1]);                \
          }                                                                                    \
        }                                                                                      \
        for (; i < m; i++) {                                                                   \
          __m512i acc0 = _mm512_maskz_loadu_epi64(m0, c + i * ldc + j);                        \
          __m512i acc1 = _mm512_maskz_loadu_epi64(m1, c + i * ldc + j + 8);                    \
          const uint64_t *ap = a + i * lda + k0;                                               \
          for (size_t p = 0; p < kc; p++) {                                                    \
            __m512i av = _mm512_set1_epi64((long long)ap[p]);                                  \
            acc0 = MADD(acc0, av, _mm512_load_si512(bp + p * NR));                             \
            acc1 = MADD(acc1, av, _mm512_load_si512(bp + p * NR + 8));                         \
          }                                                                                    \
          _mm512_mask_storeu_epi64(c + i * ldc + j, m0, acc0);                                 \
          _mm512_mask_storeu_epi64(c + i * ldc + j + 8, m1, acc1);                             \
        }                                                                                      \
      }                                                                                        \
    }                                                                                          \
  }

// AVX2 (no 64-bit lane multiply): a·b = lo(a)·lo(b) + 2^32·(lo(a)·hi(b) + hi(a)·lo(b)) mod 2^64.
// vpmuludq gives lo·lo in full; vpmulld of a against b with its 32-bit halves swapped gives
// both cross products mod 2^32 in one instruction (only they matter after the shift). The cross
// sums stay per 32-bit half and fold into the high word once, after the k loop: exact mod 2^64.
// 6 rows x 4 columns keep 12 accumulators, 2 B vectors and A's broadcast in the 16 ymm registers.
enum { MR2 = 6 };

// Adds one row's 4 (or `cols`) products to C: the lo·lo sums plus both 32-bit cross sums
// shifted into the high word.
__attribute__((target("avx2"))) static inline void avx2_fold_add(__m256i lo, __m256i cr, uint64_t *crow,
                                                                 size_t cols) {
  const __m256i high = _mm256_set1_epi64x((long long)0xFFFFFFFF00000000ull);
  __m256i sum = _mm256_add_epi64(lo, _mm256_add_epi64(_mm256_slli_epi64(cr, 32), _mm256_and_si256(cr, high)));
  uint64_t out[4] __attribute__((aligned(32)));
  _mm256_store_si256((__m256i *)out, sum);
  for (size_t q = 0; q < cols; q++) crow[q] += out[q];
}

__attribute__((target("avx2"))) static void gemm_u64_avx2(size_t m, size_t n, size_t k,
    const uint64_t *a, size_t lda, const uint64_t *b, size_t ldb, uint64_t *c, size_t ldc) {
  // The kc x 4 panel of B and the same words with their 32-bit halves swapped.
  uint64_t panel[KC * 8] __attribute__((aligned(32)));
  for (size_t k0 = 0; k0 < k; k0 += KC) {
    size_t kc = k - k0 < KC ? k - k0 : KC;
    for (size_t j = 0; j < n; j += 4) {
      size_t cols = n - j < 4 ? n - j : 4;
      for (size_t p = 0; p < kc; p++) {
        const uint64_t *row = b + (k0 + p) * ldb + j;
        for (size_t q = 0; q < 4; q++) {
          uint64_t v = q < cols ? row[q] : 0;
          panel[p * 8 + q] = v;
          panel[p * 8 + 4 + q] = (v >> 32) | (v << 32);
        }
      }
      size_t i = 0;
      for (; i + MR2 <= m; i += MR2) {
        __m256i lo[MR2], cr[MR2];
        for (int r = 0; r < MR2; r++) { lo[r] = _mm256_setzero_si256(); cr[r] = _mm256_setzero_si256(); }
        const uint64_t *ap = a + i * lda + k0;
        for (size_t p = 0; p < kc; p++) {
          __m256i bv = _mm256_load_si256((const __m256i *)(panel + p * 8));
          __m256i bs = _mm256_load_si256((const __m256i *)(panel + p * 8 + 4));
          for (int r = 0; r < MR2; r++) {
            __m256i av = _mm256_set1_epi64x((long long)ap[r * lda + p]);
            lo[r] = _mm256_add_epi64(lo[r], _mm256_mul_epu32(av, bv));
            cr[r] = _mm256_add_epi32(cr[r], _mm256_mullo_epi32(av, bs));
          }
        }
        for (int r = 0; r < MR2; r++) avx2_fold_add(lo[r], cr[r], c + (i + r) * ldc + j, cols);
      }
      for (; i < m; i++) {
        __m256i lo = _mm256_setzero_si256(), cr = _mm256_setzero_si256();
        const uint64_t *ap = a + i * lda + k0;
        for (size_t p = 0; p < kc; p++) {
          __m256i av = _mm256_set1_epi64x((long long)ap[p]);
          lo = _mm256_add_epi64(lo, _mm256_mul_epu32(av, _mm256_load_si256((const __m256i *)(panel + p * 8))));
          cr = _mm256_add_epi32(cr, _mm256_mullo_epi32(av, _mm256_load_si256((const __m256i *)(panel + p * 8 + 4))));
        }
        avx2_fold_add(lo, cr, c + i * ldc + j, cols);
      }
    }
  }
}

#define VEIL_MADD_MULLO(acc, x, y) _mm512_add_epi64((acc), _mm512_mullo_epi64((x), (y)))
#define VEIL_MADD_IFMA(acc, x, y) _mm512_madd52lo_epu64((acc), (x), (y))

VEIL_AVX512_GEMM(gemm_u64_avx512, "avx512f,avx512dq", VEIL_MADD_MULLO)
VEIL_AVX512_GEMM(gemm_u64_ifma, "avx512f,avx512ifma", VEIL_MADD_IFMA)

#endif

int veil_gemm_kernel_available(veil_gemm_kernel kernel) {
  uint32_t f = veil_cpu_features();
  switch (kernel) {
  case VEIL_GEMM_PORTABLE: return 1;
  case VEIL_GEMM_AVX512: return (f & VEIL_CPU_AVX512F) && (f & VEIL_CPU_AVX512DQ);
  case VEIL_GEMM_IFMA: return (f & VEIL_CPU_AVX512F) && (f & VEIL_CPU_AVX512IFMA);
  case VEIL_GEMM_AVX2: return (f & VEIL_CPU_AVX2) != 0;
  }
  return 0;
}

void veil_gemm_u64(veil_gemm_kernel kernel, size_t m, size_t n, size_t k, const uint64_t *a,
                   size_t lda, const uint64_t *b, size_t ldb, uint64_t *c, size_t ldc, uint64_t mask,
                   int accumulate) {
  if (!accumulate)
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < n; j++) c[i * ldc + j] = 0;
  switch (kernel) {
#if defined(__x86_64__)
  case VEIL_GEMM_AVX512: gemm_u64_avx512(m, n, k, a, lda, b, ldb, c, ldc); break;
  case VEIL_GEMM_IFMA: gemm_u64_ifma(m, n, k, a, lda, b, ldb, c, ldc); break;
  case VEIL_GEMM_AVX2: gemm_u64_avx2(m, n, k, a, lda, b, ldb, c, ldc); break;
#endif
  default: gemm_u64_portable(m, n, k, a, lda, b, ldb, c, ldc); break;
  }
  if (mask != UINT64_MAX)
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < n; j++) c[i * ldc + j] &= mask;
}

// ---- float64 -----------------------------------------------------------------------------

static void gemm_f64_portable(size_t m, size_t n, size_t k, const double *a, size_t lda,
                              const double *b, size_t ldb, int transposeB, double *c, size_t ldc) {
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) c[i * ldc + j] = 0;
  if (transposeB) {
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < n; j++) {
        double s = 0;
        for (size_t p = 0; p < k; p++) s += a[i * lda + p] * b[j * ldb + p];
        c[i * ldc + j] = s;
      }
    return;
  }
  for (size_t i = 0; i < m; i++)
    for (size_t p = 0; p < k; p++) {
      double av = a[i * lda + p];
      for (size_t j = 0; j < n; j++) c[i * ldc + j] += av * b[p * ldb + j];
    }
}

#if defined(__x86_64__)
// Dot products of 4 rows of A against 1 row of B^T at a time, 8 lanes wide with FMA; the
// weights' [out, in] layout makes both operands contiguous along k.
__attribute__((target("avx512f"))) static void gemm_f64_avx512_bt(size_t m, size_t n, size_t k,
                                                                   const double *a, size_t lda,
                                                                   const double *b, size_t ldb,
                                                                   double *c, size_t ldc) {
  size_t kv = k & ~(size_t)7;
  __mmask8 tail = (__mmask8)((1u << (k - kv)) - 1);
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    for (size_t j = 0; j < n; j++) {
      const double *bj = b + j * ldb;
      __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
      for (size_t p = 0; p < kv; p += 8) {
        __m512d bv = _mm512_loadu_pd(bj + p);
        s0 = _mm512_fmadd_pd(_mm512_loadu_pd(a + i * lda + p), bv, s0);
        s1 = _mm512_fmadd_pd(_mm512_loadu_pd(a + (i + 1) * lda + p), bv, s1);
        s2 = _mm512_fmadd_pd(_mm512_loadu_pd(a + (i + 2) * lda + p), bv, s2);
        s3 = _mm512_fmadd_pd(_mm512_loadu_pd(a + (i + 3) * lda + p), bv, s3);
      }
      if (tail) {
        __m512d bv = _mm512_maskz_loadu_pd(tail, bj + kv);
        s0 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, a + i * lda + kv), bv, s0);
        s1 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, a + (i + 1) * lda + kv), bv, s1);
        s2 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, a + (i + 2) * lda + kv), bv, s2);
        s3 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, a + (i + 3) * lda + kv), bv, s3);
      }
      c[i * ldc + j] = _mm512_reduce_add_pd(s0);
      c[(i + 1) * ldc + j] = _mm512_reduce_add_pd(s1);
      c[(i + 2) * ldc + j] = _mm512_reduce_add_pd(s2);
      c[(i + 3) * ldc + j] = _mm512_reduce_add_pd(s3);
    }
  }
  for (; i < m; i++)
    for (size_t j = 0; j < n; j++) {
      const double *bj = b + j * ldb;
      __m512d s = _mm512_setzero_pd();
      for (size_t p = 0; p < kv; p += 8)
        s = _mm512_fmadd_pd(_mm512_loadu_pd(a + i * lda + p), _mm512_loadu_pd(bj + p), s);
      if (tail)
        s = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, a + i * lda + kv),
                            _mm512_maskz_loadu_pd(tail, bj + kv), s);
      c[i * ldc + j] = _mm512_reduce_add_pd(s);
    }
}
#endif

void veil_gemm_f64(size_t m, size_t n, size_t k, const double *a, size_t lda, const double *b,
                   size_t ldb, int transposeB, double *c, size_t ldc) {
#if defined(__x86_64__)
  if (transposeB && (veil_cpu_features() & VEIL_CPU_AVX512F)) {
    gemm_f64_avx512_bt(m, n, k, a, lda, b, ldb, c, ldc);
    return;
  }
#endif
  gemm_f64_portable(m, n, k, a, lda, b, ldb, transposeB, c, ldc);
}

// CVeilKernels owns Veil's hot loops: ring GEMM (portable, AVX-512, AVX-512 IFMA) and, later,
// the AES PRG and DPF inner loops. Plain functions over pointers and sizes: no policy, no
// allocation. Swift (VeilRing) owns lifetimes, kernel choice and errors.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CPU feature bits reported by veil_cpu_features().
enum {
  VEIL_CPU_AESNI = 1u << 0,
  VEIL_CPU_AVX2 = 1u << 1,
  VEIL_CPU_AVX512F = 1u << 2,
  VEIL_CPU_AVX512DQ = 1u << 3,
  VEIL_CPU_AVX512IFMA = 1u << 4,
  VEIL_CPU_VAES = 1u << 5,
  VEIL_CPU_PCLMUL = 1u << 6,
};

/// Features of the running CPU (and OS support for their register state).
uint32_t veil_cpu_features(void);

/// Ring GEMM kernel variants. Each is built with __attribute__((target)), so one binary carries all.
typedef enum {
  VEIL_GEMM_PORTABLE = 0,  ///< scalar C, any x86-64 / arm64
  VEIL_GEMM_AVX512 = 1,    ///< vpmullq 8x16 register kernel; exact mod 2^64
  VEIL_GEMM_IFMA = 2,      ///< vpmadd52luq 8x16 kernel; exact mod 2^n only for n <= 52 and inputs < 2^52
} veil_gemm_kernel;

/// 1 when `kernel` can run on this CPU.
int veil_gemm_kernel_available(veil_gemm_kernel kernel);

/// C = (accumulate ? C : 0) + A * B, wrapping mod 2^64, then C &= mask.
/// A is m x k (row stride lda), B is k x n (row stride ldb), C is m x n (row stride ldc), all row-major.
/// For VEIL_GEMM_IFMA every element of A and B must be < 2^52 and mask must keep at most 52 bits.
void veil_gemm_u64(veil_gemm_kernel kernel, size_t m, size_t n, size_t k, const uint64_t *a,
                   size_t lda, const uint64_t *b, size_t ldb, uint64_t *c, size_t ldc, uint64_t mask,
                   int accumulate);

/// C = A * B in float64 (row-major, A m x k, B k x n), for the plaintext reference engine.
/// Uses AVX-512 FMA where available; transposeB reads B as n x k (PyTorch's [out, in] weights).
void veil_gemm_f64(size_t m, size_t n, size_t k, const double *a, size_t lda, const double *b,
                   size_t ldb, int transposeB, double *c, size_t ldc);

#ifdef __cplusplus
}
#endif

// The σ orthomorphism of the fixed-key CCR hash (DESIGN §5), σ(a‖b) = (a ⊕ b)‖a on each
// 128-bit block of a 512-bit register: shared by the AES kernels and the fused DPF kernels,
// which must hash exactly alike.
#ifndef VEIL_CCR_SIGMA_H
#define VEIL_CCR_SIGMA_H
#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static inline __m512i ccr_sigma512(__m512i x) {
  __m512i swapped = _mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0x4E);
  // swapped ⊕ (x ∧ high halves), as one ternary-logic operation.
  return _mm512_ternarylogic_epi64(swapped, x, _mm512_set_epi64(-1, 0, -1, 0, -1, 0, -1, 0), 0x78);
}
#endif
#endif

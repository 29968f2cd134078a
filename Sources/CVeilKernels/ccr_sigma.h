// The σ orthomorphism of the fixed-key CCR hash (DESIGN §5), σ(a‖b) = (a ⊕ b)‖a on each
// 128-bit block of a 512-bit register, and the round keys broadcast to 512-bit registers:
// shared by the AES kernels and the fused DPF kernels, which must hash exactly alike. Also the
// UNROLL pragma both use for their loops over registers and rounds.
#ifndef VEIL_CCR_SIGMA_H
#define VEIL_CCR_SIGMA_H

// Fully unrolls a loop over registers or rounds. SwiftPM builds C at -O2, whose unroller gives
// up on the larger kernel bodies (the comparison kernel), and then the AES chains go through
// memory: 50-bit comparisons ran at 46 % of raw AES instead of 58 %.
#define UNROLL _Pragma("clang loop unroll(full)")
#if defined(__x86_64__)
#include "CVeilKernels.h"
#include <immintrin.h>

__attribute__((target("avx512f"))) static inline __m512i ccr_sigma512(__m512i x) {
  __m512i swapped = _mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0x4E);
  // swapped ⊕ (x ∧ high halves), as one ternary-logic operation.
  return _mm512_ternarylogic_epi64(swapped, x, _mm512_set_epi64(-1, 0, -1, 0, -1, 0, -1, 0), 0x78);
}

// The 11 round keys of an expanded AES-128 key, each broadcast to the 4 blocks of a register.
__attribute__((target("avx512f"))) static inline void round_keys512(const veil_aes128_key *key, __m512i rk[11]) {
  for (int r = 0; r < 11; r++) rk[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)key->roundKeys[r]));
}
#endif
#endif

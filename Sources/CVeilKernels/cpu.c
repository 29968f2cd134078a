// Run-time CPU feature detection, so one binary picks the widest kernel the machine has.
#include "CVeilKernels.h"

uint32_t veil_cpu_features(void) {
  uint32_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("aes")) f |= VEIL_CPU_AESNI;
  if (__builtin_cpu_supports("avx2")) f |= VEIL_CPU_AVX2;
  if (__builtin_cpu_supports("avx512f")) f |= VEIL_CPU_AVX512F;
  if (__builtin_cpu_supports("avx512dq")) f |= VEIL_CPU_AVX512DQ;
  if (__builtin_cpu_supports("avx512ifma")) f |= VEIL_CPU_AVX512IFMA;
  if (__builtin_cpu_supports("vaes")) f |= VEIL_CPU_VAES;
  if (__builtin_cpu_supports("pclmul")) f |= VEIL_CPU_PCLMUL;
#endif
  return f;
}

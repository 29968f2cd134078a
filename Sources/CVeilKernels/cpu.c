// Run-time CPU feature detection, so one binary picks the widest kernel the machine has, and
// the one process-wide allocator setting the secure engines rely on.
#include "CVeilKernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

int veil_keep_freed_memory(void) {
#if defined(__GLIBC__)
  // Every block comes from the one heap (no mmap: glibc caps M_MMAP_THRESHOLD at 32 MiB, and a
  // key record of hundreds of MiB would be mapped and unmapped per gate) and freed memory stays
  // there (no trimming) instead of going back to the kernel and faulting in again as fresh
  // zeroed pages on the next allocation. One arena: a thread's own arena lives in 64 MiB
  // mmapped heaps, too small for these blocks; with two cores the shared lock costs little.
  // The resident set therefore stays at its high-water mark, which is what peak RSS reports.
  int arena = mallopt(M_ARENA_MAX, 1);
  int mmap = mallopt(M_MMAP_MAX, 0);
  int trim = mallopt(M_TRIM_THRESHOLD, -1);
  return arena == 1 && mmap == 1 && trim == 1;
#else
  return 0;
#endif
}

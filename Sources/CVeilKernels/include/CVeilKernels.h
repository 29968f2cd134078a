// CVeilKernels owns Veil's hot loops: ring GEMM (portable, AVX2, AVX-512, AVX-512 IFMA), the
// AES PRG and the DPF inner loops. Plain functions over pointers and sizes: no policy, no
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

/// Keeps freed large blocks in the allocator's heap (glibc mallopt); 1 on success. Secure runs
/// free and allocate megabytes per gate; without this each block returns as fresh zeroed pages.
int veil_keep_freed_memory(void);

/// Ring GEMM kernel variants. Each is built with __attribute__((target)), so one binary carries all.
typedef enum {
  VEIL_GEMM_PORTABLE = 0,  ///< scalar C, any x86-64 / arm64
  VEIL_GEMM_AVX512 = 1,    ///< vpmullq 8x16 register kernel; exact mod 2^64
  VEIL_GEMM_IFMA = 2,      ///< vpmadd52luq 8x16 kernel; exact mod 2^n only for n <= 52 and inputs < 2^52
  VEIL_GEMM_AVX2 = 3,      ///< vpmuludq + vpmulld 6x4 kernel for CPUs without AVX-512; exact mod 2^64
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

// ---- AES-128 (AES-NI / VAES only; never a table AES) ---------------------------------------

#ifdef __cplusplus
extern "C" {
#endif

/// Expanded AES-128 encryption key: 11 round keys.
typedef struct {
  uint8_t roundKeys[11][16];
} veil_aes128_key;

/// AES kernel variants.
typedef enum {
  VEIL_AES_AESNI = 0,  ///< 128-bit AES-NI, 8 blocks interleaved
  VEIL_AES_VAES512 = 1 ///< VAES on 512-bit registers, 16 blocks interleaved
} veil_aes_kernel;

/// 1 when `kernel` can run on this CPU.
int veil_aes_kernel_available(veil_aes_kernel kernel);

/// Expands a 16-byte key. Returns 0 on success, -1 when the CPU has no AES-NI.
int veil_aes128_expand(const uint8_t key[16], veil_aes128_key *out);

/// out[i] = AES_k(in[i]) for n 16-byte blocks (in and out may alias).
void veil_aes128_encrypt_blocks(veil_aes_kernel kernel, const veil_aes128_key *key, const uint8_t *in,
                                uint8_t *out, size_t n);

/// The fixed-key correlation-robust hash of Guo–Katz–Wang–Yu (eprint 2019/074):
/// out[i] = AES_k(σ(in[i])) ⊕ σ(in[i]) with σ(a‖b) = (a ⊕ b)‖a on the two 64-bit halves
/// (a the high half). in and out may alias.
void veil_ccr_hash(veil_aes_kernel kernel, const veil_aes128_key *key, const uint8_t *in, uint8_t *out,
                   size_t n);

/// AES-CTR keystream: out[i] = AES_k(counter + i) (128-bit little-endian counter), n blocks.
void veil_aes128_ctr(veil_aes_kernel kernel, const veil_aes128_key *key, uint64_t counterLow,
                     uint64_t counterHigh, uint8_t *out, size_t n);

/// CRC32C (Castagnoli) of `length` bytes continuing from `crc` (start with 0).
uint32_t veil_crc32c(uint32_t crc, const uint8_t *bytes, size_t length);

/// Packs count values of bitsPerValue (1, 2 or 4) bits, the low bits of values[i], little-endian
/// into ⌈count · bitsPerValue / 8⌉ bytes of out (value i at bit i · bitsPerValue).
void veil_pack_small(const uint8_t *values, size_t count, unsigned bitsPerValue, uint8_t *out);

/// The inverse: count values of bitsPerValue bits from packed into one byte each.
void veil_unpack_small(const uint8_t *packed, size_t count, unsigned bitsPerValue, uint8_t *out);

#ifdef __cplusplus
}
#endif

// ---- DPF (Boyle–Gilboa–Ishai tree, early termination at 128-bit leaves, bit outputs) -------
//
// A batch of n keys over a domain of depth + 7 bits. Layout:
//   roots    n × 16 bytes         party's root seed (control bit = party)
//   cwSeeds  depth × n × 16       seed correction words, tiled (below)
//   cwBits   depth × n bytes      bit 0: left control-bit correction, bit 1: right, tiled
//   leafCW   n × 16               leaf correction word
// A depth-0 batch (a domain of at most 7 bits) is its roots, the truth-table shares; the
// kernels then read no other array, and those pointers may be null.
// Tiled: the keys form tiles of VEIL_DPF_TILE (the last may be shorter), stored one after the
// other; within a tile of k keys starting at key s, key i's level-l entry is at
// s · depth + l · k + (i − s). Evaluating a tile's keys level by level then reads one
// contiguous region front to back (a batch-wide level-major layout would read depth streams
// n entries apart, which defeats the hardware prefetcher and the TLB). A batch of at most
// VEIL_DPF_TILE keys is plain level-major.
// Seeds keep their lowest bit cleared; the control bit of a child is the lowest bit of its hash.
// prg[0], prg[1], prg[2] are the fixed AES keys of the left-child, right-child and leaf hashes.

enum { VEIL_DPF_TILE = 256 };

#ifdef __cplusplus
extern "C" {
#endif

/// Dealer: builds both parties' keys for points alphas[0..<n] (each < 2^(depth+7)).
/// roots0/roots1 hold fresh random seeds (their low bits are cleared here). signBits[i]
/// receives party 0's output bit at alphas[i] (which party holds the 1 there).
void veil_dpf_gen(veil_aes_kernel kernel, const veil_aes128_key prg[3], size_t depth, size_t n,
                  const uint64_t *alphas, uint8_t *roots0, uint8_t *roots1, uint8_t *cwSeeds,
                  uint8_t *cwBits, uint8_t *leafCW, uint8_t *signBits);

/// Party: for each key i in [first, first + count) of the batch of n and each of its
/// pointsPerKey points x = points[i·pointsPerKey + p] (taken mod 2^(depth+7)), out[i·pointsPerKey + p] = share of
/// [x == alpha_i] (lessThan = 0) or of [alpha_i < x] (lessThan = 1); shares are bits whose XOR
/// over the parties is the value. A key's points share its loads. Disjoint ranges may run on
/// separate threads.
void veil_dpf_eval_points(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth,
                          size_t n, size_t first, size_t count, const uint8_t *roots, const uint8_t *cwSeeds,
                          const uint8_t *cwBits, const uint8_t *leafCW, const uint64_t *points,
                          size_t pointsPerKey, int lessThan, uint8_t *out);

/// Bytes of scratch memory that veil_dpf_eval_all and veil_dpf_lut need for `depth`.
size_t veil_dpf_workspace_size(size_t depth);

/// Party: full-domain evaluation of each key; out receives 2^(depth+7) bits per key, packed
/// little-endian (bit y of key i at byte i·2^(depth+4) + y/8, bit y%8).
void veil_dpf_eval_all(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth,
                       size_t n, const uint8_t *roots, const uint8_t *cwSeeds, const uint8_t *cwBits,
                       const uint8_t *leafCW, void *workspace, uint8_t *out);

/// Party: fused full-domain evaluation and table dot product for lookup tables, for the keys in
/// [first, first + count) (each thread needs its own workspace). For key i with
/// public masked input xhat[i] (< 2^(depth+7)) and table T of 2^(depth+7) entries:
/// ones[i] = Σ_y t(y) and dot[i] = Σ_y t(y) · T[(xhat[i] − y) mod 2^(depth+7)] (mod 2^64),
/// where t(y) is this party's output bit at y.
void veil_dpf_lut(veil_aes_kernel kernel, const veil_aes128_key prg[3], int party, size_t depth, size_t n,
                  size_t first, size_t count, const uint8_t *roots, const uint8_t *cwSeeds, const uint8_t *cwBits, const uint8_t *leafCW,
                  const uint64_t *xhat, const uint64_t *table, void *workspace, uint64_t *ones,
                  uint64_t *dot);

#ifdef __cplusplus
}
#endif

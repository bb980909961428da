/* kern_int.h: private to src/engine/kernels: the packed weight layouts, the activation row
 * layouts, the table of entry points and each instruction set's table builder. Every path
 * shares these layouts, so each one is tested against kern_scalar.c on the same bytes. */
#ifndef LOCO_KERN_INT_H
#define LOCO_KERN_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine/kernels/blocks.h"
#include "engine/kernels/kernels.h"

/* ---------------------------------------------------------------- packed weight groups
 *
 * A group holds KERN_GROUP (16) rows. Per block of the weight type (32 or 256 values) the
 * group stores one "group block" of the layouts below, block after block along k. Values
 * are interleaved 4 at a time: a "step" is 64 bytes, byte 4r + j holding value 4s + j of row
 * r (s = step). 4-bit values share a byte: its low nibble belongs to one step, the high
 * nibble to another (given per type). fp16 scales are raw bits, row r at index r.
 *
 * Q8_0 (544 B = 16 x 34):  u16 d[16]; u8 q[8][64]   q = value + 128 (so it is unsigned)
 * Q4_0 (288 B = 16 x 18):  u16 d[16]; u8 q[4][64]   lo nibble: step s, hi: step s + 4 (raw
 *                                                    nibbles 0..15; the -8 is applied through
 *                                                    the activation sums)
 * Q4_1 (320 B = 16 x 20):  u16 d[16], m[16]; u8 q[4][64]
 * Q5_0 (352 B = 16 x 22):  u16 d[16]; u64 qh[8]; u8 q[4][64]   bit 4r+j of qh[s]: the 5th
 *                                                    bit of value 4s+j of row r
 * Q5_1 (384 B = 16 x 24):  u16 d[16], m[16]; u64 qh[8]; u8 q[4][64]
 * Q4_K (2368 B, 16 x 144 + 64):  u16 d[16], dmin[16]; u8 sc[8][16]; u8 mn[4][16][2];
 *                           u8 q[32][64]: q[8c + s] lo nibble = value 64c + 4s + j (sub-block
 *                           2c), hi nibble = value 64c + 32 + 4s + j (sub-block 2c + 1).
 *                           sc[j][r] = scale of sub-block j; mn[p][r] = mins of sub-blocks
 *                           2p, 2p + 1 (pairs, for one 16-bit multiply-add per pair).
 * Q5_K (2880 B, 16 x 176 + 64): Q4_K's fields, then u64 qh[32][2]: bit 4r+j of qh[8c+s][0]
 *                           (of [1]) = 5th bit of the lo (hi) nibble's value.
 * Q6_K (3360 B = 16 x 210): u16 d[16]; i8 sc[16][16]; u8 ql[32][64] (as Q4_K's q);
 *                           u8 qh[16][64]: byte of qh[4c + s] holds the 2 high bits of values
 *                           64c + 4s + j (bits 0-1), +16 (2-3), +32 (4-5), +48 (6-7), s < 4.
 *                           value = (nibble | high << 4) - 32, scale per 16 values.
 */
#define KERN_STEP 64 /* bytes of one interleaved step: 16 rows x 4 values */

#define KG_Q8_0_BYTES 544
#define KG_Q4_0_BYTES 288
#define KG_Q4_1_BYTES 320
#define KG_Q5_0_BYTES 352
#define KG_Q5_1_BYTES 384
#define KG_Q4_K_BYTES 2368
#define KG_Q5_K_BYTES 2880
#define KG_Q6_K_BYTES 3360

/* Offsets inside one group block. */
#define KG32_D 0     /* u16 d[16] */
#define KG32_M 32    /* u16 m[16] (Q4_1, Q5_1) */
#define KGK_D 0      /* u16 d[16] */
#define KGK_DMIN 32  /* u16 dmin[16] */
#define KGK_SC 64    /* u8 sc[8][16] */
#define KGK_MN 192   /* u8 mn[4][16][2] */
#define KGK_Q 320    /* u8 q[32][64] */
#define KGK_QH 2368  /* Q5_K: u64 qh[32][2] */
#define KG6_D 0      /* u16 d[16] */
#define KG6_SC 32    /* i8 sc[16][16] */
#define KG6_QL 288   /* u8 ql[32][64] */
#define KG6_QH 2336  /* u8 qh[16][64] */

/* Bytes fetched ahead of the group block being read. Generation streams the weights from
 * memory once and the hardware prefetcher alone leaves the cores waiting; what must be in
 * flight is about bandwidth x latency, the same for every block size (measured on AMD EPYC,
 * 2 threads, AVX-512 and AVX2 kernels: 8 KB beat 2 KB by 5-20% and 4 KB or 16 KB by 2-8% on
 * Q4_0, Q8_0, Q4_K and Q6_K files). */
#ifndef KERN_PREFETCH_BYTES /* -DKERN_PREFETCH_BYTES=N for sweeps */
#define KERN_PREFETCH_BYTES 8192
#endif

/* Q5_0 and Q5_1 (their kernels do more per byte) fetch this much ahead instead (measured
 * when generation read one group at a time; it now reads several, KERN_PREFETCH_BYTES_GEN32,
 * and this serves prompts and the groups left over). AVX-512,
 * generation of the 6-layer files, 2 KiB against 8 KiB, A/B (3 pairs each): Q5_0 1.14x
 * (1.02-1.16), Q5_1 1.19x and 1.10x (1.04-1.20; 4 KiB 1.23x and 1.06x); Q4_0 0.95x, Q4_1 0.94x,
 * Q8_0 1.02x, so those keep 8 KiB. Against 2 KiB: 1 KiB Q5_0 0.88x, Q5_1 0.86x; 4 KiB 0.91x,
 * 1.03x. */
#ifndef KERN_PREFETCH_BYTES_Q5 /* -DKERN_PREFETCH_BYTES_Q5=N for sweeps */
#define KERN_PREFETCH_BYTES_Q5 2048
#endif

/* Generation of the 32-value types reads several groups side by side (kern_avx512.c), each
 * a stream of its own fetched this far ahead. 6-layer files, A/B against 8 KiB (3 pairs
 * each): Q4_0 1.11x and 1.12x, Q4_1 1.09x and 0.99x, Q8_0 1.23x and 1.01x; 4 KiB 1.06x, 1.02x,
 * 1.01x; for Q5_0 and Q5_1 (already 2 KiB) 1 KiB 0.89x / 0.97x, 8 KiB 0.84x / 0.91x. */
#ifndef KERN_PREFETCH_BYTES_GEN32 /* -DKERN_PREFETCH_BYTES_GEN32=N for sweeps */
#define KERN_PREFETCH_BYTES_GEN32 2048
#endif

/* kern_block_past: the group block `bytes` (rounded to whole blocks) past B, the block of bb
 * bytes being read, or NULL where that lies at or past pe: the end of the task's groups, which
 * follow one another in memory, so the stream runs on across group boundaries.
 * kern_prefetch_to fetches all of that block's lines at once. to_l2: with prefetcht1
 * instead of prefetcht0. Both are constants in every caller. AVX-512 Q8_0 generation, 6-layer
 * file, A/B pairs: prefetcht1 1.06x, 1.08x, 1.06x (3 pairs each, 1.03-1.12), Q5_0 1.03x; Q4_K
 * 0.88x, Q6_K 0.89x, Q5_1 0.95x with it, so Q8_0 alone takes it. */
static inline __attribute__((always_inline)) const uint8_t *
kern_block_past(const uint8_t *B, size_t bb, const uint8_t *pe, size_t bytes)
{
    const size_t ahead = (bytes + bb - 1) / bb * bb;
    return (size_t)(pe - B) > ahead ? B + ahead : NULL;
}

static inline __attribute__((always_inline)) void kern_prefetch_to(const uint8_t *B, size_t bb,
                                                                   const uint8_t *pe,
                                                                   size_t bytes, bool to_l2)
{
    const uint8_t *f = kern_block_past(B, bb, pe, bytes);
    if (f)
        for (size_t off = 0; off < bb; off += 64) {
            if (to_l2)
                __builtin_prefetch(f + off, 0, 2);
            else
                __builtin_prefetch(f + off, 0, 3);
        }
}

static inline __attribute__((always_inline)) void kern_prefetch_ahead(const uint8_t *B,
                                                                      size_t bb,
                                                                      const uint8_t *pe)
{
    kern_prefetch_to(B, bb, pe, KERN_PREFETCH_BYTES, false);
}

/* The group block KERN_PREFETCH_BYTES (rounded to whole blocks) past B, or NULL where that lies
 * at or past pe: for kernels that spread the fetches of its lines over their work on B
 * (kern_prefetch_line) instead of issuing them all at once. */
static inline __attribute__((always_inline)) const uint8_t *
kern_ahead_block(const uint8_t *B, size_t bb, const uint8_t *pe)
{
    return kern_block_past(B, bb, pe, KERN_PREFETCH_BYTES);
}

/* Fetches line i of the block pf of bb bytes (kern_ahead_block), if pf is set and the block
 * has that line. */
static inline __attribute__((always_inline)) void kern_prefetch_line(const uint8_t *pf, size_t bb,
                                                                     int i)
{
    if (pf && 64 * (size_t)i < bb)
        __builtin_prefetch(pf + 64 * (size_t)i, 0, 3);
}

/* Bytes of one group block for a packed type (0 for others), and values per block. */
size_t kern_group_block_bytes(ggml_type type);

/* ---------------------------------------------------------------- activation rows
 *
 * A32 (weights Q8_0, Q4_0, Q5_0, Q4_1, Q5_1; k = 32 nb): i8 qs[k]; f32 d[nb]; i32 init[nb];
 *   f32 s[nb]. qs and d are llama.cpp's x86 quantize_row_q8_0/q8_1 (d is the fp16-rounded
 *   scale as f32); init = the weight type's value offset times the sum of the block's qs
 *   (Q8_0 -128: its packed values are q + 128; Q4_0 -8; Q5_0 -16; others 0), the start of each
 *   block's integer sum; s = fp16 round of d * sum (Q8_1's s).
 * A256 (weights Q4_K, Q5_K, Q6_K; k = 256 nb): i8 qs[k]; f32 d[nb]; i16 bsums[k/16];
 *   i32 pairs[nb][4]; i32 q6off[k/16]. qs, d, bsums are quantize_row_q8_K_ref's;
 *   pairs[b][p] = sum32(2p) & 0xFFFF | sum32(2p + 1) << 16 where sum32(j) is the sum of the 32
 *   qs of sub-block j; q6off[g] = -32 * bsums[g].
 * F32 (weights F32, F16, BF16): f32 x[k].
 * Rows are padded to a multiple of 64 bytes. */
typedef struct {
    size_t qs, d, init, s;               /* A32 offsets */
    size_t bsums, pairs, q6off;          /* A256 offsets */
    size_t bytes;
} kern_act_layout;

static inline kern_act_layout kern_act_a32(int64_t k)
{
    kern_act_layout l;
    memset(&l, 0, sizeof(l));
    const size_t nb = (size_t)k / 32;
    l.qs = 0;
    l.d = (size_t)k;
    l.init = l.d + 4 * nb;
    l.s = l.init + 4 * nb;
    l.bytes = (l.s + 4 * nb + 63) & ~(size_t)63;
    return l;
}

static inline kern_act_layout kern_act_a256(int64_t k)
{
    kern_act_layout l;
    memset(&l, 0, sizeof(l));
    const size_t nb = (size_t)k / 256;
    l.qs = 0;
    l.d = (size_t)k;
    l.bsums = l.d + 4 * nb;
    l.pairs = l.bsums + 2 * ((size_t)k / 16);
    l.q6off = l.pairs + 16 * nb;
    l.bytes = (l.q6off + 4 * ((size_t)k / 16) + 63) & ~(size_t)63;
    return l;
}

/* ---------------------------------------------------------------- the table */

/* One activation row: k floats -> kern_act_bytes(type, k) bytes. */
typedef void (*kern_quant_fn)(const float *x, int64_t k, void *act);
/* Groups [g0, g1) of w times n_tokens activation rows (see kern_matmul). */
typedef void (*kern_gemm_fn)(const kern_weight *w, const void *acts, size_t act_stride,
                             int64_t n_tokens, float *out, size_t out_stride, int64_t g0,
                             int64_t g1);

struct kern_table {
    const char *name;
    kern_quant_fn quant[GGML_TYPE_COUNT]; /* by weight type */
    kern_gemm_fn gemm[GGML_TYPE_COUNT];   /* by weight type */
};

/* Table builders: each starts from a copy of the scalar table and overrides what it has.
 * Called only when the CPU has the instruction set (kernels.c checks first: the files are
 * compiled with that instruction set enabled). */
void kern_scalar_fill(kern_table *kt);
bool kern_avx2_fill(kern_table *kt);
bool kern_avx512_fill(kern_table *kt);
bool kern_amx_fill(kern_table *kt);
bool kern_amx_emu_fill(kern_table *kt); /* the AMX program on emulated tiles (tests) */
bool kern_neon_fill(kern_table *kt);

/* Whether the build has each path (the file was compiled for it). */
bool kern_avx2_built(void);
bool kern_avx512_built(void);
bool kern_amx_built(void);
bool kern_amx_emu_built(void);
bool kern_neon_built(void);

/* A small matmul of every packed type (tails of rows and tokens included) through table t and
 * through ref gives the same bits. kernels.c runs it on the AMX table before using it. */
bool kern_self_check(const kern_table *t, const kern_table *ref);

/* Writes the 16 (or fewer, for the last group) results of one group for one token. */
static inline void kern_store_group(float *out, const float *v, int64_t r, int64_t rows)
{
    const int64_t n = rows - r < KERN_GROUP ? rows - r : KERN_GROUP;
    memcpy(out + r, v, (size_t)n * sizeof(float));
}

/* The scalar reference's quantizers. kern_quant_a32 takes the value offset of the weight type
 * (kern_a32_offset). */
void kern_quant_a32(const float *x, int64_t k, void *act, int32_t offset);
void kern_quant_a256(const float *x, int64_t k, void *act);
/* The per-block steps every table's quantizers share, after the block's int8 values (whose
 * sum, or sums of each 16, they take): A32 block b's d (fp16-rounded amax / 127), init and s;
 * A256 block b's d and the sums the kernels use. */
void kern_a32_block_end(uint8_t *act, kern_act_layout L, int64_t b, float amax, int32_t sum,
                        int32_t offset);
void kern_a256_block_end(uint8_t *act, kern_act_layout L, int64_t b, float d,
                         const int32_t s16[16]);

/* The offset of a 32-value type's packed values (see A32 init). */
static inline int32_t kern_a32_offset(ggml_type t)
{
    return t == GGML_TYPE_Q8_0 ? -128 : t == GGML_TYPE_Q4_0 ? -8 : t == GGML_TYPE_Q5_0 ? -16 : 0;
}

/* One table's activation quantizers: A32(x, k, act, offset) bound to each 32-value type's
 * offset (kern_a32_offset) and A256 for the K types, as static functions PREFIX_q8_0 ...
 * and PREFIX_install(kt), which puts them into the table. */
#define KERN_QUANTIZERS(PREFIX, A32, A256)                                                     \
    static void PREFIX##_q8_0(const float *x, int64_t k, void *act)                            \
    {                                                                                          \
        A32(x, k, act, kern_a32_offset(GGML_TYPE_Q8_0));                                       \
    }                                                                                          \
    static void PREFIX##_q4_0(const float *x, int64_t k, void *act)                            \
    {                                                                                          \
        A32(x, k, act, kern_a32_offset(GGML_TYPE_Q4_0));                                       \
    }                                                                                          \
    static void PREFIX##_q5_0(const float *x, int64_t k, void *act)                            \
    {                                                                                          \
        A32(x, k, act, kern_a32_offset(GGML_TYPE_Q5_0));                                       \
    }                                                                                          \
    static void PREFIX##_plain(const float *x, int64_t k, void *act)                           \
    {                                                                                          \
        A32(x, k, act, 0);                                                                     \
    }                                                                                          \
    static void PREFIX##_install(kern_table *kt)                                               \
    {                                                                                          \
        kt->quant[GGML_TYPE_Q8_0] = PREFIX##_q8_0;                                             \
        kt->quant[GGML_TYPE_Q4_0] = PREFIX##_q4_0;                                             \
        kt->quant[GGML_TYPE_Q5_0] = PREFIX##_q5_0;                                             \
        kt->quant[GGML_TYPE_Q4_1] = kt->quant[GGML_TYPE_Q5_1] = PREFIX##_plain;                \
        kt->quant[GGML_TYPE_Q4_K] = kt->quant[GGML_TYPE_Q5_K] = kt->quant[GGML_TYPE_Q6_K] =    \
            A256;                                                                              \
    }

#endif

/* quant_int.h: block layouts and kernel-table plumbing shared by quant.c (scalar reference)
 * and quant_avx2.c (SIMD paths). Private to the quant module; the rest of the engine uses
 * quant.h. Layouts are ggml's (ggml-common.h); fp16 fields hold raw IEEE half bits. */
#ifndef LOCO_QUANT_INT_H
#define LOCO_QUANT_INT_H

#include <stdint.h>

#include "engine/ggml_types.h"
#include "engine/kernels/blocks.h"
#include "engine/quant.h"

/* The scalar reference table (always available) and the AVX2 table builder (returns false
 * and leaves *kt alone when the CPU lacks AVX2, FMA or F16C, or the compiler cannot target
 * them). quant_avx2_fill starts from a copy of the scalar table and overrides entries. */
void quant_scalar_fill(quant_kernels *kt);
bool quant_avx2_fill(quant_kernels *kt);

/* Generic row loops over a vec_dot pointer; both paths use them unless they have better. */
void quant_matvec_generic(quant_dot_fn dot, size_t row_bytes, const void *w, int64_t n,
                          const void *act, float *out, int64_t row_begin, int64_t row_end);
void quant_matmul_generic(quant_dot_fn dot, size_t row_bytes, const void *w, int64_t n,
                          const void *acts, int64_t n_tokens, size_t act_stride, float *out,
                          size_t out_stride, int64_t row_begin, int64_t row_end);
/* The eleven types every dot-product table covers, as X(name, ggml type). */
#define QUANT_MAIN_TYPES(X) \
    X(f32, GGML_TYPE_F32) \
    X(f16, GGML_TYPE_F16) \
    X(bf16, GGML_TYPE_BF16) \
    X(q8_0, GGML_TYPE_Q8_0) \
    X(q4_0, GGML_TYPE_Q4_0) \
    X(q4_1, GGML_TYPE_Q4_1) \
    X(q5_0, GGML_TYPE_Q5_0) \
    X(q5_1, GGML_TYPE_Q5_1) \
    X(q4_K, GGML_TYPE_Q4_K) \
    X(q5_K, GGML_TYPE_Q5_K) \
    X(q6_K, GGML_TYPE_Q6_K)
/* Defines static matvec_T and matmul_T: the generic row loops around dot_T for type ID. */
#define QUANT_ROW_LOOPS(T, ID)                                                                 \
    static void matvec_##T(const void *w, int64_t n, const void *act, float *out, int64_t rb,  \
                           int64_t re)                                                         \
    {                                                                                          \
        quant_matvec_generic(dot_##T, ggml_type_row_size(ID, (uint64_t)n), w, n, act, out, rb, \
                             re);                                                              \
    }                                                                                          \
    static void matmul_##T(const void *w, int64_t n, const void *acts, int64_t nt, size_t as,  \
                           float *out, size_t os, int64_t rb, int64_t re)                      \
    {                                                                                          \
        quant_matmul_generic(dot_##T, ggml_type_row_size(ID, (uint64_t)n), w, n, acts, nt, as, \
                             out, os, rb, re);                                                 \
    }

#endif

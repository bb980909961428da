/* vecmath.h: ggml-compatible numerics for the Qwen3 forward pass: the elementwise functions,
 * reductions and dot products that llama.cpp's CPU backend uses, reproduced lane by lane so
 * that loco's greedy output equals llama.cpp's token for token. Engine layer; pure functions
 * plus one CPU profile detected once.
 *
 * llama.cpp's CPU backend picks one build per CPU (AVX2, AVX-512, AVX-512 + AMX, ...) and the
 * float results depend on it: the SIMD width sets the summation order of dot products and
 * reductions, and with AMX-INT8 the quantized matmuls of Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K/IQ4_XS
 * go through ggml's AMX kernels, which add each block's integer dot product into one f32 per
 * output (acc = fma(isum, d_w*d_a, acc)) instead of ggml's vec_dot lanes. vm_profile says
 * which of these loco mirrors; see docs/internals/qwen3.md for the details and the evidence.
 * Without AMX (or for weights the AMX buffer does not take), every AVX2 build repacks Q4_0,
 * Q4_K and IQ4_NL weights (AVX-512 builds Q2_K too) into 8-row interleaved blocks whose
 * gemv/gemm kernels have their own per-block arithmetic (vm_repack_matmul). */
#ifndef LOCO_VECMATH_H
#define LOCO_VECMATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/ggml_types.h"

typedef struct {
    const char *name; /* "amx", "avx512", "avx2" or "scalar" */
    bool wide16;      /* ggml's AVX-512 build: 16-lane f32/f16 dots, softmax, exp (else AVX2's 8) */
    bool bf16_dp;     /* AVX512_BF16: ggml's BF16 dot uses vdpbf16ps */
    bool amx;         /* AMX-INT8: the AMX kernels run Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K/IQ4_XS */
    bool fast;        /* this CPU has AVX2+FMA+F16C: loco's own SIMD paths may be used */
    bool repack;      /* an AVX2 build: ggml repacks Q4_0/Q4_K weights (see vm_uses_repack) */
} vm_profile;

/* The profile of llama.cpp's CPU backend on this machine, detected once (thread-safe): AMX
 * when the CPU has AMX-INT8 + AVX512-VNNI and Linux grants the AMX state (as ggml asks for
 * it), wide16 with AVX512F. LOCO_GGML_PROFILE=amx|avx512|avx2 in the environment overrides
 * the detection (for tests). Static, never NULL. */
const vm_profile *vm_profile_get(void);
/* A named profile ("amx", "avx512", "avx2"); NULL for other names. Static. */
const vm_profile *vm_profile_named(const char *name);

/* True when profile p computes matmuls of this weight type with ggml's AMX kernels. */
bool vm_uses_amx(const vm_profile *p, ggml_type weight_type);

/* out[t * out_stride + r] = W row r . activation row t for r in [row_begin, row_end), with the
 * arithmetic of ggml's AMX kernels (identical for one token and for batches): per output,
 * acc = 0; per block acc = fma((float)isum, d_w * d_a, acc) (Q4_1 adds fma(m_w, s_a, acc),
 * Q4_K/Q5_K subtract (float)sum(m_j * bsum_j) * (dmin * d_a) with one fma; IQ4_XS's isum is
 * per super-block, sum ls_j * dot_j). Activations are
 * prepared as quant_act_type(type). type must satisfy vm_uses_amx. */
void vm_amx_matmul(ggml_type type, const void *W, int64_t n, const void *acts, int64_t n_tokens,
                   size_t act_stride, float *out, size_t out_stride, int64_t row_begin,
                   int64_t row_end);

/* True when llama.cpp's build of profile p keeps a weight of this type with `rows` rows in its
 * CPU_REPACK buffer (if its AMX buffer does not take it first): Q4_0, Q4_K and IQ4_NL with
 * rows % 8 == 0 on every AVX2 build, Q2_K on the AVX-512 ones (ggml_repack_get_optimal_repack_
 * type); also IQ4_XS with rows % 8 == 0, which stays in a plain buffer but whose batches of 8 or
 * more rows go to ggml's IQ panel gemm (vm_repack_matmul runs both cases). */
bool vm_uses_repack(const vm_profile *p, ggml_type weight_type, int64_t rows);

/* As vm_amx_matmul, with the arithmetic of ggml's repacked kernels (q4_0_8x8_q8_0,
 * q4_K_8x8_q8_K; gemv for one token, gemm for 4, the same per-output steps): Q4_0 as the AMX
 * kernels (acc = fma((float)isum, d_w * d_a, acc) per block); Q4_K with the mins in a second
 * accumulator: acc = fma((float)sum sc_j*dot_j, d*d_a, acc), accm = fma((float)sum m_j*bsum_j,
 * dmin*d_a, accm) per super-block, result acc - accm. IQ4_NL (iq4_nl_8x8) as Q4_0; Q2_K
 * (q2_K_8x8) as Q4_K in the gemv, per 128 values in the gemm; IQ4_XS: for 8 or more tokens
 * the IQ panel gemm (acc = fma((float)sum ls_j*dot_j, d*d_a, acc) per super-block), else
 * vec_dot (quant_matmul). type: one vm_uses_repack accepts. */
void vm_repack_matmul(ggml_type type, const void *W, int64_t n, const void *acts, int64_t n_tokens,
                      size_t act_stride, float *out, size_t out_stride, int64_t row_begin,
                      int64_t row_end);

/* The AMX buffer's F16 kernel (tinygemm_kernel_avx): f16 weights times f32 activations,
 * one 16-lane fma accumulator per output, then _mm512_reduce_add_ps. n % 16 == 0. */
float vm_amx_dot_f16(int64_t n, const uint16_t *w, const float *a);
/* vm_amx_dot_f16 of 4 rows w + r * w_stride (halves) with the same activations: out[r]. */
void vm_amx_dot_f16_x4(int64_t n, const uint16_t *w, size_t w_stride, const float *a, float *out);

/* ggml_vec_dot_f16 / ggml_vec_dot_f32 / ggml_vec_dot_bf16 of n values, in the lane order of
 * the profile's build (exact). */
float vm_dot_f16(const vm_profile *p, int64_t n, const uint16_t *x, const uint16_t *y);
float vm_dot_f32(const vm_profile *p, int64_t n, const float *x, const float *y);
float vm_dot_bf16(const vm_profile *p, int64_t n, const uint16_t *x, const uint16_t *y);

/* llamafile's tinyBLAS, which ggml uses for F32/F16/BF16 weights when a matmul has two or
 * more activation rows (prompt batches): one accumulator of the build's width per output
 * (16 lanes, or 32 bf16 values through vdpbf16ps), then _mm512_reduce_add_ps.
 * vm_tinyblas_ok says whether tinyBLAS takes a weight of `rows` rows of n values (else ggml
 * falls back to vec_dot, vm_dot_*). type is F32, F16 or BF16; y is the activation row in the
 * same type. */
bool vm_tinyblas_ok(const vm_profile *p, ggml_type type, int64_t rows, int64_t n);
float vm_dot_tinyblas(const vm_profile *p, ggml_type type, int64_t n, const void *x,
                      const void *y);

/* y[i] = silu(g[i]) * u[i] as ggml_vec_swiglu_f32 (SIMD exp in chunks of the build's width,
 * libm expf for the tail). y may alias g or u. */
void vm_swiglu(const vm_profile *p, int64_t n, float *y, const float *g, const float *u);

/* One row of ggml_soft_max_ext with a causal mask: s holds n_pad scores of which the first
 * n are visible (the rest masked to -inf, their weights 0). Computes in place the weights
 * of the first n: w = exp(s*scale - max) / sum, where exp and the running sum follow
 * ggml_vec_soft_max_f32 (chunks of the build's width, chunk sums by _mm*_reduce_add_ps order,
 * added in double). s[n..n_pad) is not touched. */
void vm_soft_max(const vm_profile *p, int64_t n_pad, int64_t n, float *s, float scale);

/* The attention weighted sum of V as ggml's non-flash path computes it: for each of the d
 * output values i, the dot product over n_pad cache positions of V[p][i] and w16[p] (only
 * the first n weights are nonzero; V rows are v_stride halves apart). With one query row
 * (batch false) ggml uses ggml_vec_dot_f16; for batches it goes through tinyBLAS (when
 * vm_tinyblas_ok), with its own lane order. acc is scratch of 64 * d floats. The attention
 * scores K.q follow the same rule: vm_dot_f16 for one row, vm_dot_tinyblas for batches. */
void vm_attn_v(const vm_profile *p, bool batch, int64_t n_pad, int64_t n, const uint16_t *V,
               size_t v_stride, const uint16_t *w16, int64_t d, float *acc, float *out);

#endif

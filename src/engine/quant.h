/* quant.h: tensor kernels for the engine: dequantize/quantize rows, activation quantizers and
 * the dot products / matrix-vector loops of every weight type, compatible bit for bit with
 * ggml's block layouts and with llama.cpp's CPU pairing (weight type x activation type).
 * Engine layer; every function is pure (no state but a kernel table chosen once). */
#ifndef LOCO_QUANT_H
#define LOCO_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/ggml_types.h"

/* Pairing (as llama.cpp's CPU backend, vec_dot_type):
 *   Q4_0, Q5_0, Q8_0 x Q8_0;  Q4_1, Q5_1 x Q8_1;  Q4_K, Q5_K, Q6_K x Q8_K;
 *   F16 x F16 (activations rounded to fp16);  BF16 x BF16;  F32 x F32.
 * A weight row of n values is ggml_type_row_size(type, n) bytes; the prepared activation row
 * is ggml_type_row_size(quant_act_type(type), n) bytes. n must be a multiple of the weight
 * type's block size (32 or 256; the K types need 256). Rows and activations must be aligned
 * to 4 bytes (GGUF data is 32-aligned; blocks contain fp16 and f32 fields). */

/* Dequantize n values of a weight row to f32. */
typedef void (*quant_dequant_fn)(const void *src, float *dst, int64_t n);
/* Quantize n f32 values into a row of some type (weights or activations). */
typedef void (*quant_quant_fn)(const float *src, void *dst, int64_t n);
/* Dot product of a weight row and a prepared activation row of n values. */
typedef float (*quant_dot_fn)(int64_t n, const void *w, const void *act);
/* out[r] = dot(row r of w, act) for r in [row_begin, row_end). */
typedef void (*quant_matvec_fn)(const void *w, int64_t n, const void *act, float *out,
                                int64_t row_begin, int64_t row_end);
/* out[t * out_stride + r] = dot(row r of w, acts + t * act_stride) for every token t below
 * n_tokens and r in [row_begin, row_end). act_stride is in bytes, out_stride in floats. */
typedef void (*quant_matmul_fn)(const void *w, int64_t n, const void *acts, int64_t n_tokens,
                                size_t act_stride, float *out, size_t out_stride,
                                int64_t row_begin, int64_t row_end);

/* The kernels of one weight type. All NULL for types without kernels. */
typedef struct {
    ggml_type act_type;       /* activation type its vec_dot expects */
    quant_dequant_fn dequant; /* weight row -> f32 */
    quant_quant_fn quantize;  /* f32 -> weight row (for writing model files) */
    quant_dot_fn vec_dot;
    quant_matvec_fn matvec;
    quant_matmul_fn matmul;
} quant_type_ops;

/* A kernel table: one per code path (scalar reference, AVX2). Static and immutable. */
typedef struct {
    const char *name;                          /* "scalar" or "avx2" */
    quant_type_ops ops[GGML_TYPE_COUNT];       /* indexed by weight type id */
    quant_quant_fn act_quant[GGML_TYPE_COUNT]; /* indexed by activation type id: F32, F16,
                                                * BF16, Q8_0, Q8_1, Q8_K */
} quant_kernels;

/* The table the engine uses: the best path this CPU supports, chosen once (thread-safe) at
 * the first call; LOCO_KERNELS=scalar in the environment forces the scalar reference.
 * Never NULL; static, never freed. */
const quant_kernels *quant_kernels_get(void);
/* The scalar reference table. Never NULL. */
const quant_kernels *quant_kernels_scalar(void);
/* The AVX2+FMA+F16C table, or NULL when this CPU (or compiler) lacks them. */
const quant_kernels *quant_kernels_avx2(void);

/* True for the weight types these kernels handle (same list as ggml_type_supported). */
bool quant_type_supported(ggml_type type);
/* The activation type weight rows of this type are multiplied with; GGML_TYPE_COUNT for
 * unsupported types. */
ggml_type quant_act_type(ggml_type weight_type);
/* Checks that a weight tensor of this type with rows of n values can be used: supported type,
 * n > 0 and a multiple of the block size. what names the tensor in the message. */
loco_status quant_check(ggml_type type, int64_t n, const char *what, loco_err *err);

/* Converts n values of a weight row to f32. dst holds n floats. LOCO_ERR_UNSUPPORTED for
 * types without kernels, LOCO_ERR_INVALID when n is not a multiple of the block size. */
loco_status quant_dequantize_row(ggml_type type, const void *src, float *dst, int64_t n);
/* Quantizes n f32 values into a weight row of this type (ggml's reference quantizers:
 * quantize_row_*_ref, the K types with ggml's iterative scale search), for writing model
 * files. dst holds ggml_type_row_size(type, n) bytes. Errors as quant_dequantize_row. */
loco_status quant_quantize_row(ggml_type type, const float *src, void *dst, int64_t n);
/* Prepares an activation row: act_type is one of F32, F16, BF16, Q8_0, Q8_1, Q8_K (see
 * quant_act_type). Q8_0/Q8_1 follow llama.cpp's x86 CPU quantizer (d = amax/127, values
 * rounded half to even from x * (127/amax)); Q8_K follows quantize_row_q8_K_ref. dst holds
 * ggml_type_row_size(act_type, n) bytes. Errors as quant_dequantize_row. */
loco_status quant_quantize_act(ggml_type act_type, const float *x, void *dst, int64_t n);

/* Dot product of one weight row and one prepared activation row (quant_act_type(type)).
 * The type must be supported and n valid (checked once with quant_check; a bad type here is
 * a bug and asserts). */
float quant_vec_dot(ggml_type type, int64_t n, const void *w, const void *act);
/* out[r] = quant_vec_dot(type, n, row r of W, act) for r in [row_begin, row_end) (0 <=
 * row_begin <= row_end <= rows). W holds rows contiguous rows of ggml_type_row_size(type, n)
 * bytes; out has rows floats and only the range is written, so several threads may each
 * compute their own range of the same out. Borrowed inputs, nothing allocated. */
void quant_matvec(ggml_type type, const void *W, int64_t rows, int64_t n, const void *act,
                  float *out, int64_t row_begin, int64_t row_end);
/* Batched quant_matvec for n_tokens prepared activation rows (token t at acts + t *
 * act_stride bytes): out[t * out_stride + r]. Each block of weight rows is loaded once for all
 * tokens. Results equal quant_matvec for each token exactly. */
void quant_matmul(ggml_type type, const void *W, int64_t rows, int64_t n, const void *acts,
                  int64_t n_tokens, size_t act_stride, float *out, size_t out_stride,
                  int64_t row_begin, int64_t row_end);

#endif

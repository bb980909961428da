/* kernels.h: the engine's fast matrix kernels (engine layer). Weights are repacked at load
 * into groups of 16 rows whose values are interleaved 4 at a time (the layout integer
 * dot-product instructions want: AVX-512 VNNI vpdpbusd, AVX2 maddubs, AMX tiles, NEON sdot),
 * activations are quantized once per matrix to 8-bit blocks, and one table of entry points
 * per instruction set (scalar, avx2, avx512, amx, neon) is chosen at run time by CPU features.
 *
 * Every path computes the same bits as the scalar reference: integer block sums are exact in
 * any order, and each output runs the same float steps in the same order (for the quant types
 * ggml's AMX formula, see docs/internals/kernels.md). That is the fast path of the forward
 * pass; the llama.cpp-mirroring parity path (quant.h, vecmath.h) is separate and also reaches
 * its ggml-formula kernels through this module (kern_amx_formula_*). */
#ifndef LOCO_KERNELS_H
#define LOCO_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "engine/ggml_types.h"

/* Weight rows per packed group: one 512-bit vector of int32 lanes. */
#define KERN_GROUP 16

/* A weight matrix ready for kern_matmul: rows of k values, in a copy owned by the weight on
 * huge pages where the system grants them. For the quant types the copy is packed (groups of
 * KERN_GROUP rows, the last one padded with zero rows); for F32, F16 and BF16 it holds the
 * original rows as they are (packing would not pay; the huge pages do). */
typedef struct {
    ggml_type type;
    int64_t rows;        /* output rows (ne1) */
    int64_t k;           /* values per row (ne0) */
    int64_t n_groups;    /* ceil(rows / KERN_GROUP) */
    size_t group_bytes;  /* bytes of one group of KERN_GROUP rows in the copy */
    size_t row_bytes;    /* bytes of one original row */
    const uint8_t *data; /* the copy: packed groups, or the rows (dense types) */
    void *mem;           /* the owned mapping holding the copy (the same as data) */
    size_t mem_bytes;
} kern_weight;

/* One table of entry points (an instruction set). Static, immutable. */
typedef struct kern_table kern_table;

/* The best table for this CPU, chosen once (thread-safe): amx (AMX-INT8 granted by the OS and
 * its self-check passed), else avx512 (AVX-512 F/BW/VL + VNNI), else avx2 (AVX2 + FMA + F16C),
 * else neon (aarch64 with dotprod), else scalar. LOCO_KERNELS=scalar|avx2|avx512|amx|neon
 * forces a table the CPU supports (an unusable name falls back to detection). Never NULL. */
const kern_table *kern_get(void);
/* The named table ("scalar", "avx2", "avx512", "amx", "neon") when this CPU and build support
 * it, else NULL. "scalar" is always there. */
const kern_table *kern_named(const char *name);
/* "scalar", "avx2", ... */
const char *kern_name(const kern_table *kt);
/* One line on what was detected and chosen, e.g. "avx512 (AVX-512 VNNI; AMX: not present)";
 * static, for logs and `loco bench --json`'s kernel_path. */
const char *kern_describe(void);

/* True when the fast path computes with this weight type (the 11 supported ggml types). */
bool kern_type_supported(ggml_type type);
/* True when weights of this type are repacked (the quant types); F32/F16/BF16 are not. */
bool kern_type_packed(ggml_type type);
/* Bytes of one prepared activation row of k values for weights of this type (a multiple of
 * 64). k must be a multiple of the type's block size. */
size_t kern_act_bytes(ggml_type type, int64_t k);

/* Sets up w for rows x k values of this type (ggml layout; src is not read here, and not kept):
 * w gets a mapping for its copy (owned by w, filled by kern_weight_pack, which must cover every
 * group before kern_matmul). LOCO_ERR_UNSUPPORTED / LOCO_ERR_INVALID name the tensor (what);
 * LOCO_ERR_NOMEM when the mapping fails. */
loco_status kern_weight_init(kern_weight *w, ggml_type type, int64_t rows,
                             int64_t k, const char *what, loco_err *err);
/* Packs groups [g0, g1) of src (the rows described to kern_weight_init) into w's copy (dense
 * types: copies those rows). Disjoint ranges may be packed by several threads at once. */
void kern_weight_pack(kern_weight *w, const void *src, int64_t g0, int64_t g1);
/* Frees what w owns; w is zeroed. NULL or a zeroed w is fine. */
void kern_weight_release(kern_weight *w);

/* Prepares one activation row: k f32 values into kern_act_bytes(type, k) bytes at act, in the
 * encoding the weight type's kernels take (8-bit blocks for the quant types, as llama.cpp's
 * activation quantizers round them; f32 for F32/F16; bf16 for BF16). */
void kern_quantize(const kern_table *kt, ggml_type type, const float *x, int64_t k, void *act);

/* out[t * out_stride + r] = row r of w . activation row t (acts + t * act_stride bytes) for
 * every t < n_tokens and r in [r0, r1). r0 must be a multiple of KERN_GROUP and r1 one too or
 * w->rows; only that range of out is written, so threads may split the rows. */
void kern_matmul(const kern_table *kt, const kern_weight *w, const void *acts, size_t act_stride,
                 int64_t n_tokens, float *out, size_t out_stride, int64_t r0, int64_t r1);

#endif

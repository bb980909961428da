/* vecmath.c: ggml-compatible numerics (see vecmath.h): the AMX kernels' block arithmetic,
 * ggml's f16/f32/bf16 dot products in the lane order of its AVX2 or AVX-512 build, its
 * SIMD expf/silu/softmax, and the attention V sum. Each function has a scalar definition of
 * the exact result; AVX2+FMA paths compute the same bits faster. Engine layer. */
#include "base/common.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define VM_X86 1
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "engine/kernels/blocks.h"
#include "engine/quant.h"
#include "engine/quant_lowbit.h"
#include "engine/vecmath.h"

#define VM_AVX2 __attribute__((target("avx2,fma,f16c")))

/* ---------------------------------------------------------------- profile */

static const vm_profile PROFILES[] = {
    {"amx", true, true, true, true, true},
    {"avx512", true, false, false, true, true},
    {"avx2", false, false, false, true, true},
    {"scalar", false, false, false, false, false},
};

#ifdef VM_X86
static bool cpu_fast(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* ggml_amx_init: Linux must grant the AMX tile data state to the process. */
static bool amx_granted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#else
    return false;
#endif
}

static vm_profile detect(void)
{
    vm_profile p = PROFILES[3];
    unsigned a, b, c, d;
    if (!cpu_fast())
        return p;
    p = PROFILES[2];
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return p;
    const bool avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    const bool vnni = (c >> 11) & 1, amx_int8 = (d >> 25) & 1, amx_tile = (d >> 24) & 1;
    bool bf16 = false;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
        bf16 = (a >> 5) & 1;
    if (!avx512f || !avx512dq)
        return p;
    p = PROFILES[1];
    p.bf16_dp = bf16;
    if (vnni && amx_int8 && amx_tile && amx_granted())
        p.amx = true, p.name = "amx";
    return p;
}
#else
static vm_profile detect(void)
{
    return PROFILES[3];
}
#endif

static vm_profile g_profile;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_profile(void)
{
    const char *e = getenv("LOCO_GGML_PROFILE");
    const vm_profile *named = e ? vm_profile_named(e) : NULL;
    g_profile = detect();
    if (named) {
        const bool fast = g_profile.fast;
        g_profile = *named;
        g_profile.fast = fast && named->fast;
    }
}

const vm_profile *vm_profile_get(void)
{
    pthread_once(&g_once, init_profile);
    return &g_profile;
}

const vm_profile *vm_profile_named(const char *name)
{
    for (size_t i = 0; i < LOCO_ARRAY_LEN(PROFILES); i++)
        if (!strcmp(PROFILES[i].name, name))
            return &PROFILES[i];
    return NULL;
}

bool vm_uses_amx(const vm_profile *p, ggml_type t)
{
    return p->amx && (t == GGML_TYPE_Q4_0 || t == GGML_TYPE_Q4_1 || t == GGML_TYPE_Q8_0 ||
                      t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q5_K || t == GGML_TYPE_Q6_K ||
                      t == GGML_TYPE_IQ4_XS);
}

/* ---------------------------------------------------------------- reductions */

/* _mm512_reduce_add_ps (GCC's order): halves, quarters, then pairs. */
static float reduce16(const float *v)
{
    float u[8], q[4];
    for (int i = 0; i < 8; i++)
        u[i] = v[i + 8] + v[i];
    for (int i = 0; i < 4; i++)
        q[i] = u[i + 4] + u[i];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* ggml's AVX2 hsum of 8 lanes: (hi128 + lo128), + movehl, + movehdup. */
static float reduce8(const float *v)
{
    float q[4];
    for (int i = 0; i < 4; i++)
        q[i] = v[i + 4] + v[i];
    return (q[0] + q[2]) + (q[1] + q[3]);
}

/* GGML_F32_VEC_REDUCE over ARR = 4 accumulators of W lanes held in acc[4 * W]. */
static float reduce_acc(const vm_profile *p, float *acc)
{
    const int w = p->wide16 ? 16 : 8;
    for (int i = 0; i < w; i++) {
        acc[i] += acc[2 * w + i];
        acc[w + i] += acc[3 * w + i];
        acc[i] += acc[w + i];
    }
    if (w == 16)
        return reduce16(acc);
    /* GGML_F32x8_REDUCE: lo128 + hi128, then two hadds */
    const float q0 = acc[0] + acc[4], q1 = acc[1] + acc[5], q2 = acc[2] + acc[6],
                q3 = acc[3] + acc[7];
    return (q0 + q1) + (q2 + q3);
}

/* ---------------------------------------------------------------- AMX kernels' arithmetic */

static float h2f(uint16_t h)
{
    return fp16_to_f32(h);
}

static float amx_q8_0(int64_t n, const void *vw, const void *va)
{
    const block_q8_0 *w = vw, *a = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t s = 0;
        for (int j = 0; j < QK8_0; j++)
            s += (int32_t)w[i].qs[j] * a[i].qs[j];
        acc = fmaf((float)s, h2f(w[i].d) * h2f(a[i].d), acc);
    }
    return acc;
}

static float amx_q4_0(int64_t n, const void *vw, const void *va)
{
    const block_q4_0 *w = vw;
    const block_q8_0 *a = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int32_t s = 0;
        for (int j = 0; j < QK4_0 / 2; j++)
            s += ((w[i].qs[j] & 0xF) - 8) * a[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
        acc = fmaf((float)s, h2f(w[i].d) * h2f(a[i].d), acc);
    }
    return acc;
}

static float amx_q4_1(int64_t n, const void *vw, const void *va)
{
    const block_q4_1 *w = vw;
    const block_q8_1 *a = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int32_t s = 0;
        for (int j = 0; j < QK4_1 / 2; j++)
            s += (w[i].qs[j] & 0xF) * a[i].qs[j] + (w[i].qs[j] >> 4) * a[i].qs[j + 16];
        acc = fmaf((float)s, h2f(w[i].d) * h2f(a[i].d), acc);
        acc = fmaf(h2f(w[i].m), h2f(a[i].s), acc);
    }
    return acc;
}

/* Q4_K / Q5_K super-block: sum_j sc_j * dot_j and sum_j m_j * bsum_j (both exact ints). */
static float amx_k45(const block_q8_K *a, uint16_t d, uint16_t dmin, const uint8_t *scales,
                     const uint8_t *qs, const uint8_t *qh, float acc)
{
    int32_t s = 0, sm = 0;
    for (int c = 0; c < 4; c++) {
        for (int half = 0; half < 2; half++) {
            const int j = 2 * c + half;
            uint8_t sc, m;
            quant_k4_scale_min(j, scales, &sc, &m);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) {
                int q = half ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0xF;
                if (qh)
                    q += ((qh[l] >> j) & 1) << 4;
                dot += q * a->qs[64 * c + 32 * half + l];
            }
            s += sc * dot;
            sm += m * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
        }
    }
    acc = fmaf((float)s, h2f(d) * a->d, acc);
    return fmaf(-(float)sm, h2f(dmin) * a->d, acc);
}

static float amx_q4_K(int64_t n, const void *vw, const void *va)
{
    const block_q4_K *w = vw;
    const block_q8_K *a = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++)
        acc = amx_k45(&a[i], w[i].d, w[i].dmin, w[i].scales, w[i].qs, NULL, acc);
    return acc;
}

/* ggml's repacked Q4_K kernels (q4_K_8x8_q8_K). Per output acc = accm = 0 and the result is
 * acc - accm; the gemv (one activation row) adds per super-block
 * acc = fma((float)sum_j sc_j*dot_j, d*d_a, acc), accm = fma((float)sum_j m_j*bsum_j, dmin*d_a,
 * accm); the gemm (rows in groups of 4) does the same per 64-value chunk (sub-blocks 2c and
 * 2c+1), four fmas per super-block. */
static float repack_q4_K(int64_t n, const void *vw, const void *va, bool gemm)
{
    const block_q4_K *w = vw;
    const block_q8_K *a = va;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float dd = h2f(w[i].d) * a[i].d, dm = h2f(w[i].dmin) * a[i].d;
        int32_t s = 0, sm = 0;
        for (int c = 0; c < 4; c++) {
            uint8_t sc0, m0, sc1, m1;
            quant_k4_scale_min(2 * c, w[i].scales, &sc0, &m0);
            quant_k4_scale_min(2 * c + 1, w[i].scales, &sc1, &m1);
            int32_t d0 = 0, d1 = 0;
            for (int l = 0; l < 32; l++) {
                d0 += (w[i].qs[32 * c + l] & 0xF) * a[i].qs[64 * c + l];
                d1 += (w[i].qs[32 * c + l] >> 4) * a[i].qs[64 * c + 32 + l];
            }
            const int32_t cs = sc0 * d0 + sc1 * d1;
            const int32_t cm = m0 * (a[i].bsums[4 * c] + a[i].bsums[4 * c + 1]) +
                               m1 * (a[i].bsums[4 * c + 2] + a[i].bsums[4 * c + 3]);
            if (gemm) {
                acc = fmaf((float)cs, dd, acc);
                accm = fmaf((float)cm, dm, accm);
            } else {
                s += cs;
                sm += cm;
            }
        }
        if (!gemm) {
            acc = fmaf((float)s, dd, acc);
            accm = fmaf((float)sm, dm, accm);
        }
    }
    return acc - accm;
}

static float repack_q4_K_gemv(int64_t n, const void *vw, const void *va)
{
    return repack_q4_K(n, vw, va, false);
}

static float repack_q4_K_gemm(int64_t n, const void *vw, const void *va)
{
    return repack_q4_K(n, vw, va, true);
}

static float amx_q5_K(int64_t n, const void *vw, const void *va)
{
    const block_q5_K *w = vw;
    const block_q8_K *a = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++)
        acc = amx_k45(&a[i], w[i].d, w[i].dmin, w[i].scales, w[i].qs, w[i].qh, acc);
    return acc;
}

static float amx_q6_K(int64_t n, const void *vw, const void *va)
{
    const block_q6_K *w = vw;
    const block_q8_K *a = va;
    float acc = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t s = 0;
        int8_t q[QK_K];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            int8_t *y = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                y[l] = (int8_t)((ql[l] & 0xF) | ((qh[l] & 3) << 4));
                y[l + 32] = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
                y[l + 64] = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                y[l + 96] = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
            }
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++)
                dot += q[16 * g + l] * a[i].qs[16 * g + l];
            s += w[i].scales[g] * (dot - 32 * a[i].bsums[g]);
        }
        acc = fmaf((float)s, h2f(w[i].d) * a[i].d, acc);
    }
    return acc;
}

#ifdef VM_X86
/* The AVX2 versions compute 8 weight rows at once for one activation row: lane r of every
 * vector is row r, so each lane performs exactly the scalar sequence above (integer sums are
 * exact in any order; the float steps are the same fma per block). */

/* Lane r = sum of the 8 int32 lanes of v[r]. */
VM_AVX2 static __m256i hsum8x8(const __m256i *v)
{
    const __m256i s01 = _mm256_hadd_epi32(v[0], v[1]), s23 = _mm256_hadd_epi32(v[2], v[3]);
    const __m256i s45 = _mm256_hadd_epi32(v[4], v[5]), s67 = _mm256_hadd_epi32(v[6], v[7]);
    const __m256i a = _mm256_hadd_epi32(s01, s23), b = _mm256_hadd_epi32(s45, s67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

/* The fp16 at p + r * stride for r = 0..7, as floats. */
VM_AVX2 static __m256 load_h8(const uint8_t *p, size_t stride)
{
    uint16_t h[8];
    for (int r = 0; r < 8; r++)
        memcpy(&h[r], p + (size_t)r * stride, 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

VM_AVX2 static float h2f_x(uint16_t h)
{
    return _cvtsh_ss(h);
}

VM_AVX2 static __m256i nibbles32(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(0xF);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

VM_AVX2 static void amx8_q8_0(const uint8_t *w, size_t rb, int64_t nb, const void *va, float *out)
{
    const block_q8_0 *a = va;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i av = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i v[8];
        for (int r = 0; r < 8; r++) {
            const block_q8_0 *b = (const block_q8_0 *)(w + (size_t)r * rb) + i;
            const __m256i wv = _mm256_loadu_si256((const __m256i *)b->qs);
            const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(av, wv));
            v[r] = _mm256_madd_epi16(p, ones);
        }
        const __m256 d = _mm256_mul_ps(load_h8(w + (size_t)i * sizeof(block_q8_0), rb),
                                       _mm256_set1_ps(h2f_x(a[i].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8x8(v)), d, acc);
    }
    _mm256_storeu_ps(out, acc);
}

/* Sum of the 32 int8 of an activation block. */
VM_AVX2 static int32_t act_sum32(__m256i av)
{
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), av),
                                        _mm256_set1_epi16(1));
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    const __m128i t = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    return _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1)));
}

VM_AVX2 static void amx8_q4_0(const uint8_t *w, size_t rb, int64_t nb, const void *va, float *out)
{
    const block_q8_0 *a = va;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i av = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i v[8];
        for (int r = 0; r < 8; r++) {
            const block_q4_0 *b = (const block_q4_0 *)(w + (size_t)r * rb) + i;
            v[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles32(b->qs), av), ones);
        }
        const __m256i off = _mm256_set1_epi32(8 * act_sum32(av));
        const __m256i isum = _mm256_sub_epi32(hsum8x8(v), off);
        const __m256 d = _mm256_mul_ps(load_h8(w + (size_t)i * sizeof(block_q4_0), rb),
                                       _mm256_set1_ps(h2f_x(a[i].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc);
    }
    _mm256_storeu_ps(out, acc);
}

VM_AVX2 static void amx8_q4_1(const uint8_t *w, size_t rb, int64_t nb, const void *va, float *out)
{
    const block_q8_1 *a = va;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i av = _mm256_loadu_si256((const __m256i *)a[i].qs);
        __m256i v[8];
        for (int r = 0; r < 8; r++) {
            const block_q4_1 *b = (const block_q4_1 *)(w + (size_t)r * rb) + i;
            v[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles32(b->qs), av), ones);
        }
        const uint8_t *blk = w + (size_t)i * sizeof(block_q4_1);
        const __m256 d = _mm256_mul_ps(load_h8(blk, rb), _mm256_set1_ps(h2f_x(a[i].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8x8(v)), d, acc);
        acc = _mm256_fmadd_ps(load_h8(blk + 2, rb), _mm256_set1_ps(h2f_x(a[i].s)), acc);
    }
    _mm256_storeu_ps(out, acc);
}

/* Q4_K (qh NULL) and Q5_K super-blocks of 8 rows: sum_j sc_j * dot_j in vector lanes, the
 * mins term per row. */
VM_AVX2 static void amx8_k45(const uint8_t *w, size_t rb, int64_t nb, const void *va, bool q5,
                             float *out)
{
    const block_q8_K *a = va;
    const size_t bs = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i v[8];
        int32_t sm[8];
        for (int r = 0; r < 8; r++) {
            const uint8_t *b = w + (size_t)r * rb + (size_t)i * bs;
            const uint8_t *scales = b + 4;
            const uint8_t *qh = q5 ? b + 16 : NULL;
            const uint8_t *qs = q5 ? b + 48 : b + 16;
            __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
            __m256i sum = _mm256_setzero_si256();
            int32_t msum = 0;
            for (int c = 0; c < 4; c++) {
                uint8_t sc0, m0, sc1, m1;
                quant_k4_scale_min(2 * c, scales, &sc0, &m0);
                quant_k4_scale_min(2 * c + 1, scales, &sc1, &m1);
                const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                __m256i lo = _mm256_and_si256(q, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (qh) {
                    const __m256i b0 = _mm256_set1_epi8((char)(1 << (2 * c)));
                    const __m256i b1 = _mm256_set1_epi8((char)(1 << (2 * c + 1)));
                    const __m256i sixteen = _mm256_set1_epi8(16);
                    lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, b0), b0), sixteen));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, b1), b1), sixteen));
                }
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * c));
                const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * c + 32));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), _mm256_set1_epi16(sc0)));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), _mm256_set1_epi16(sc1)));
                msum += m0 * (a[i].bsums[4 * c] + a[i].bsums[4 * c + 1]) +
                        m1 * (a[i].bsums[4 * c + 2] + a[i].bsums[4 * c + 3]);
            }
            v[r] = sum;
            sm[r] = msum;
        }
        const __m256 ad = _mm256_set1_ps(a[i].d);
        const uint8_t *blk = w + (size_t)i * bs;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8x8(v)), _mm256_mul_ps(load_h8(blk, rb), ad), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)sm)),
                               _mm256_mul_ps(load_h8(blk + 2, rb), ad), acc);
    }
    _mm256_storeu_ps(out, acc);
}

VM_AVX2 static void amx8_q4_K(const uint8_t *w, size_t rb, int64_t nb, const void *va, float *out)
{
    amx8_k45(w, rb, nb, va, false, out);
}

VM_AVX2 static void amx8_q5_K(const uint8_t *w, size_t rb, int64_t nb, const void *va, float *out)
{
    amx8_k45(w, rb, nb, va, true, out);
}

/* repack_q4_K of 8 rows: the per-chunk integer sums in vector lanes (one row per lane after
 * hsum8x8), then the same float steps per lane. */
VM_AVX2 static void rep8_q4_K(const uint8_t *w, size_t rb, int64_t nb, const void *va, bool gemm,
                              float *out)
{
    const block_q8_K *a = va;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i v[4][8];
        int32_t sm[4][8];
        for (int r = 0; r < 8; r++) {
            const block_q4_K *b = (const block_q4_K *)(w + (size_t)r * rb) + i;
            for (int c = 0; c < 4; c++) {
                uint8_t sc0, m0, sc1, m1;
                quant_k4_scale_min(2 * c, b->scales, &sc0, &m0);
                quant_k4_scale_min(2 * c + 1, b->scales, &sc1, &m1);
                const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
                const __m256i lo = _mm256_and_si256(q, m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * c));
                const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a[i].qs + 64 * c + 32));
                v[c][r] = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a0), _mm256_set1_epi16(sc0)),
                    _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a1), _mm256_set1_epi16(sc1)));
                sm[c][r] = m0 * (a[i].bsums[4 * c] + a[i].bsums[4 * c + 1]) +
                           m1 * (a[i].bsums[4 * c + 2] + a[i].bsums[4 * c + 3]);
            }
        }
        const __m256 ad = _mm256_set1_ps(a[i].d);
        const uint8_t *blk = w + (size_t)i * sizeof(block_q4_K);
        const __m256 dd = _mm256_mul_ps(load_h8(blk, rb), ad);
        const __m256 dm = _mm256_mul_ps(load_h8(blk + 2, rb), ad);
        __m256i s = _mm256_setzero_si256(), msum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i cs = hsum8x8(v[c]);
            const __m256i cm = _mm256_loadu_si256((const __m256i *)sm[c]);
            if (gemm) {
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(cs), dd, acc);
                accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(cm), dm, accm);
            } else {
                s = _mm256_add_epi32(s, cs);
                msum = _mm256_add_epi32(msum, cm);
            }
        }
        if (!gemm) {
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc);
            accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), dm, accm);
        }
    }
    _mm256_storeu_ps(out, _mm256_sub_ps(acc, accm));
}

VM_AVX2 static void rep8_q4_K_gemv(const uint8_t *w, size_t rb, int64_t nb, const void *va,
                                   float *out)
{
    rep8_q4_K(w, rb, nb, va, false, out);
}

VM_AVX2 static void rep8_q4_K_gemm(const uint8_t *w, size_t rb, int64_t nb, const void *va,
                                   float *out)
{
    rep8_q4_K(w, rb, nb, va, true, out);
}

VM_AVX2 static void amx8_q6_K(const uint8_t *w, size_t rb, int64_t nb, const void *va, float *out)
{
    const block_q8_K *a = va;
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i v[8];
        int32_t bias[8];
        for (int r = 0; r < 8; r++) {
            const block_q6_K *b = (const block_q6_K *)(w + (size_t)r * rb) + i;
            __m256i sum = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++) {
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
                const __m256i hh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
                q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m3), 4));
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m3), 4));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m3), 4));
                for (int k = 0; k < 4; k++) {
                    const int g = 8 * h + 2 * k;
                    const __m256i sc = _mm256_set_m128i(_mm_set1_epi16(b->scales[g + 1]),
                                                        _mm_set1_epi16(b->scales[g]));
                    const __m256i av = _mm256_loadu_si256((const __m256i *)(a[i].qs + 128 * h + 32 * k));
                    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], av), sc));
                }
            }
            int32_t bs = 0;
            for (int g = 0; g < QK_K / 16; g++)
                bs += b->scales[g] * a[i].bsums[g];
            v[r] = sum;
            bias[r] = 32 * bs;
        }
        const __m256i isum = _mm256_sub_epi32(hsum8x8(v), _mm256_loadu_si256((const __m256i *)bias));
        const __m256 d = _mm256_mul_ps(load_h8(w + (size_t)i * sizeof(block_q6_K) + 208, rb),
                                       _mm256_set1_ps(a[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc);
    }
    _mm256_storeu_ps(out, acc);
}
#endif

typedef float (*amx_dot_fn)(int64_t n, const void *w, const void *a);
typedef void (*amx8_fn)(const uint8_t *w, size_t rb, int64_t nb, const void *a, float *out);

/* out[t * out_stride + r] for rows [row_begin, row_end): 8 rows at a time with dot8 (NULL:
 * none), the rest with dot; bk values per block. */
static void rows_matmul(amx_dot_fn dot, amx8_fn dot8, int64_t bk, ggml_type type, const void *W,
                        int64_t n, const void *acts, int64_t n_tokens, size_t act_stride,
                        float *out, size_t out_stride, int64_t row_begin, int64_t row_end)
{
    const size_t rb = ggml_type_row_size(type, (uint64_t)n);
    int64_t r = row_begin;
    float o8[8];
    for (; dot8 && r + 8 <= row_end; r += 8) {
        const uint8_t *w = (const uint8_t *)W + (size_t)r * rb;
        for (int64_t t = 0; t < n_tokens; t++) {
            dot8(w, rb, n / bk, (const uint8_t *)acts + (size_t)t * act_stride, o8);
            memcpy(out + (size_t)t * out_stride + (size_t)r, o8, sizeof(o8));
        }
    }
    for (; r < row_end; r++) {
        const void *w = (const uint8_t *)W + (size_t)r * rb;
        for (int64_t t = 0; t < n_tokens; t++)
            out[(size_t)t * out_stride + (size_t)r] = dot(
                n, w, (const uint8_t *)acts + (size_t)t * act_stride);
    }
}

void vm_amx_matmul(ggml_type type, const void *W, int64_t n, const void *acts, int64_t n_tokens,
                   size_t act_stride, float *out, size_t out_stride, int64_t row_begin,
                   int64_t row_end)
{
    amx_dot_fn dot = NULL;
    amx8_fn dot8 = NULL;
    int64_t bk = QK_K;
    switch (type) {
    case GGML_TYPE_Q8_0: dot = amx_q8_0; bk = QK8_0; break;
    case GGML_TYPE_Q4_0: dot = amx_q4_0; bk = QK4_0; break;
    case GGML_TYPE_Q4_1: dot = amx_q4_1; bk = QK4_1; break;
    case GGML_TYPE_Q4_K: dot = amx_q4_K; break;
    case GGML_TYPE_Q5_K: dot = amx_q5_K; break;
    case GGML_TYPE_Q6_K: dot = amx_q6_K; break;
    case GGML_TYPE_IQ4_XS: dot = quant_lowbit_amx_iq4_xs; break;
    default: LOCO_ASSERT(!"vm_amx_matmul: type without AMX kernels"); return;
    }
#ifdef VM_X86
    if (vm_profile_get()->fast && type != GGML_TYPE_IQ4_XS) {
        switch (type) {
        case GGML_TYPE_Q8_0: dot8 = amx8_q8_0; break;
        case GGML_TYPE_Q4_0: dot8 = amx8_q4_0; break;
        case GGML_TYPE_Q4_1: dot8 = amx8_q4_1; break;
        case GGML_TYPE_Q4_K: dot8 = amx8_q4_K; break;
        case GGML_TYPE_Q5_K: dot8 = amx8_q5_K; break;
        default: dot8 = amx8_q6_K; break;
        }
    }
#endif
    rows_matmul(dot, dot8, bk, type, W, n, acts, n_tokens, act_stride, out, out_stride, row_begin,
                row_end);
}

bool vm_uses_repack(const vm_profile *p, ggml_type t, int64_t rows)
{
    /* ggml_repack_get_optimal_repack_type: q4_0_8x8, q4_K_8x8 and iq4_nl_8x8 on every AVX2
     * build, q2_K_8x8 on the AVX-512 ones; IQ4_XS stays in a plain buffer but batches go to
     * the IQ panel gemm (ggml_cpu_iqp_supports_mul_mat), with the same row condition */
    if (!p->repack || rows % 8)
        return false;
    switch (t) {
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_IQ4_NL:
    case GGML_TYPE_IQ4_XS: return true;
    case GGML_TYPE_Q2_K: return p->wide16;
    default: return false;
    }
}

void vm_repack_matmul(ggml_type type, const void *W, int64_t n, const void *acts, int64_t n_tokens,
                      size_t act_stride, float *out, size_t out_stride, int64_t row_begin,
                      int64_t row_end)
{
    if (type == GGML_TYPE_Q4_0) { /* q4_0_8x8: the AMX kernels' per-block fma */
        vm_amx_matmul(type, W, n, acts, n_tokens, act_stride, out, out_stride, row_begin, row_end);
        return;
    }
    /* ggml: the gemm takes the activation rows in groups of 4 when there are more than 3, the
     * gemv the rest */
    const int64_t n_gemm = n_tokens > 3 ? n_tokens - n_tokens % 4 : 0;
    const uint8_t *acts_v = (const uint8_t *)acts + (size_t)n_gemm * act_stride;
    float *out_v = out + (size_t)n_gemm * out_stride;
    switch (type) {
    case GGML_TYPE_IQ4_NL: /* iq4_nl_8x8: gemv and gemm alike */
        rows_matmul(quant_lowbit_repack_iq4_nl, NULL, 32, type, W, n, acts, n_tokens, act_stride,
                    out, out_stride, row_begin, row_end);
        return;
    case GGML_TYPE_Q2_K:
        rows_matmul(quant_lowbit_repack_q2_K_gemm, NULL, QK_K, type, W, n, acts, n_gemm,
                    act_stride, out, out_stride, row_begin, row_end);
        rows_matmul(quant_lowbit_repack_q2_K_gemv, NULL, QK_K, type, W, n, acts_v,
                    n_tokens - n_gemm, act_stride, out_v, out_stride, row_begin, row_end);
        return;
    case GGML_TYPE_IQ4_XS: /* the IQ panel gemm from 8 activation rows on, else vec_dot */
        if (n_tokens >= 8)
            rows_matmul(quant_lowbit_amx_iq4_xs, NULL, QK_K, type, W, n, acts, n_tokens,
                        act_stride, out, out_stride, row_begin, row_end);
        else
            quant_matmul(type, W, row_end, n, acts, n_tokens, act_stride, out, out_stride,
                         row_begin, row_end);
        return;
    default: break;
    }
    LOCO_ASSERT(type == GGML_TYPE_Q4_K && "vm_repack_matmul: type without repack kernels");
    amx8_fn gemv8 = NULL, gemm8 = NULL;
#ifdef VM_X86
    if (vm_profile_get()->fast) {
        gemv8 = rep8_q4_K_gemv;
        gemm8 = rep8_q4_K_gemm;
    }
#endif
    rows_matmul(repack_q4_K_gemm, gemm8, QK_K, type, W, n, acts, n_gemm, act_stride, out,
                out_stride, row_begin, row_end);
    rows_matmul(repack_q4_K_gemv, gemv8, QK_K, type, W, n, acts_v, n_tokens - n_gemm, act_stride,
                out_v, out_stride, row_begin, row_end);
}

/* ---------------------------------------------------------------- dot products */

#ifdef VM_X86
/* GGML_F32_VEC_REDUCE of 4 accumulators held as 8 (16 lanes = 2 vectors each) or 4 vectors. */
VM_AVX2 static float reduce_acc_x8(bool wide, const __m256 *a)
{
    if (wide) {
        const __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
        const __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
        const __m256 u = _mm256_add_ps(hi, lo);
        const __m128 q = _mm_add_ps(_mm256_extractf128_ps(u, 1), _mm256_castps256_ps128(u));
        const __m128 t = _mm_add_ps(q, _mm_shuffle_ps(q, q, 0x4E));
        return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 0x55)));
    }
    const __m256 x = _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
    const __m128 q = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    const __m128 t = _mm_hadd_ps(q, q);
    return _mm_cvtss_f32(_mm_hadd_ps(t, t));
}

VM_AVX2 static float dot_f16_x8(bool wide, int64_t np, const uint16_t *x, const uint16_t *y)
{
    __m256 a[8];
    const int nv = wide ? 8 : 4;
    for (int j = 0; j < 8; j++)
        a[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < np; i += 8 * nv)
        for (int j = 0; j < nv; j++)
            a[j] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * j))),
                                   _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8 * j))),
                                   a[j]);
    return reduce_acc_x8(wide, a);
}

/* vm_attn_v's accumulation over positions q < nv into lanes acc[(q % step) * d + i],
 * 8 output values per vector (the products are exact, so fma = add of the product). */
VM_AVX2 static void attn_v_acc_x8(int64_t step, int64_t nv, const uint16_t *V, size_t v_stride,
                                  const uint16_t *w16, int64_t d, float *acc)
{
    for (int64_t q = 0; q < nv; q++) {
        const __m256 wq = _mm256_set1_ps(_cvtsh_ss(w16[q]));
        float *a = acc + (q % step) * d;
        const uint16_t *v = V + (size_t)q * v_stride;
        for (int64_t i = 0; i < d; i += 8)
            _mm256_storeu_ps(a + i, _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i))),
                                                    wq, _mm256_loadu_ps(a + i)));
    }
}

/* The lane reductions of vm_attn_v, 8 output values per vector: ggml_vec_dot_f16's
 * (GGML_F16_VEC_REDUCE of 4 accumulators) or tinyBLAS's (one accumulator, hsum). */
VM_AVX2 static void attn_v_reduce_x8(bool wide, bool tiny, int64_t d, const float *acc, float *out)
{
    for (int64_t i = 0; i < d; i += 8) {
        __m256 t[16];
#define SLOT(k) _mm256_loadu_ps(acc + (k) * d + i)
        if (tiny) {
            const int w = wide ? 16 : 8;
            for (int l = 0; l < w; l++)
                t[l] = SLOT(l);
        } else if (wide) {
            for (int l = 0; l < 16; l++)
                t[l] = _mm256_add_ps(_mm256_add_ps(SLOT(l), SLOT(32 + l)),
                                     _mm256_add_ps(SLOT(16 + l), SLOT(48 + l)));
        } else {
            for (int l = 0; l < 8; l++)
                t[l] = _mm256_add_ps(_mm256_add_ps(SLOT(l), SLOT(16 + l)),
                                     _mm256_add_ps(SLOT(8 + l), SLOT(24 + l)));
        }
#undef SLOT
        if (wide) {
            for (int l = 0; l < 8; l++)
                t[l] = _mm256_add_ps(t[l + 8], t[l]);
            for (int l = 0; l < 4; l++)
                t[l] = _mm256_add_ps(t[l + 4], t[l]);
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_add_ps(t[0], t[2]), _mm256_add_ps(t[1], t[3])));
        } else if (tiny) {
            /* sgemm's hsum(__m256): (hi + lo), then movehl, movehdup */
            for (int l = 0; l < 4; l++)
                t[l] = _mm256_add_ps(t[l + 4], t[l]);
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_add_ps(t[0], t[2]), _mm256_add_ps(t[1], t[3])));
        } else {
            /* GGML_F32x8_REDUCE: (lo + hi), then two hadds */
            for (int l = 0; l < 4; l++)
                t[l] = _mm256_add_ps(t[l], t[l + 4]);
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_add_ps(t[0], t[1]), _mm256_add_ps(t[2], t[3])));
        }
    }
}
#endif

#ifdef VM_X86
/* _mm512_reduce_add_ps of the 16 lanes (lo, hi). */
VM_AVX2 static float reduce16_x8(__m256 lo, __m256 hi)
{
    const __m256 u = _mm256_add_ps(hi, lo);
    const __m128 q = _mm_add_ps(_mm256_extractf128_ps(u, 1), _mm256_castps256_ps128(u));
    const __m128 t = _mm_add_ps(q, _mm_shuffle_ps(q, q, 0x4E));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 0x55)));
}

VM_AVX2 static __m256 ld8(ggml_type t, const void *p, int64_t i)
{
    if (t == GGML_TYPE_F32)
        return _mm256_loadu_ps((const float *)p + i);
    if (t == GGML_TYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i))), 16));
}

/* One 16-lane accumulator over n values of x (type tx) and y (type ty), then reduce16. */
VM_AVX2 static float acc16_x8(int64_t n, ggml_type tx, const void *x, ggml_type ty, const void *y)
{
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t l = 0; l < n; l += 16) {
        lo = _mm256_fmadd_ps(ld8(tx, x, l), ld8(ty, y, l), lo);
        hi = _mm256_fmadd_ps(ld8(tx, x, l + 8), ld8(ty, y, l + 8), hi);
    }
    return reduce16_x8(lo, hi);
}

/* vdpbf16ps into lanes (lo: words 0..7, hi: words 8..15) of 16 bf16 pairs at x, y. */
VM_AVX2 static void dpbf16_x8(const uint16_t *x, const uint16_t *y, __m256 *lo, __m256 *hi)
{
    const __m256i mhi = _mm256_set1_epi32((int)0xFFFF0000u);
    for (int h = 0; h < 2; h++) {
        const __m256i a = _mm256_loadu_si256((const __m256i *)(x + 16 * h));
        const __m256i b = _mm256_loadu_si256((const __m256i *)(y + 16 * h));
        __m256 c = h ? *hi : *lo;
        c = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(a, mhi)),
                            _mm256_castsi256_ps(_mm256_and_si256(b, mhi)), c);
        c = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)),
                            _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)), c);
        if (h)
            *hi = c;
        else
            *lo = c;
    }
}

VM_AVX2 static float dot_f32_x8(bool wide, int64_t np, const float *x, const float *y)
{
    __m256 a[8];
    const int nv = wide ? 8 : 4;
    for (int j = 0; j < 8; j++)
        a[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < np; i += 8 * nv)
        for (int j = 0; j < nv; j++)
            a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j), _mm256_loadu_ps(y + i + 8 * j), a[j]);
    return reduce_acc_x8(wide, a);
}

/* ggml_vec_dot_bf16 with vdpbf16ps over np (a multiple of 64) values: two 16-lane
 * accumulators, each reduced, added in double. */
VM_AVX2 static double dot_bf16_dp_x8(int64_t np, const uint16_t *x, const uint16_t *y)
{
    __m256 c[4];
    for (int j = 0; j < 4; j++)
        c[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < np; i += 64) {
        dpbf16_x8(x + i, y + i, &c[0], &c[1]);
        dpbf16_x8(x + i + 32, y + i + 32, &c[2], &c[3]);
    }
    return (double)reduce16_x8(c[0], c[1]) + (double)reduce16_x8(c[2], c[3]);
}
#endif

float vm_dot_f16(const vm_profile *p, int64_t n, const uint16_t *x, const uint16_t *y)
{
#ifdef VM_X86
    if (p->fast) {
        const int64_t np = n & ~(int64_t)(p->wide16 ? 63 : 31);
        double sum = (double)dot_f16_x8(p->wide16, np, x, y);
        for (int64_t i = np; i < n; i++)
            sum += (double)(h2f(x[i]) * h2f(y[i]));
        return (float)sum;
    }
#endif
    const int64_t step = p->wide16 ? 64 : 32;
    const int64_t np = n & ~(step - 1);
    float acc[64] = {0};
    for (int64_t i = 0; i < np; i += step)
        for (int64_t k = 0; k < step; k++)
            acc[k] = fmaf(h2f(x[i + k]), h2f(y[i + k]), acc[k]);
    double sum = (double)reduce_acc(p, acc);
    for (int64_t i = np; i < n; i++)
        sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

float vm_dot_f32(const vm_profile *p, int64_t n, const float *x, const float *y)
{
#ifdef VM_X86
    if (p->fast) {
        const int64_t np = n & ~(int64_t)(p->wide16 ? 63 : 31);
        float sum = dot_f32_x8(p->wide16, np, x, y);
        for (int64_t i = np; i < n; i++)
            sum += x[i] * y[i];
        return sum;
    }
#endif
    const int64_t step = p->wide16 ? 64 : 32;
    const int64_t np = n & ~(step - 1);
    float acc[64] = {0};
    for (int64_t i = 0; i < np; i += step)
        for (int64_t k = 0; k < step; k++)
            acc[k] = fmaf(x[i + k], y[i + k], acc[k]);
    float sum = reduce_acc(p, acc);
    for (int64_t i = np; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

float vm_dot_bf16(const vm_profile *p, int64_t n, const uint16_t *x, const uint16_t *y)
{
    double sum = 0.0;
    int64_t i = 0;
#ifdef VM_X86
    if (p->bf16_dp && p->fast) {
        i = n & ~(int64_t)63;
        sum = dot_bf16_dp_x8(i, x, y);
    } else
#endif
    if (p->bf16_dp) {
        /* vdpbf16ps: lane j of c1 takes pairs (2j, 2j+1) of each 64-chunk, c2 those of the
         * second 32; odd product first, each step an f32 fma (exact products). */
        float c[32] = {0};
        for (; i + 64 <= n; i += 64)
            for (int j = 0; j < 32; j++) {
                const int64_t e = i + 2 * j;
                c[j] = fmaf(bf16_to_f32(x[e + 1]), bf16_to_f32(y[e + 1]), c[j]);
                c[j] = fmaf(bf16_to_f32(x[e]), bf16_to_f32(y[e]), c[j]);
            }
        sum += (double)reduce16(c);
        sum += (double)reduce16(c + 16);
    } else if (p->wide16) {
        float c[32] = {0};
        for (; i + 32 <= n; i += 32)
            for (int j = 0; j < 32; j++)
                c[j] = bf16_to_f32(x[i + j]) * bf16_to_f32(y[i + j]) + c[j];
        sum += (double)reduce16(c);
        sum += (double)reduce16(c + 16);
    } else {
        float c[32] = {0};
        for (; i + 32 <= n; i += 32)
            for (int j = 0; j < 32; j++)
                c[j] = bf16_to_f32(x[i + j]) * bf16_to_f32(y[i + j]) + c[j];
        for (int j = 0; j < 8; j++)
            c[j] = (c[j] + c[16 + j]) + (c[8 + j] + c[24 + j]);
        sum += (double)reduce8(c);
    }
    for (; i < n; i++)
        sum += (double)(bf16_to_f32(x[i]) * bf16_to_f32(y[i]));
    return (float)sum;
}

float vm_amx_dot_f16(int64_t n, const uint16_t *w, const float *a)
{
#ifdef VM_X86
    if (vm_profile_get()->fast)
        return acc16_x8(n, GGML_TYPE_F32, a, GGML_TYPE_F16, w);
#endif
    float c[16] = {0};
    for (int64_t l = 0; l < n; l += 16)
        for (int j = 0; j < 16; j++)
            c[j] = fmaf(a[l + j], h2f(w[l + j]), c[j]);
    return reduce16(c);
}

#ifdef VM_X86
VM_AVX2 static void amx_f16_rows4_x8(int64_t n, const uint16_t *w, size_t ws, const float *a,
                                     float *out)
{
    __m256 lo[4], hi[4];
    for (int r = 0; r < 4; r++)
        lo[r] = hi[r] = _mm256_setzero_ps();
    for (int64_t l = 0; l < n; l += 16) {
        const __m256 a0 = _mm256_loadu_ps(a + l), a1 = _mm256_loadu_ps(a + l + 8);
        for (int r = 0; r < 4; r++) {
            const uint16_t *x = w + (size_t)r * ws + l;
            lo[r] = _mm256_fmadd_ps(a0, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x)), lo[r]);
            hi[r] = _mm256_fmadd_ps(a1, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 8))), hi[r]);
        }
    }
    for (int r = 0; r < 4; r++)
        out[r] = reduce16_x8(lo[r], hi[r]);
}
#endif

void vm_amx_dot_f16_x4(int64_t n, const uint16_t *w, size_t w_stride, const float *a, float *out)
{
#ifdef VM_X86
    if (vm_profile_get()->fast) {
        amx_f16_rows4_x8(n, w, w_stride, a, out);
        return;
    }
#endif
    for (int r = 0; r < 4; r++)
        out[r] = vm_amx_dot_f16(n, w + (size_t)r * w_stride, a);
}

/* ---------------------------------------------------------------- tinyBLAS */

static float load_as_f32(ggml_type t, const void *x, int64_t i)
{
    if (t == GGML_TYPE_F32)
        return ((const float *)x)[i];
    if (t == GGML_TYPE_F16)
        return h2f(((const uint16_t *)x)[i]);
    return bf16_to_f32(((const uint16_t *)x)[i]);
}

bool vm_tinyblas_ok(const vm_profile *p, ggml_type type, int64_t rows, int64_t n)
{
    int64_t kn = p->wide16 ? 16 : 8;
    if (type == GGML_TYPE_BF16 && p->bf16_dp)
        kn = 32;
    return rows % 4 == 0 && n % kn == 0;
}

#ifdef VM_X86
VM_AVX2 static float tinyblas_bf16_x8(int64_t n, const uint16_t *x, const uint16_t *y)
{
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t l = 0; l < n; l += 32)
        dpbf16_x8(x + l, y + l, &lo, &hi);
    return reduce16_x8(lo, hi);
}
#endif

float vm_dot_tinyblas(const vm_profile *p, ggml_type type, int64_t n, const void *x,
                      const void *y)
{
    float c[16] = {0};
    const int64_t w = p->wide16 ? 16 : 8;
#ifdef VM_X86
    if (p->fast && p->wide16) {
        if (type == GGML_TYPE_BF16 && p->bf16_dp)
            return tinyblas_bf16_x8(n, x, y);
        return acc16_x8(n, type, x, type, y);
    }
#endif
    if (type == GGML_TYPE_BF16 && p->bf16_dp) {
        const uint16_t *a = x, *b = y;
        for (int64_t l = 0; l < n; l += 32)
            for (int j = 0; j < 16; j++) {
                const int64_t e = l + 2 * j;
                c[j] = fmaf(bf16_to_f32(a[e + 1]), bf16_to_f32(b[e + 1]), c[j]);
                c[j] = fmaf(bf16_to_f32(a[e]), bf16_to_f32(b[e]), c[j]);
            }
        return reduce16(c);
    }
    for (int64_t l = 0; l < n; l += w)
        for (int64_t j = 0; j < w; j++)
            c[j] = fmaf(load_as_f32(type, x, l + j), load_as_f32(type, y, l + j), c[j]);
    return w == 16 ? reduce16(c) : reduce8(c);
}

/* ---------------------------------------------------------------- exp, silu */

/* ggml_v_expf of one lane, AVX-512 build: j includes the 1 and is scaled by 2^n (scalef). */
static float expf16_lane(float x)
{
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                              fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f)
        return n <= 0.0f ? 0.0f : INFINITY;
    return (float)ldexp((double)j, (int)n);
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ggml_v_expf of one lane, AVX2 build: j without the 1, result k + k*j with k = 2^n built
 * from z's bits; two-step scaling beyond |n| > 126. */
static float expf8_lane(float x)
{
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f_bits(z) << 23;
    const float k = bits_f(e + f_bits(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                              fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, 0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f))
        return fmaf(j, k, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_f(g + 0x7f000000u);
    const float s2 = bits_f(e - g);
    if (fabsf(n) > 192.0f)
        return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

#ifdef VM_X86
/* Eight lanes of the AVX-512 expf: the 2^n scaling is exact for |n| <= 126 (integer add to
 * the exponent); other lanes take the scalar path. */
VM_AVX2 static __m256 expf16_x8(__m256 x)
{
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
                                        _mm256_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
                                        _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n),
                                     _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256i sh = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    __m256 res = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(j), sh));
    if (_mm256_movemask_ps(big)) {
        float xs[8], rs[8];
        _mm256_storeu_ps(xs, x);
        _mm256_storeu_ps(rs, res);
        const int m = _mm256_movemask_ps(big);
        for (int i = 0; i < 8; i++)
            if ((m >> i) & 1)
                rs[i] = expf16_lane(xs[i]);
        res = _mm256_loadu_ps(rs);
    }
    return res;
}

VM_AVX2 static __m256 expf8_x8(__m256 x)
{
    float xs[8];
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n),
                                     _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    if (_mm256_movemask_ps(big)) {
        _mm256_storeu_ps(xs, x);
        for (int i = 0; i < 8; i++)
            xs[i] = expf8_lane(xs[i]);
        return _mm256_loadu_ps(xs);
    }
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(
        _mm256_slli_epi32(_mm256_castps_si256(z), 23), _mm256_castps_si256(_mm256_set1_ps(1))));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
                                        _mm256_set1_ps(0x1.573e2ep-5f)),
                        u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
                                        _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    return _mm256_fmadd_ps(j, k, k);
}

VM_AVX2 static void swiglu_x8(bool wide, int64_t n, float *y, const float *g, const float *u)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 nx = _mm256_sub_ps(_mm256_setzero_ps(), x);
        const __m256 e = wide ? expf16_x8(nx) : expf8_x8(nx);
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
}

/* exp(s[i] - mx) for 16 (or 8) lanes, stored back, and their tree sum. */
VM_AVX2 static float softmax_chunk_x8(bool wide, float *s, float mx)
{
    const __m256 m = _mm256_set1_ps(mx);
    if (wide) {
        const __m256 a = expf16_x8(_mm256_sub_ps(_mm256_loadu_ps(s), m));
        const __m256 b = expf16_x8(_mm256_sub_ps(_mm256_loadu_ps(s + 8), m));
        _mm256_storeu_ps(s, a);
        _mm256_storeu_ps(s + 8, b);
        return reduce16(s);
    }
    const __m256 a = expf8_x8(_mm256_sub_ps(_mm256_loadu_ps(s), m));
    _mm256_storeu_ps(s, a);
    return reduce8(s);
}
#endif

static float silu_lane(bool wide, float x)
{
    const float e = wide ? expf16_lane(0.0f - x) : expf8_lane(0.0f - x);
    return x / (1.0f + e);
}

void vm_swiglu(const vm_profile *p, int64_t n, float *y, const float *g, const float *u)
{
    const int64_t w = p->wide16 ? 16 : 8;
    const int64_t np = n - n % w;
#ifdef VM_X86
    if (p->fast) {
        swiglu_x8(p->wide16, np, y, g, u);
    } else
#endif
    {
        for (int64_t i = 0; i < np; i++)
            y[i] = silu_lane(p->wide16, g[i]) * u[i];
    }
    for (int64_t i = np; i < n; i++)
        y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ---------------------------------------------------------------- softmax */

void vm_soft_max(const vm_profile *p, int64_t n_pad, int64_t n, float *s, float scale)
{
    const int64_t w = p->wide16 ? 16 : 8;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s[i] *= scale;
        mx = s[i] > mx ? s[i] : mx;
    }
    double sum = 0.0;
    const int64_t np = n_pad - n_pad % w;
    int64_t i = 0;
    float chunk[16];
    for (; i < np && i < n; i += w) {
        const int64_t k = n - i < w ? n - i : w;
        for (int64_t j = 0; j < w; j++)
            chunk[j] = j < k ? s[i + j] : -INFINITY;
        float cs;
#ifdef VM_X86
        if (p->fast) {
            cs = softmax_chunk_x8(p->wide16, chunk, mx);
        } else
#endif
        {
            for (int64_t j = 0; j < w; j++)
                chunk[j] = p->wide16 ? expf16_lane(chunk[j] - mx) : expf8_lane(chunk[j] - mx);
            cs = w == 16 ? reduce16(chunk) : reduce8(chunk);
        }
        sum += (double)cs;
        memcpy(s + i, chunk, (size_t)k * sizeof(float));
    }
    for (; i < n; i++) {
        s[i] = expf(s[i] - mx);
        sum += (double)s[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++)
        s[j] *= inv;
}

/* ---------------------------------------------------------------- attention V */

void vm_attn_v(const vm_profile *p, bool batch, int64_t n_pad, int64_t n, const uint16_t *V,
               size_t v_stride, const uint16_t *w16, int64_t d, float *acc, float *out)
{
    const bool tiny = batch && vm_tinyblas_ok(p, GGML_TYPE_F16, d, n_pad);
    const int64_t step = tiny ? (p->wide16 ? 16 : 8) : (p->wide16 ? 64 : 32);
    const int64_t np = tiny ? n_pad : n_pad & ~(step - 1);
    const int64_t nv = n < np ? n : np;
    memset(acc, 0, (size_t)(step * d) * sizeof(float));
#ifdef VM_X86
    if (p->fast && d % 8 == 0) {
        attn_v_acc_x8(step, nv, V, v_stride, w16, d, acc);
        attn_v_reduce_x8(p->wide16, tiny, d, acc, out);
        for (int64_t i = 0; i < d && nv < n; i++) {
            double sum = (double)out[i];
            for (int64_t q = nv; q < n; q++)
                sum += (double)(h2f(V[(size_t)q * v_stride + i]) * h2f(w16[q]));
            out[i] = (float)sum;
        }
        return;
    }
#endif
    for (int64_t q = 0; q < nv; q++) {
        const float wq = h2f(w16[q]);
        float *a = acc + (q % step) * d;
        const uint16_t *v = V + (size_t)q * v_stride;
        for (int64_t i = 0; i < d; i++)
            a[i] = fmaf(h2f(v[i]), wq, a[i]);
    }
    float lanes[64];
    for (int64_t i = 0; i < d; i++) {
        for (int64_t k = 0; k < step; k++)
            lanes[k] = acc[k * d + i];
        if (tiny) {
            out[i] = step == 16 ? reduce16(lanes) : reduce8(lanes);
            continue;
        }
        double sum = (double)reduce_acc(p, lanes);
        for (int64_t q = nv; q < n; q++)
            sum += (double)(h2f(V[(size_t)q * v_stride + i]) * h2f(w16[q]));
        out[i] = (float)sum;
    }
}

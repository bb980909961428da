/* tokenizer.c: Qwen3 byte-level BPE (engine layer). Pre-tokenization is a hand-written twin of
 * the qwen2 regex over generated Unicode tables (unicode_data.c), then BPE merges by rank with a
 * binary heap on raw bytes; NFC, special-token matching, decoding and the streaming decoder. */
#include "base/common.h"

#include "engine/tokenizer.h"

#include "base/json.h"
#include "base/utf8.h"
#include "engine/gguf.h"
#include "engine/unicode_data.h"

#define CP_EOF 0xFFFFFFFFu      /* past the end of the text */
#define CP_INVALID UTF8_INVALID /* one byte of invalid UTF-8 (0xFFFFFFFE) */
#define BYTE_CP_LIMIT 324u      /* GPT-2 byte-to-unicode uses code points below this */

/* Hash table of ids keyed by a byte string stored elsewhere (open addressing, 0 = empty). */
typedef struct {
    uint32_t *slots; /* id + 1 */
    size_t mask;
} str_map;

/* Merge table keyed by (left id, right id). */
typedef struct {
    uint64_t *keys; /* (left << 32 | right) + 1, 0 = empty */
    uint32_t *rank;
    int32_t *result;
    size_t mask;
} pair_map;

struct tok {
    size_t n;
    uint8_t *types;  /* (n) tok_type */
    char *raw;       /* raw bytes of every token, concatenated */
    size_t *raw_off; /* (n + 1) */
    char *vocab;     /* vocab-form strings, concatenated */
    size_t *voc_off; /* (n + 1) */
    bool *bpe;       /* (n) takes part in BPE */
    str_map raw_map; /* raw bytes -> id, BPE tokens only */
    str_map voc_map; /* vocab form -> id, all tokens */
    pair_map pairs;
    int32_t byte_id[256];
    int32_t *added;        /* ids of CONTROL / USER_DEFINED tokens, grouped by first byte */
    size_t added_at[257];  /* added[added_at[b] .. added_at[b+1]) start with byte b */
    bool nfc;
};

/* ---------------------------------------------------------------- byte-level mapping */

static void byte_tables(uint32_t byte_cp[256], int16_t cp_byte[BYTE_CP_LIMIT])
{
    uint32_t extra = 256;
    for (uint32_t i = 0; i < BYTE_CP_LIMIT; i++)
        cp_byte[i] = -1;
    for (uint32_t b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        byte_cp[b] = printable ? b : extra++;
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

/* ---------------------------------------------------------------- Unicode lookups */

static uint32_t range_lookup(const unicode_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return r[mid].v;
    }
    return 0;
}

static uint32_t cp_class(uint32_t cp)
{
    static const uint8_t ascii[128] = {
        ['\t'] = UNICODE_SPACE, ['\n'] = UNICODE_SPACE, ['\v'] = UNICODE_SPACE,
        ['\f'] = UNICODE_SPACE, ['\r'] = UNICODE_SPACE, [' '] = UNICODE_SPACE,
        ['0'] = UNICODE_NUMBER, ['1'] = UNICODE_NUMBER, ['2'] = UNICODE_NUMBER,
        ['3'] = UNICODE_NUMBER, ['4'] = UNICODE_NUMBER, ['5'] = UNICODE_NUMBER,
        ['6'] = UNICODE_NUMBER, ['7'] = UNICODE_NUMBER, ['8'] = UNICODE_NUMBER,
        ['9'] = UNICODE_NUMBER,
    };
    if (cp < 128) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return UNICODE_LETTER;
        return ascii[cp];
    }
    if (cp >= CP_INVALID)
        return 0;
    return range_lookup(unicode_class_ranges, unicode_class_ranges_len, cp);
}

static uint32_t cp_ccc(uint32_t cp)
{
    if (cp < 0x300)
        return 0;
    return range_lookup(unicode_ccc_ranges, unicode_ccc_ranges_len, cp);
}

static bool cp_nfc_unstable(uint32_t cp)
{
    if (cp < unicode_nfc_stable_below || cp >= CP_INVALID)
        return false;
    return range_lookup(unicode_unstable_ranges, unicode_unstable_ranges_len, cp) != 0;
}

/* ---------------------------------------------------------------- pre-tokenizer */

typedef struct {
    uint32_t cp, cls;
    size_t len;
} ucp;

static ucp ucp_at(const char *text, size_t n, size_t pos)
{
    ucp u = {CP_EOF, 0, 0};
    if (pos >= n)
        return u;
    u.cp = utf8_decode(text + pos, n - pos, &u.len);
    u.cls = cp_class(u.cp);
    return u;
}

static bool is_ascii_lower(char c, char want) { return c == want || c == want - 32; }

/* Length of a contraction ('s 't 're 've 'm 'll 'd, ASCII case-insensitive) at pos, or 0. */
static size_t contraction_len(const char *t, size_t n, size_t pos)
{
    if (t[pos] != '\'' || pos + 1 >= n)
        return 0;
    char a = t[pos + 1];
    if (is_ascii_lower(a, 's') || is_ascii_lower(a, 't') || is_ascii_lower(a, 'm') ||
        is_ascii_lower(a, 'd'))
        return 2;
    if (pos + 2 >= n)
        return 0;
    char b = t[pos + 2];
    if ((is_ascii_lower(a, 'r') && is_ascii_lower(b, 'e')) ||
        (is_ascii_lower(a, 'v') && is_ascii_lower(b, 'e')) ||
        (is_ascii_lower(a, 'l') && is_ascii_lower(b, 'l')))
        return 3;
    return 0;
}

static size_t skip_class(const char *t, size_t n, size_t p, uint32_t cls, bool want)
{
    while (p < n) {
        ucp u = ucp_at(t, n, p);
        if (((u.cls & cls) != 0) != want)
            break;
        p += u.len;
    }
    return p;
}

/* End of the pre-token starting at pos (< n): the alternatives of
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+ in order, as a leftmost regex engine tries them. */
static size_t pretoken_end(const char *t, size_t n, size_t pos)
{
    const uint32_t LNS = UNICODE_LETTER | UNICODE_NUMBER | UNICODE_SPACE;
    size_t k = contraction_len(t, n, pos);
    if (k)
        return pos + k;
    ucp c = ucp_at(t, n, pos);
    bool crlf = c.cp == '\r' || c.cp == '\n';
    if (!crlf && !(c.cls & UNICODE_NUMBER)) {
        if ((c.cls & UNICODE_LETTER) || (ucp_at(t, n, pos + c.len).cls & UNICODE_LETTER))
            return skip_class(t, n, pos + c.len, UNICODE_LETTER, true);
    }
    if (c.cls & UNICODE_NUMBER)
        return pos + c.len;
    size_t p = pos;
    ucp d = c;
    if (c.cp == ' ') {
        p = pos + 1;
        d = ucp_at(t, n, p);
    }
    if (d.cp != CP_EOF && !(d.cls & LNS)) {
        p = skip_class(t, n, p, LNS, false);
        while (p < n && (t[p] == '\r' || t[p] == '\n'))
            p++;
        return p;
    }
    size_t nws = 0, last_rn_end = 0, last_start = pos;
    p = pos;
    while (p < n) {
        ucp u = ucp_at(t, n, p);
        if (!(u.cls & UNICODE_SPACE))
            break;
        if (u.cp == '\r' || u.cp == '\n')
            last_rn_end = p + 1;
        last_start = p;
        p += u.len;
        nws++;
    }
    if (last_rn_end)
        return last_rn_end;
    if (nws > 1 && p < n)
        return last_start;
    if (nws > 0)
        return p;
    return pos + c.len;
}

void tok_pretokenize(const char *text, size_t n,
                     void (*fn)(const char *piece, size_t len, void *ctx), void *ctx)
{
    size_t pos = 0;
    while (pos < n) {
        size_t end = pretoken_end(text, n, pos);
        fn(text + pos, end - pos, ctx);
        pos = end;
    }
}

/* ---------------------------------------------------------------- NFC */

typedef struct {
    uint32_t *v;
    size_t len, cap;
} u32vec;

static bool u32_push(u32vec *a, uint32_t x)
{
    if (a->len == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 32;
        uint32_t *nv = realloc(a->v, cap * sizeof(*nv));
        if (!nv)
            return false;
        a->v = nv, a->cap = cap;
    }
    a->v[a->len++] = x;
    return true;
}

enum { HS_BASE = 0xAC00, HL_BASE = 0x1100, HV_BASE = 0x1161, HT_BASE = 0x11A7 };
enum { HL_COUNT = 19, HV_COUNT = 21, HT_COUNT = 28, HN_COUNT = 21 * 28, HS_COUNT = 11172 };

static bool decompose(uint32_t cp, u32vec *d)
{
    if (cp >= HS_BASE && cp < HS_BASE + HS_COUNT) {
        uint32_t si = cp - HS_BASE;
        bool ok = u32_push(d, HL_BASE + si / HN_COUNT) &&
                  u32_push(d, HV_BASE + (si % HN_COUNT) / HT_COUNT);
        if (ok && si % HT_COUNT)
            ok = u32_push(d, HT_BASE + si % HT_COUNT);
        return ok;
    }
    size_t lo = 0, hi = unicode_decomps_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_decomps[mid].cp < cp) {
            lo = mid + 1;
        } else if (unicode_decomps[mid].cp > cp) {
            hi = mid;
        } else {
            const unicode_decomp *e = &unicode_decomps[mid];
            for (size_t i = 0; i < e->len; i++)
                if (!u32_push(d, unicode_decomp_pool[e->off + i]))
                    return false;
            return true;
        }
    }
    return u32_push(d, cp);
}

/* Primary composite of (a, b), or CP_EOF. */
static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= HL_BASE && a < HL_BASE + HL_COUNT && b >= HV_BASE && b < HV_BASE + HV_COUNT)
        return HS_BASE + ((a - HL_BASE) * HV_COUNT + (b - HV_BASE)) * HT_COUNT;
    if (a >= HS_BASE && a < HS_BASE + HS_COUNT && (a - HS_BASE) % HT_COUNT == 0 && b > HT_BASE &&
        b < HT_BASE + HT_COUNT)
        return a + (b - HT_BASE);
    size_t lo = 0, hi = unicode_comps_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const unicode_comp *e = &unicode_comps[mid];
        if (e->a < a || (e->a == a && e->b < b))
            lo = mid + 1;
        else if (e->a == a && e->b == b)
            return e->c;
        else
            hi = mid;
    }
    return CP_EOF;
}

/* Stable sort of a run of non-starters by combining class (counting sort: runs of marks in
 * hostile input can be long, and there are only 55 class ranks). */
static bool sort_marks(uint32_t *v, size_t len)
{
    if (len < 2)
        return true;
    if (len <= 16) {
        for (size_t i = 1; i < len; i++) {
            uint32_t x = v[i], cx = cp_ccc(x);
            size_t j = i;
            while (j > 0 && cp_ccc(v[j - 1]) > cx) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return true;
    }
    uint32_t *tmp = malloc(len * sizeof(*tmp));
    if (!tmp)
        return false;
    size_t count[257] = {0};
    for (size_t i = 0; i < len; i++)
        count[cp_ccc(v[i]) + 1]++;
    for (size_t c = 1; c < 257; c++)
        count[c] += count[c - 1];
    for (size_t i = 0; i < len; i++)
        tmp[count[cp_ccc(v[i])]++] = v[i];
    memcpy(v, tmp, len * sizeof(*tmp));
    free(tmp);
    return true;
}

/* NFC of the code points d (decomposed in place), appended to out as UTF-8. */
static loco_status nfc_segment(u32vec *d, buf *out)
{
    for (size_t i = 0; i < d->len;) {
        if (!cp_ccc(d->v[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < d->len && cp_ccc(d->v[j]))
            j++;
        if (!sort_marks(d->v + i, j - i))
            return LOCO_ERR_NOMEM;
        i = j;
    }
    if (!d->len)
        return LOCO_OK;
    size_t outn = 1, starter_pos = 0;
    uint32_t starter = d->v[0];
    uint32_t last_class = cp_ccc(starter) ? 256 : 0;
    for (size_t i = 1; i < d->len; i++) {
        uint32_t ch = d->v[i], cl = cp_ccc(ch);
        uint32_t c = compose(starter, ch);
        if (c != CP_EOF && (last_class < cl || last_class == 0)) {
            d->v[starter_pos] = c;
            starter = c;
            continue;
        }
        if (cl == 0) {
            starter_pos = outn;
            starter = ch;
        }
        last_class = cl;
        d->v[outn++] = ch;
    }
    for (size_t i = 0; i < outn; i++) {
        char u[4];
        size_t k = utf8_encode(d->v[i], u);
        loco_status st = buf_append(out, u, k);
        if (st)
            return st;
    }
    return LOCO_OK;
}

/* Byte offset of the first NFC-unstable code point in text, or n. */
static size_t first_unstable(const char *text, size_t n, size_t from)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = from;
    while (i < n) {
        if (s[i] < 0xCC) { /* below U+0300 (and stray bytes): stable */
            i++;
            continue;
        }
        size_t len;
        uint32_t cp = utf8_decode((const char *)s + i, n - i, &len);
        if (cp_nfc_unstable(cp))
            return i;
        i += len;
    }
    return n;
}

/* Start of the valid code point that ends at byte `end` (> floor), or end when there is none. */
static size_t prev_cp_start(const char *text, size_t floor, size_t end)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t k = 1; k <= 4 && end >= floor + k; k++) {
        size_t len;
        uint32_t cp = utf8_decode((const char *)s + end - k, k, &len);
        if (cp != CP_INVALID && len == k)
            return end - k;
        if (!utf8_is_cont(s[end - k]))
            break;
    }
    return end;
}

loco_status tok_nfc(const char *text, size_t n, buf *out)
{
    const unsigned char *s = (const unsigned char *)text;
    u32vec d = {0};
    loco_status st = LOCO_OK;
    size_t copied = 0, scan = 0;
    while (scan < n) {
        size_t u = first_unstable(text, n, scan);
        if (u == n)
            break;
        size_t seg = prev_cp_start(text, copied, u); /* the stable starter before, if any */
        st = buf_append(out, text + copied, seg - copied);
        if (st)
            goto out;
        d.len = 0;
        size_t p = seg;
        while (p < n) {
            size_t len;
            uint32_t cp = utf8_decode((const char *)s + p, n - p, &len);
            if (cp == CP_INVALID || (p > u && !cp_nfc_unstable(cp)))
                break;
            if (!decompose(cp, &d)) {
                st = LOCO_ERR_NOMEM;
                goto out;
            }
            p += len;
        }
        st = nfc_segment(&d, out);
        if (st)
            goto out;
        copied = scan = p;
    }
    st = buf_append(out, text + copied, n - copied);
out:
    free(d.v);
    return st;
}

/* ---------------------------------------------------------------- hash tables */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

static bool str_map_init(str_map *m, size_t n)
{
    size_t cap = pow2_at_least(n * 2);
    m->slots = calloc(cap, sizeof(*m->slots));
    m->mask = cap - 1;
    return m->slots != NULL;
}

/* Looks s up among the strings blob[off[id] .. off[id+1]); returns the slot index. */
static size_t str_map_slot(const str_map *m, const char *blob, const size_t *off, const char *s,
                           size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & m->mask;
    for (;;) {
        uint32_t v = m->slots[i];
        if (!v)
            return i;
        uint32_t id = v - 1;
        size_t len = off[id + 1] - off[id];
        if (len == n && memcmp(blob + off[id], s, n) == 0)
            return i;
        i = (i + 1) & m->mask;
    }
}

static int32_t str_map_get(const str_map *m, const char *blob, const size_t *off, const char *s,
                           size_t n)
{
    if (!m->slots)
        return -1;
    uint32_t v = m->slots[str_map_slot(m, blob, off, s, n)];
    return v ? (int32_t)(v - 1) : -1;
}

/* Inserts id (whose string is already in blob) unless the string is present. */
static void str_map_put(str_map *m, const char *blob, const size_t *off, uint32_t id)
{
    size_t i = str_map_slot(m, blob, off, blob + off[id], off[id + 1] - off[id]);
    if (!m->slots[i])
        m->slots[i] = id + 1;
}

static size_t pair_slot(const pair_map *m, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

static bool pair_get(const pair_map *m, int32_t a, int32_t b, uint32_t *out_rank,
                     int32_t *out_result)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = pair_slot(m, key);
    if (!m->keys[i])
        return false;
    *out_rank = m->rank[i];
    *out_result = m->result[i];
    return true;
}

/* ---------------------------------------------------------------- construction */

static size_t cfg_len(const char *const *s, const size_t *lens, size_t i)
{
    return lens ? lens[i] : strlen(s[i]);
}

/* Byte-level decode of a vocab-form string into out (capacity >= n); false when a character
 * is not one of the 256 byte characters. */
static bool bytelevel_decode(const int16_t cp_byte[BYTE_CP_LIMIT], const char *s, size_t n,
                             char *out, size_t *out_len)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t len;
        uint32_t cp = utf8_decode(s + i, n - i, &len);
        if (cp >= BYTE_CP_LIMIT || cp_byte[cp] < 0)
            return false;
        out[k++] = (char)cp_byte[cp];
        i += len;
    }
    *out_len = k;
    return true;
}

static loco_status load_tokens(tok *t, const tok_config *cfg, loco_err *err)
{
    uint32_t byte_cp[256];
    int16_t cp_byte[BYTE_CP_LIMIT];
    byte_tables(byte_cp, cp_byte);
    size_t total = 0;
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        if (!cfg->tokens[i])
            return loco_err_set(err, LOCO_ERR_INVALID, "token %zu is missing", i);
        size_t len = cfg_len(cfg->tokens, cfg->token_lens, i);
        if (len > TOK_MAX_TOKEN_BYTES)
            return loco_err_set(err, LOCO_ERR_LIMIT, "token %zu is %zu bytes (limit %u)", i, len,
                                TOK_MAX_TOKEN_BYTES);
        total += len;
    }
    t->types = malloc(cfg->n_tokens + 1);
    t->bpe = calloc(cfg->n_tokens + 1, sizeof(*t->bpe));
    t->raw = malloc(total + 1);
    t->vocab = malloc(total + 1);
    t->raw_off = malloc((cfg->n_tokens + 1) * sizeof(size_t));
    t->voc_off = malloc((cfg->n_tokens + 1) * sizeof(size_t));
    if (!t->types || !t->bpe || !t->raw || !t->vocab || !t->raw_off || !t->voc_off ||
        !str_map_init(&t->raw_map, cfg->n_tokens) || !str_map_init(&t->voc_map, cfg->n_tokens))
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory loading %zu tokens",
                            cfg->n_tokens);
    size_t rp = 0, vp = 0;
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        const char *s = cfg->tokens[i];
        size_t len = cfg_len(cfg->tokens, cfg->token_lens, i);
        int32_t ty = cfg->types ? cfg->types[i] : TOK_TYPE_NORMAL;
        t->types[i] = (uint8_t)(ty >= 0 && ty <= TOK_TYPE_BYTE ? ty : TOK_TYPE_UNDEFINED);
        memcpy(t->vocab + vp, s, len);
        t->voc_off[i] = vp;
        vp += len;
        t->raw_off[i] = rp;
        size_t rawlen = 0;
        bool bytelevel = ty == TOK_TYPE_NORMAL || ty == TOK_TYPE_BYTE;
        if (bytelevel && bytelevel_decode(cp_byte, s, len, t->raw + rp, &rawlen) && rawlen) {
            t->bpe[i] = true;
        } else {
            memcpy(t->raw + rp, s, len);
            rawlen = len;
        }
        rp += rawlen;
    }
    t->raw_off[cfg->n_tokens] = rp;
    t->voc_off[cfg->n_tokens] = vp;
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        str_map_put(&t->voc_map, t->vocab, t->voc_off, (uint32_t)i);
        if (t->bpe[i])
            str_map_put(&t->raw_map, t->raw, t->raw_off, (uint32_t)i);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = str_map_get(&t->raw_map, t->raw, t->raw_off, &c, 1);
        if (t->byte_id[b] < 0)
            return loco_err_set(err, LOCO_ERR_INVALID, "byte 0x%02x has no token in the vocab",
                                b);
    }
    return LOCO_OK;
}

static loco_status load_merges(tok *t, const tok_config *cfg, loco_err *err)
{
    uint32_t byte_cp[256];
    int16_t cp_byte[BYTE_CP_LIMIT];
    byte_tables(byte_cp, cp_byte);
    size_t cap = pow2_at_least(cfg->n_merges * 2);
    t->pairs.keys = calloc(cap, sizeof(uint64_t));
    t->pairs.rank = malloc(cap * sizeof(uint32_t));
    t->pairs.result = malloc(cap * sizeof(int32_t));
    t->pairs.mask = cap - 1;
    char *tmp = malloc(2 * (size_t)TOK_MAX_TOKEN_BYTES);
    if (!t->pairs.keys || !t->pairs.rank || !t->pairs.result || !tmp) {
        free(tmp);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory loading %zu merges",
                            cfg->n_merges);
    }
    for (size_t r = 0; r < cfg->n_merges; r++) {
        const char *m = cfg->merges[r];
        if (!m) {
            free(tmp);
            return loco_err_set(err, LOCO_ERR_INVALID, "merge %zu is missing", r);
        }
        size_t len = cfg_len(cfg->merges, cfg->merge_lens, r);
        const char *sp = len > TOK_MAX_TOKEN_BYTES ? NULL : memchr(m, ' ', len);
        size_t la, lb;
        if (!sp || sp == m || sp + 1 == m + len ||
            !bytelevel_decode(cp_byte, m, (size_t)(sp - m), tmp, &la) ||
            !bytelevel_decode(cp_byte, sp + 1, (size_t)(m + len - sp - 1), tmp + la, &lb))
            continue; /* malformed or not byte-level: cannot apply to any text */
        int32_t a = str_map_get(&t->raw_map, t->raw, t->raw_off, tmp, la);
        int32_t b = str_map_get(&t->raw_map, t->raw, t->raw_off, tmp + la, lb);
        int32_t c = str_map_get(&t->raw_map, t->raw, t->raw_off, tmp, la + lb);
        if (a < 0 || b < 0 || c < 0)
            continue;
        uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        size_t i = pair_slot(&t->pairs, key);
        if (t->pairs.keys[i])
            continue; /* the first (lowest rank) wins */
        t->pairs.keys[i] = key;
        t->pairs.rank[i] = (uint32_t)r;
        t->pairs.result[i] = c;
    }
    free(tmp);
    return LOCO_OK;
}

static loco_status load_added(tok *t, loco_err *err)
{
    size_t count[257] = {0};
    for (size_t i = 0; i < t->n; i++) {
        bool added = t->types[i] == TOK_TYPE_CONTROL || t->types[i] == TOK_TYPE_USER_DEFINED;
        if (added && t->raw_off[i + 1] > t->raw_off[i])
            count[(unsigned char)t->raw[t->raw_off[i]] + 1]++;
    }
    for (size_t b = 1; b < 257; b++)
        count[b] += count[b - 1];
    memcpy(t->added_at, count, sizeof(count));
    t->added = malloc((count[256] + 1) * sizeof(int32_t));
    if (!t->added)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < t->n; i++) {
        bool added = t->types[i] == TOK_TYPE_CONTROL || t->types[i] == TOK_TYPE_USER_DEFINED;
        if (added && t->raw_off[i + 1] > t->raw_off[i])
            t->added[count[(unsigned char)t->raw[t->raw_off[i]]]++] = (int32_t)i;
    }
    return LOCO_OK;
}

loco_status tok_new(const tok_config *cfg, tok **out_t, loco_err *err)
{
    *out_t = NULL;
    if (!cfg || !cfg->tokens || cfg->n_tokens == 0)
        return loco_err_set(err, LOCO_ERR_INVALID, "tokenizer has no tokens");
    if (cfg->n_tokens > TOK_MAX_VOCAB)
        return loco_err_set(err, LOCO_ERR_LIMIT, "tokenizer has %zu tokens (limit %u)",
                            cfg->n_tokens, TOK_MAX_VOCAB);
    if (cfg->n_merges > TOK_MAX_MERGES || (cfg->n_merges && !cfg->merges))
        return loco_err_set(err, LOCO_ERR_LIMIT, "tokenizer has %zu merges (limit %u)",
                            cfg->n_merges, TOK_MAX_MERGES);
    tok *t = calloc(1, sizeof(*t));
    if (!t)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    t->n = cfg->n_tokens;
    t->nfc = cfg->nfc;
    loco_status st = load_tokens(t, cfg, err);
    if (!st)
        st = load_merges(t, cfg, err);
    if (!st)
        st = load_added(t, err);
    if (st) {
        tok_free(t);
        return st;
    }
    *out_t = t;
    return LOCO_OK;
}

void tok_free(tok *t)
{
    if (!t)
        return;
    free(t->types);
    free(t->bpe);
    free(t->raw);
    free(t->raw_off);
    free(t->vocab);
    free(t->voc_off);
    free(t->raw_map.slots);
    free(t->voc_map.slots);
    free(t->pairs.keys);
    free(t->pairs.rank);
    free(t->pairs.result);
    free(t->added);
    free(t);
}

size_t tok_vocab_size(const tok *t) { return t->n; }

tok_type tok_token_type(const tok *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n)
        return TOK_TYPE_UNDEFINED;
    return (tok_type)t->types[id];
}

int32_t tok_find(const tok *t, const char *s, size_t n)
{
    return str_map_get(&t->voc_map, t->vocab, t->voc_off, s, n);
}

const char *tok_token_bytes(const tok *t, int32_t id, size_t *out_len)
{
    if (id < 0 || (size_t)id >= t->n) {
        *out_len = 0;
        return NULL;
    }
    *out_len = t->raw_off[id + 1] - t->raw_off[id];
    return t->raw + t->raw_off[id];
}

/* ---------------------------------------------------------------- id vector */

void tok_ids_init(tok_ids *v, size_t max)
{
    v->ids = NULL;
    v->len = v->cap = 0;
    v->max = max;
}

void tok_ids_release(tok_ids *v)
{
    free(v->ids);
    tok_ids_init(v, v->max);
}

loco_status tok_ids_push(tok_ids *v, int32_t id)
{
    if (v->len >= v->max)
        return LOCO_ERR_LIMIT;
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *n = realloc(v->ids, cap * sizeof(*n));
        if (!n)
            return LOCO_ERR_NOMEM;
        v->ids = n, v->cap = cap;
    }
    v->ids[v->len++] = id;
    return LOCO_OK;
}

/* ---------------------------------------------------------------- BPE */

typedef struct {
    uint32_t rank, pos;          /* heap order: rank, then leftmost */
    int32_t left, right, result; /* the ids the pair had when pushed (stale ones are skipped) */
} bpe_cand;

typedef struct {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
} bpe_sym;

/* Per-call scratch (tok_encode allocates it, so a const tok is shareable across threads). */
typedef struct {
    const tok *t;
    bpe_sym *sym;
    size_t sym_cap;
    bpe_cand *heap;
    size_t heap_len, heap_cap;
    tok_ids *out;
    loco_status st;
} bpe_ws;

static bool cand_less(const bpe_cand *a, const bpe_cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_ws *w, bpe_cand c)
{
    size_t i = w->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[parent]))
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = c;
}

static bpe_cand heap_pop(bpe_ws *w)
{
    bpe_cand top = w->heap[0];
    bpe_cand last = w->heap[--w->heap_len];
    size_t i = 0, n = w->heap_len;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const bpe_cand *bc = &last;
        if (l < n && cand_less(&w->heap[l], bc)) {
            best = l;
            bc = &w->heap[l];
        }
        if (l + 1 < n && cand_less(&w->heap[l + 1], bc))
            best = l + 1;
        if (best == i)
            break;
        w->heap[i] = w->heap[best];
        i = best;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

static void try_pair(bpe_ws *w, int32_t left)
{
    if (left < 0)
        return;
    int32_t right = w->sym[left].next;
    if (right < 0)
        return;
    uint32_t rank;
    int32_t result;
    int32_t a = w->sym[left].id, b = w->sym[right].id;
    if (!pair_get(&w->t->pairs, a, b, &rank, &result))
        return;
    heap_push(w, (bpe_cand){rank, (uint32_t)left, a, b, result});
}

static bool ws_reserve(bpe_ws *w, size_t n)
{
    if (n <= w->sym_cap)
        return true;
    size_t cap = pow2_at_least(n);
    bpe_sym *s = realloc(w->sym, cap * sizeof(*s));
    if (!s)
        return false;
    w->sym = s;
    bpe_cand *h = realloc(w->heap, cap * 2 * sizeof(*h));
    if (!h)
        return false;
    w->heap = h;
    w->sym_cap = cap;
    w->heap_cap = cap * 2;
    return true;
}

/* Encodes one pre-token (raw bytes) by merging adjacent symbols, lowest rank first. Each merge
 * pushes at most two candidates and removes one symbol, so the heap stays below 2n. */
static void bpe_piece(const char *p, size_t n, void *ctx)
{
    bpe_ws *w = ctx;
    const tok *t = w->t;
    if (w->st || n == 0)
        return;
    if (n == 1) {
        w->st = tok_ids_push(w->out, t->byte_id[(unsigned char)p[0]]);
        return;
    }
    if (!ws_reserve(w, n)) {
        w->st = LOCO_ERR_NOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        w->sym[i].id = t->byte_id[(unsigned char)p[i]];
        w->sym[i].prev = (int32_t)i - 1;
        w->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap_len = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_pair(w, (int32_t)i);
    while (w->heap_len) {
        bpe_cand c = heap_pop(w);
        bpe_sym *l = &w->sym[c.pos];
        if (l->id != c.left || l->next < 0 || w->sym[l->next].id != c.right)
            continue; /* stale: one side was merged since */
        bpe_sym *r = &w->sym[l->next];
        l->id = c.result;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = (int32_t)c.pos;
        r->id = -1;
        try_pair(w, l->prev);
        try_pair(w, (int32_t)c.pos);
    }
    for (int32_t i = 0; i >= 0 && !w->st; i = w->sym[i].next)
        w->st = tok_ids_push(w->out, w->sym[i].id);
}

static loco_status encode_plain(bpe_ws *w, const char *text, size_t n)
{
    if (!n)
        return LOCO_OK;
    if (w->t->nfc && first_unstable(text, n, 0) < n) {
        buf nb;
        buf_init(&nb, BUF_UNLIMITED);
        loco_status st = tok_nfc(text, n, &nb);
        if (!st)
            tok_pretokenize(nb.data, nb.len, bpe_piece, w);
        buf_release(&nb);
        return st ? st : w->st;
    }
    tok_pretokenize(text, n, bpe_piece, w);
    return w->st;
}

/* Longest added token starting at text[i], or -1. */
static int32_t match_added(const tok *t, const char *text, size_t n, size_t i, size_t *out_len)
{
    unsigned char b = (unsigned char)text[i];
    int32_t best = -1;
    size_t best_len = 0;
    for (size_t k = t->added_at[b]; k < t->added_at[b + 1]; k++) {
        int32_t id = t->added[k];
        size_t len = t->raw_off[id + 1] - t->raw_off[id];
        if (len > best_len && len <= n - i && memcmp(text + i, t->raw + t->raw_off[id], len) == 0) {
            best = id;
            best_len = len;
        }
    }
    *out_len = best_len;
    return best;
}

static loco_status encode_special(bpe_ws *w, const char *text, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        size_t len = 0;
        int32_t id = w->t->added_at[(unsigned char)text[i]] ==
                             w->t->added_at[(unsigned char)text[i] + 1]
                         ? -1
                         : match_added(w->t, text, n, i, &len);
        if (id < 0) {
            i++;
            continue;
        }
        loco_status st = encode_plain(w, text + start, i - start);
        if (!st)
            st = tok_ids_push(w->out, id);
        if (st)
            return st;
        i += len;
        start = i;
    }
    return encode_plain(w, text + start, n - start);
}

loco_status tok_encode(const tok *t, const char *text, size_t n, unsigned flags, tok_ids *out,
                       loco_err *err)
{
    bpe_ws w = {.t = t, .out = out};
    loco_status st = (flags & TOK_PARSE_SPECIAL) ? encode_special(&w, text, n)
                                                 : encode_plain(&w, text, n);
    free(w.sym);
    free(w.heap);
    if (st == LOCO_ERR_LIMIT)
        return loco_err_set(err, st, "tokenized text exceeds %zu tokens", out->max);
    if (st)
        return loco_err_set(err, st, "out of memory tokenizing %zu bytes", n);
    return LOCO_OK;
}

/* ---------------------------------------------------------------- decoding */

loco_status tok_decode_token(const tok *t, int32_t id, buf *out, loco_err *err)
{
    size_t len;
    const char *p = tok_token_bytes(t, id, &len);
    if (!p)
        return loco_err_set(err, LOCO_ERR_INVALID, "token id %" PRId32 " is out of range (vocab %zu)",
                            id, t->n);
    loco_status st = buf_append(out, p, len);
    return st ? loco_err_set(err, st, "decoded text too long") : LOCO_OK;
}

loco_status tok_decode(const tok *t, const int32_t *ids, size_t n, buf *out, loco_err *err)
{
    for (size_t i = 0; i < n; i++) {
        loco_status st = tok_decode_token(t, ids[i], out, err);
        if (st)
            return st;
    }
    return LOCO_OK;
}

void tok_stream_init(tok_stream *s) { memset(s, 0, sizeof(*s)); }

static loco_status emit_fffd(buf *out) { return buf_append(out, UTF8_REPLACEMENT, 3); }

static loco_status stream_byte(tok_stream *s, unsigned char c, buf *out)
{
    loco_status st;
    if (s->n_held) {
        bool ok = s->n_held == 1 ? utf8_second_ok(s->held[0], c) : utf8_is_cont(c);
        if (ok) {
            s->held[s->n_held++] = c;
            if (s->n_held < s->need)
                return LOCO_OK;
            st = buf_append(out, s->held, s->n_held);
            s->n_held = 0;
            return st;
        }
        s->n_held = 0; /* cannot complete: U+FFFD, then c starts afresh */
        st = emit_fffd(out);
        if (st)
            return st;
    }
    size_t need = utf8_lead_len(c);
    if (need == 0)
        return emit_fffd(out);
    if (need == 1)
        return buf_append(out, &c, 1);
    s->held[0] = c;
    s->n_held = 1;
    s->need = need;
    return LOCO_OK;
}

loco_status tok_stream_push_bytes(tok_stream *s, const char *p, size_t n, buf *out)
{
    for (size_t i = 0; i < n; i++) {
        loco_status st = stream_byte(s, (unsigned char)p[i], out);
        if (st)
            return st;
    }
    return LOCO_OK;
}

loco_status tok_stream_push(tok_stream *s, const tok *t, int32_t id, buf *out, loco_err *err)
{
    size_t len;
    const char *p = tok_token_bytes(t, id, &len);
    if (!p)
        return loco_err_set(err, LOCO_ERR_INVALID, "token id %" PRId32 " is out of range (vocab %zu)",
                            id, t->n);
    loco_status st = tok_stream_push_bytes(s, p, len, out);
    return st ? loco_err_set(err, st, "decoded text too long") : LOCO_OK;
}

loco_status tok_stream_flush(tok_stream *s, buf *out)
{
    bool held = s->n_held > 0;
    tok_stream_init(s);
    return held ? emit_fffd(out) : LOCO_OK;
}

/* ---------------------------------------------------------------- HF tokenizer.json */

void tok_vocab_release(tok_vocab *v)
{
    for (size_t i = 0; v->tokens && i < v->n_tokens; i++)
        free(v->tokens[i]);
    for (size_t i = 0; v->merges && i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tokens);
    free(v->token_lens);
    free(v->types);
    free(v->merges);
    memset(v, 0, sizeof(*v));
}

void tok_vocab_config(const tok_vocab *v, tok_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->tokens = (const char *const *)v->tokens;
    cfg->token_lens = v->token_lens;
    cfg->types = v->types;
    cfg->n_tokens = v->n_tokens;
    cfg->merges = (const char *const *)v->merges;
    cfg->n_merges = v->n_merges;
    cfg->nfc = v->nfc;
}

static loco_status vocab_set(tok_vocab *v, long id, const char *s, size_t len, int32_t type,
                             loco_err *err)
{
    if (id < 0 || (size_t)id >= v->n_tokens)
        return loco_err_set(err, LOCO_ERR_INVALID, "token id %ld out of range", id);
    char *c = malloc(len + 1);
    if (!c)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    memcpy(c, s, len);
    c[len] = 0;
    free(v->tokens[id]);
    v->tokens[id] = c;
    v->token_lens[id] = len;
    v->types[id] = type;
    return LOCO_OK;
}

/* Largest id in vocab and added_tokens, or -1. */
static long hf_max_id(json_t *vocab, json_t *added)
{
    long max = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (json_is_integer(val) && json_integer_value(val) > max)
            max = (long)json_integer_value(val);
    }
    size_t i;
    json_array_foreach(added, i, val) {
        long id;
        if (json_get_long(val, "id", &id) && id > max)
            max = id;
    }
    return max;
}

static loco_status hf_tokens(tok_vocab *v, json_t *vocab, json_t *added, loco_err *err)
{
    long max = hf_max_id(vocab, added);
    if (max < 0 || (unsigned long)max >= TOK_MAX_VOCAB)
        return loco_err_set(err, LOCO_ERR_INVALID, "tokenizer.json: bad vocab size %ld", max + 1);
    v->n_tokens = (size_t)max + 1;
    v->tokens = calloc(v->n_tokens, sizeof(char *));
    v->token_lens = calloc(v->n_tokens, sizeof(size_t));
    v->types = calloc(v->n_tokens, sizeof(int32_t));
    if (!v->tokens || !v->token_lens || !v->types)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    const char *key;
    json_t *val;
    loco_status st = LOCO_OK;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val))
            return loco_err_set(err, LOCO_ERR_INVALID, "tokenizer.json: vocab id of '%s'", key);
        st = vocab_set(v, (long)json_integer_value(val), key, strlen(key), TOK_TYPE_NORMAL, err);
        if (st)
            return st;
    }
    size_t i;
    json_array_foreach(added, i, val) {
        long id;
        const char *content = json_get_str(val, "content");
        bool special = false;
        json_get_bool(val, "special", &special);
        if (!content || !json_get_long(val, "id", &id))
            return loco_err_set(err, LOCO_ERR_INVALID, "tokenizer.json: added_tokens[%zu]", i);
        st = vocab_set(v, id, content, strlen(content),
                       special ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED, err);
        if (st)
            return st;
    }
    for (size_t k = 0; k < v->n_tokens; k++) {
        if (v->tokens[k])
            continue;
        char pad[40];
        int len = snprintf(pad, sizeof(pad), "[PAD%zu]", k);
        st = vocab_set(v, (long)k, pad, (size_t)len, TOK_TYPE_UNUSED, err);
        if (st)
            return st;
    }
    return LOCO_OK;
}

static loco_status hf_merges(tok_vocab *v, json_t *merges, loco_err *err)
{
    size_t n = json_array_size(merges);
    if (n > TOK_MAX_MERGES)
        return loco_err_set(err, LOCO_ERR_LIMIT, "tokenizer.json: %zu merges", n);
    v->merges = calloc(n + 1, sizeof(char *));
    if (!v->merges)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        loco_status st = LOCO_OK;
        if (json_is_string(m)) {
            st = buf_appends(&b, json_string_value(m));
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            st = buf_appendf(&b, "%s %s", json_string_value(json_array_get(m, 0)),
                             json_string_value(json_array_get(m, 1)));
        } else {
            buf_release(&b);
            return loco_err_set(err, LOCO_ERR_INVALID, "tokenizer.json: merges[%zu]", i);
        }
        if (st) {
            buf_release(&b);
            return loco_err_set(err, st, "out of memory");
        }
        v->merges[i] = buf_take(&b, NULL);
        v->n_merges = i + 1;
        if (!v->merges[i])
            return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    return LOCO_OK;
}

loco_status tok_vocab_from_hf_json(const char *text, size_t n, tok_vocab *v, loco_err *err)
{
    memset(v, 0, sizeof(*v));
    json_t *root = json_parse(text, n, err);
    if (!root)
        return loco_err_wrap(err, "tokenizer.json");
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    const char *type = json_get_str(model, "type");
    loco_status st;
    if (!json_is_object(vocab) || !json_is_array(merges) || (type && strcmp(type, "BPE") != 0)) {
        st = loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                          "tokenizer.json: not a BPE model with vocab and merges");
        goto out;
    }
    const char *norm = json_get_str(json_object_get(root, "normalizer"), "type");
    v->nfc = norm && strcmp(norm, "NFC") == 0;
    st = hf_tokens(v, vocab, added, err);
    if (!st)
        st = hf_merges(v, merges, err);
out:
    json_decref(root);
    if (st)
        tok_vocab_release(v);
    return st;
}

/* ---------------------------------------------------------------- GGUF metadata */

/* A required STRING array; its strings are pointed to (in the mapping) with lengths. */
static loco_status gguf_strings(const gguf *g, const char *key, bool required, const char ***out_s,
                                size_t **out_lens, size_t *out_n, loco_err *err)
{
    *out_s = NULL, *out_lens = NULL, *out_n = 0;
    int64_t k = gguf_find_key(g, key);
    if (k < 0)
        return required ? loco_err_set(err, LOCO_ERR_NOT_FOUND, "%s: missing metadata key '%s'",
                                       gguf_name(g), key)
                        : LOCO_OK;
    const gguf_arr *a = gguf_get_arr(g, k);
    if (!a || a->elem_type != GGUF_TYPE_STRING)
        return loco_err_set(err, LOCO_ERR_INVALID, "%s: metadata key '%s' is not a string array",
                            gguf_name(g), key);
    if (a->count > TOK_MAX_MERGES)
        return loco_err_set(err, LOCO_ERR_LIMIT, "%s: '%s' has %" PRIu64 " entries",
                            gguf_name(g), key, a->count);
    *out_s = malloc((a->count + 1) * sizeof(char *));
    *out_lens = malloc((a->count + 1) * sizeof(size_t));
    if (!*out_s || !*out_lens)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < a->count; i++) {
        (*out_s)[i] = gguf_arr_get_str(a, i, &(*out_lens)[i]);
        if (!(*out_s)[i])
            return loco_err_set(err, LOCO_ERR_INVALID, "%s: '%s'[%" PRIu64 "] is unreadable",
                                gguf_name(g), key, i);
    }
    *out_n = (size_t)a->count;
    return LOCO_OK;
}

static loco_status gguf_token_types(const gguf *g, size_t n, int32_t **out_types, loco_err *err)
{
    *out_types = NULL;
    int64_t k = gguf_find_key(g, "tokenizer.ggml.token_type");
    if (k < 0)
        return LOCO_OK;
    const gguf_arr *a = gguf_get_arr(g, k);
    if (!a || a->count != n)
        return loco_err_set(err, LOCO_ERR_INVALID,
                            "%s: tokenizer.ggml.token_type is not an array of %zu integers",
                            gguf_name(g), n);
    *out_types = malloc((n + 1) * sizeof(int32_t));
    if (!*out_types)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (!gguf_arr_get_i64(a, i, &v))
            return loco_err_set(err, LOCO_ERR_INVALID, "%s: tokenizer.ggml.token_type[%zu]",
                                gguf_name(g), i);
        (*out_types)[i] = v >= 0 && v <= TOK_TYPE_BYTE ? (int32_t)v : TOK_TYPE_UNDEFINED;
    }
    return LOCO_OK;
}

loco_status tok_from_gguf(const gguf *g, bool nfc, tok **out_t, loco_err *err)
{
    *out_t = NULL;
    const char *model = NULL, *pre = NULL;
    loco_status st = gguf_require_str(g, "tokenizer.ggml.model", &model, err);
    if (st)
        return st;
    if (strcmp(model, "gpt2") != 0)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "%s: tokenizer model '%s' is not supported (only gpt2 byte-level BPE)",
                            gguf_name(g), model);
    st = gguf_require_str(g, "tokenizer.ggml.pre", &pre, err);
    if (st)
        return st;
    if (strcmp(pre, "qwen2") != 0)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "%s: pre-tokenizer '%s' is not supported (only qwen2)", gguf_name(g),
                            pre);
    tok_config cfg = {.nfc = nfc};
    const char **tokens = NULL, **merges = NULL;
    size_t *token_lens = NULL, *merge_lens = NULL;
    int32_t *types = NULL;
    st = gguf_strings(g, "tokenizer.ggml.tokens", true, &tokens, &token_lens, &cfg.n_tokens, err);
    if (!st)
        st = gguf_strings(g, "tokenizer.ggml.merges", false, &merges, &merge_lens, &cfg.n_merges,
                          err);
    if (!st)
        st = gguf_token_types(g, cfg.n_tokens, &types, err);
    if (!st) {
        cfg.tokens = tokens, cfg.token_lens = token_lens, cfg.types = types;
        cfg.merges = merges, cfg.merge_lens = merge_lens;
        st = tok_new(&cfg, out_t, err);
        if (st)
            loco_err_wrap(err, "%s", gguf_name(g));
    }
    free(tokens);
    free(token_lens);
    free(merges);
    free(merge_lens);
    free(types);
    return st;
}

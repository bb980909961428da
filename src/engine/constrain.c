/* constrain.c: constrained decoding of tool calls (engine layer). A byte-level matcher for
 * <tool_call>{"name": NAME, "arguments": ARGS}\n</tool_call> with ARGS typed by the tool's JSON
 * Schema, and a token layer over the tokenizer's byte strings: one token is checked by running
 * its bytes through a copy of the state; a whole mask walks the tokens sorted by bytes, so a
 * shared prefix is matched once and a rejected prefix skips every token that starts with it.
 * See docs/internals/constrain.md. */
#include "base/common.h"

#include <jansson.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/str.h"
#include "engine/constrain.h"

#define OPEN_TAG "<tool_call>"
#define CLOSE_TAG "</tool_call>"
#define CLOSE_SEQ "\n</tool_call>"
#define OPEN_LEN 11
#define CLOSE_LEN 12

/* Frames a single token (or a completion) may push beyond the committed ones. */
#define CUR_LOCAL 16
/* Longest completion kept; the schema limits keep real ones far below. */
#define FIN_CAP ((size_t)32 << 10)
/* Shortest value of a schema node above this: its required properties are not enforced. */
#define MAX_MIN_LEN 2048u
/* Schema nodes per constraint (past it: any value). */
#define MAX_NODES 65536u
/* Digits of a number's integer part, fraction and exponent. */
#define NUM_MAX_DIGITS 40
#define NUM_MAX_EXP_DIGITS 3

#define NO_PROP 0xFFFFu
#define NODE_ANY 0u
#define NODE_ANY_OBJECT 1u

/* ---- token tables ---- */

enum { F_OK = 1, F_CTRL = 2, F_NOLT = 4, F_PLAIN = 8, F_WS = 16 };

struct constrain_vocab {
    const tok *t;
    int32_t n_vocab;
    int32_t n_tok;
    const unsigned char **bytes; /* (n_vocab) borrowed from t; NULL past the tokenizer */
    uint32_t *len;               /* (n_vocab) */
    uint8_t *flags;              /* (n_vocab) F_* */
    int32_t *sorted;             /* (n_sorted) F_OK tokens that are not control, by bytes */
    uint32_t *lcp;               /* (n_sorted) common prefix with the previous sorted token */
    int32_t *end2;               /* (n_sorted) first index whose first two bytes differ */
    int32_t n_sorted;
    int32_t bucket[257]; /* sorted[bucket[b] .. bucket[b + 1]) start with byte b */
    int32_t *ctrl;       /* (n_ctrl) control token ids */
    int32_t n_ctrl;
    uint64_t *bits_nolt;         /* byte tokens without '<' (a bitset of n_vocab bits) */
    uint64_t *bits_plain;        /* byte tokens that are F_PLAIN */
    int32_t *ex_nolt, *ex_plain; /* the F_OK tokens outside each bitset */
    int32_t n_ex_nolt, n_ex_plain;
    uint32_t max_len;
    int32_t id_open, id_close; /* the added tokens <tool_call> and </tool_call>, or -1 */
};

typedef struct {
    const unsigned char *p;
    uint32_t len;
    int32_t id;
} vtok;

static int bytes_cmp(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int r = n ? memcmp(a, b, n) : 0;
    if (r)
        return r;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int vtok_cmp(const void *a, const void *b)
{
    const vtok *x = a, *y = b;
    int r = bytes_cmp(x->p, x->len, y->p, y->len);
    return r ? r : (x->id < y->id ? -1 : x->id > y->id);
}

/* A token is "plain" when it can sit anywhere inside a JSON string: complete UTF-8, no control
 * byte, no quote, no backslash, no '<' (which could begin "</tool_call>"). */
static bool plain_bytes(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || p[i] == '<')
            return false;
    }
    return str_utf8_valid((const char *)p, n);
}

static bool all_ws(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    }
    return true;
}

void constrain_vocab_free(constrain_vocab *v)
{
    if (!v)
        return;
    free(v->bytes);
    free(v->len);
    free(v->flags);
    free(v->sorted);
    free(v->lcp);
    free(v->end2);
    free(v->ctrl);
    free(v->bits_nolt);
    free(v->bits_plain);
    free(v->ex_nolt);
    free(v->ex_plain);
    free(v);
}

static loco_status vocab_sort(constrain_vocab *v)
{
    vtok *a = malloc((size_t)(v->n_sorted ? v->n_sorted : 1) * sizeof(*a));
    if (!a)
        return LOCO_ERR_NOMEM;
    int32_t k = 0;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        if ((v->flags[id] & F_OK) && !(v->flags[id] & F_CTRL))
            a[k++] = (vtok){v->bytes[id], v->len[id], id};
    }
    qsort(a, (size_t)k, sizeof(*a), vtok_cmp);
    for (int b = 0; b <= 256; b++)
        v->bucket[b] = k;
    for (int32_t i = k; i-- > 0;) {
        v->sorted[i] = a[i].id;
        v->bucket[a[i].p[0]] = i;
        uint32_t l = 0;
        if (i > 0) {
            uint32_t m = a[i].len < a[i - 1].len ? a[i].len : a[i - 1].len;
            while (l < m && a[i].p[l] == a[i - 1].p[l])
                l++;
        }
        v->lcp[i] = l;
    }
    for (int b = 255; b >= 0; b--) { /* empty buckets start where the next one does */
        if (v->bucket[b] > v->bucket[b + 1])
            v->bucket[b] = v->bucket[b + 1];
    }
    for (int32_t i = k; i-- > 0;)
        v->end2[i] = i + 1 < k && v->lcp[i + 1] >= 2 ? v->end2[i + 1] : i + 1;
    free(a);
    return LOCO_OK;
}

/* The bitsets of the two wide states (text, inside a string) and their exceptions. */
static loco_status vocab_bits(constrain_vocab *v)
{
    size_t words = ((size_t)v->n_vocab + 63) / 64;
    v->bits_nolt = calloc(words, sizeof(uint64_t));
    v->bits_plain = calloc(words, sizeof(uint64_t));
    v->ex_nolt = malloc((size_t)v->n_vocab * sizeof(int32_t));
    v->ex_plain = malloc((size_t)v->n_vocab * sizeof(int32_t));
    if (!v->bits_nolt || !v->bits_plain || !v->ex_nolt || !v->ex_plain)
        return LOCO_ERR_NOMEM;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        uint8_t f = v->flags[id];
        if (!(f & F_OK))
            continue;
        bool byte_tok = !(f & F_CTRL);
        if (byte_tok && (f & F_NOLT))
            v->bits_nolt[id >> 6] |= (uint64_t)1 << (id & 63);
        else
            v->ex_nolt[v->n_ex_nolt++] = id;
        if (byte_tok && (f & F_PLAIN))
            v->bits_plain[id >> 6] |= (uint64_t)1 << (id & 63);
        else
            v->ex_plain[v->n_ex_plain++] = id;
    }
    return LOCO_OK;
}

loco_status constrain_vocab_new(const tok *t, int32_t n_vocab, constrain_vocab **out, loco_err *err)
{
    size_t nt = tok_vocab_size(t);
    if (nt > INT32_MAX || n_vocab < 0)
        return loco_err_set(err, LOCO_ERR_INVALID, "constrain: bad vocabulary size");
    if (n_vocab == 0)
        n_vocab = (int32_t)nt;
    constrain_vocab *v = calloc(1, sizeof(*v));
    if (!v)
        return loco_err_set(err, LOCO_ERR_NOMEM, "constrain: out of memory");
    v->t = t;
    v->n_vocab = n_vocab;
    v->n_tok = (int32_t)nt < n_vocab ? (int32_t)nt : n_vocab;
    size_t n = (size_t)n_vocab;
    v->bytes = calloc(n, sizeof(*v->bytes));
    v->len = calloc(n, sizeof(*v->len));
    v->flags = calloc(n, sizeof(*v->flags));
    v->sorted = malloc(n * sizeof(*v->sorted));
    v->lcp = malloc(n * sizeof(*v->lcp));
    v->end2 = malloc(n * sizeof(*v->end2));
    v->ctrl = malloc(n * sizeof(*v->ctrl));
    loco_status rc = LOCO_OK;
    if (!v->bytes || !v->len || !v->flags || !v->sorted || !v->lcp || !v->end2 || !v->ctrl)
        rc = LOCO_ERR_NOMEM;
    v->id_open = v->id_close = -1;
    for (int32_t id = 0; !rc && id < v->n_tok; id++) {
        size_t len = 0;
        const char *p = tok_token_bytes(t, id, &len);
        if (!p || !len || len > UINT32_MAX)
            continue;
        v->bytes[id] = (const unsigned char *)p;
        v->len[id] = (uint32_t)len;
        uint8_t f = F_OK;
        if (tok_token_type(t, id) == TOK_TYPE_CONTROL) {
            f |= F_CTRL;
            v->ctrl[v->n_ctrl++] = id;
        } else {
            v->n_sorted++;
            if (len > v->max_len)
                v->max_len = (uint32_t)len;
        }
        if (!memchr(p, '<', len))
            f |= F_NOLT;
        if (plain_bytes(v->bytes[id], len))
            f |= F_PLAIN;
        if (all_ws(v->bytes[id], len))
            f |= F_WS;
        v->flags[id] = f;
        tok_type ty = tok_token_type(t, id);
        if (ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_CONTROL) {
            if (len == OPEN_LEN && !memcmp(p, OPEN_TAG, len))
                v->id_open = id;
            if (len == CLOSE_LEN && !memcmp(p, CLOSE_TAG, len))
                v->id_close = id;
        }
    }
    if (!rc)
        rc = vocab_sort(v);
    if (!rc)
        rc = vocab_bits(v);
    if (rc) {
        constrain_vocab_free(v);
        return loco_err_set(err, rc, "constrain: out of memory for the token tables");
    }
    *out = v;
    return LOCO_OK;
}

/* ---- schema ---- */

enum {
    T_STRING = 1,
    T_NUMBER = 2,
    T_INTEGER = 4,
    T_BOOLEAN = 8,
    T_NULL = 16,
    T_OBJECT = 32,
    T_ARRAY = 64,
    T_ALL = 127,
};

typedef struct {
    uint8_t types;  /* T_* */
    bool extra;     /* object: keys outside the properties are allowed */
    bool nonneg;    /* number: no minus sign (minimum >= 0) */
    bool nonempty;  /* string: minLength >= 1 */
    uint8_t maxdig; /* integer: most digits (from maximum), 0: int64 */
    int32_t lits;   /* enum / const: the only values, a literal set; -1: none */
    int32_t keys;   /* object: literal set of the property names ("\"name\""); -1: none */
    uint32_t prop0; /* object: node of property i is child[prop0 + i] */
    uint32_t n_props;
    uint64_t required;   /* object: bit i = property i is required */
    uint32_t items;      /* array: node of the items */
    uint32_t min_len;    /* bytes of the shortest value */
    uint8_t first;       /* its first byte */
    uint32_t start_grow; /* bound on what starting a value adds to a completion */
    uint32_t key_grow;   /* object: bound on what starting a member (or an extra key) adds */
} snode;

typedef struct {
    uint32_t off, len; /* bytes in pool */
    int32_t aux;       /* tool names: the tool */
} lit;

typedef struct {
    uint32_t first, n; /* lits[first .. first + n), sorted by bytes, distinct */
    uint32_t maxlen;   /* of the longest */
} lset;

/* ---- matcher state ---- */

enum { M_FREE, M_THINK, M_FORCE, M_BODY, M_CLOSE };
enum { LX_NONE, LX_STR, LX_NUM, LX_LIT };
enum { FR_TOP, FR_OBJ, FR_ARR };
enum { T_OPEN, T_KEY_NAME, T_COLON1, T_NAME, T_COMMA, T_KEY_ARGS, T_COLON2, T_ARGS, T_END };
enum { O_FIRST, O_KEY, O_COLON, O_VALUE, O_AFTER };
enum { A_FIRST, A_VALUE, A_AFTER };
enum { SK_VALUE, SK_KEY_ANY, SK_KEY_EXTRA };
enum { LR_VALUE, LR_KEY, LR_NAME, LR_FIXED };
enum { N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

typedef struct {
    uint32_t node; /* OBJ / ARR: its schema node */
    uint8_t kind;  /* FR_* */
    uint8_t phase; /* T_* / O_* / A_* */
    uint16_t prop; /* OBJ: property of the current member, NO_PROP for another key */
    uint64_t seen; /* OBJ: properties given */
} frame;

typedef struct {
    uint8_t mode;  /* M_* */
    uint8_t lex;   /* LX_*: the JSON token being read (M_BODY) */
    uint8_t mset;  /* marker matcher: markers still possible (bit per marker) */
    uint8_t mk;    /* bytes of them matched; M_FORCE / M_CLOSE: bytes of the tag matched */
    uint8_t ws;    /* whitespace run */
    uint8_t depth; /* frames open */
    /* string */
    uint8_t skind;  /* SK_* */
    uint8_t esc;    /* 0; 1 after '\'; 2 + k inside \uXXXX after k hex digits */
    uint8_t u8need; /* continuation bytes still due */
    uint8_t u8lo, u8hi;
    bool hi_sur;    /* a high surrogate escape waits for its low half */
    bool nonempty;  /* the string may not be empty */
    bool any;       /* the string has content */
    uint16_t ucode; /* \u code unit so far */
    /* number */
    uint8_t nphase; /* N_* */
    uint8_t ndig, nfrac, nexp, nmaxdig;
    int8_t ncmp; /* integer part vs the int64 limit, digit by digit (-1, 0, 1) */
    bool nneg, nint, nexp_neg;
    uint16_t nexpval;
    /* literal */
    uint8_t lrole;               /* LR_* */
    uint32_t lset, llo, lhi, lk; /* candidates lits[llo..lhi) of set lset, lk bytes matched */
    uint16_t tool;               /* the tool named */
    uint32_t body;               /* bytes of the open call's body */
    uint32_t calls;              /* calls closed */
} mstate;

/* A state being advanced: the committed frames below (read only) and frames pushed since. */
typedef struct {
    mstate x;
    frame top;         /* innermost frame (x.depth > 0) */
    const frame *base; /* frames below top: base[0 .. n_base) then local[0 .. n_local) */
    uint32_t n_base;
    uint32_t n_local;
    uint32_t grow;  /* bound on what the bytes stepped add to the completion */
    bool lit_grown; /* grow already counts a change of literal in the open one */
    frame local[CUR_LOCAL];
} cursor;

struct constrain {
    const tok *t;
    const constrain_vocab *v;
    constrain_vocab *own_v;
    constrain_mode mode;
    size_t max_body;
    long max_tokens;
    /* schema */
    snode *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t *child;
    uint32_t n_child, cap_child;
    lit *lits;
    uint32_t n_lits, cap_lits;
    lset *sets;
    uint32_t n_sets, cap_sets;
    buf pool;
    uint32_t *tool_node; /* (n_tools) node of each tool's arguments */
    uint32_t n_tools;
    uint32_t set_names, set_kname, set_kargs, set_bool, set_null;
    uint32_t name_grow; /* bound on what choosing among the tool names adds */
    uint32_t call_grow; /* ... opening a call (the whole completion) */
    /* committed state */
    mstate x;
    frame top;
    frame stack[CONSTRAIN_MAX_DEPTH];
    long left; /* tokens left, < 0: no limit */
    char fin[FIN_CAP];
    size_t fin_len;
    long need;                              /* tokens fin takes at most */
    uint32_t rest[CONSTRAIN_MAX_DEPTH + 1]; /* see refresh */
    /* scratch */
    uint64_t *mask;
    cursor *cs; /* (max_len + 1) cursors by prefix length, for the sorted walk */
    cursor tcur, wcur;
    char wbuf[FIN_CAP];
};

static const char *const free_marks[] = {"<tool_call>", "<function=", "<think>"};
static const char *const think_marks[] = {"</think>"};
static const char *const str_marks[] = {"</tool_call>"};

/* Advances a matcher of markers that each start with '<' (and hold no other '<'). Returns the
 * index of the marker completed by b, -1 when none. */
static int mark_step(const char *const *marks, int n, uint8_t *set, uint8_t *k, uint8_t b)
{
    if (*k) {
        uint8_t ns = 0;
        int done = -1;
        for (int i = 0; i < n; i++) {
            if ((*set >> i & 1) && (uint8_t)marks[i][*k] == b) {
                ns |= (uint8_t)(1u << i);
                if (!marks[i][*k + 1])
                    done = i;
            }
        }
        if (done >= 0) {
            *set = 0;
            *k = 0;
            return done;
        }
        if (ns) {
            *set = ns;
            (*k)++;
            return -1;
        }
        *set = 0;
        *k = 0;
    }
    if (b == '<') {
        *set = (uint8_t)((1u << n) - 1);
        *k = 1;
    }
    return -1;
}

static inline void cur_copy(cursor *d, const cursor *s)
{
    memcpy(d, s, offsetof(cursor, local) + s->n_local * sizeof(frame));
}

static void cur_from(const constrain *c, cursor *u)
{
    u->x = c->x;
    u->top = c->top;
    u->base = c->stack;
    u->n_base = c->x.depth ? c->x.depth - 1u : 0;
    u->n_local = 0;
    u->grow = 0;
    u->lit_grown = false;
}

static void commit(constrain *c, const cursor *u)
{
    if (u->n_local)
        memcpy(c->stack + u->n_base, u->local, u->n_local * sizeof(frame));
    c->x = u->x;
    c->top = u->top;
}

static bool push(cursor *u, frame f)
{
    if (u->x.depth >= CONSTRAIN_MAX_DEPTH)
        return false;
    if (u->x.depth) {
        if (u->n_local == CUR_LOCAL)
            return false;
        u->local[u->n_local++] = u->top;
    }
    u->top = f;
    u->x.depth++;
    return true;
}

static void pop(cursor *u)
{
    u->x.depth--;
    if (!u->x.depth)
        return;
    u->top = u->n_local ? u->local[--u->n_local] : u->base[--u->n_base];
}

static inline const lit *set_lits(const constrain *c, uint32_t s)
{
    return c->lits + c->sets[s].first;
}

static inline uint8_t lit_byte(const constrain *c, const lit *l, uint32_t k)
{
    return (uint8_t)c->pool.data[l->off + k];
}

static bool is_ws(uint8_t b)
{
    return b == ' ' || b == '\t' || b == '\n' || b == '\r';
}

static bool is_digit(uint8_t b)
{
    return b >= '0' && b <= '9';
}

static int hexval(uint8_t b)
{
    if (is_digit(b))
        return b - '0';
    if (b >= 'a' && b <= 'f')
        return b - 'a' + 10;
    if (b >= 'A' && b <= 'F')
        return b - 'A' + 10;
    return -1;
}

/* ---- strings ---- */

static void str_start(mstate *x, uint8_t kind, bool nonempty)
{
    x->lex = LX_STR;
    x->skind = kind;
    x->esc = 0;
    x->u8need = 0;
    x->hi_sur = false;
    x->nonempty = nonempty;
    x->any = false;
    x->mk = 0;
    x->mset = 0;
}

static bool str_end(cursor *u)
{
    mstate *x = &u->x;
    if (x->nonempty && !x->any)
        return false;
    x->lex = LX_NONE;
    if (x->skind != SK_VALUE)
        u->top.prop = NO_PROP;
    return true;
}

static bool str_escape(mstate *x, uint8_t b)
{
    if (x->esc == 1) {
        if (b == 'u') {
            x->esc = 2;
            x->ucode = 0;
            return true; /* the cursor counts the completion's 4 digits */
        }
        if (x->hi_sur || !b || !strchr("\"\\/bfnrt", b))
            return false;
        x->esc = 0;
        x->any = true;
        return true;
    }
    int h = hexval(b);
    if (h < 0)
        return false;
    unsigned j = x->esc - 2u; /* digits before this one */
    unsigned code = x->ucode * 16u + (unsigned)h;
    if (x->hi_sur) { /* only DC00..DFFF may follow a high surrogate */
        if ((j == 0 && h != 0xD) || (j == 1 && h < 0xC))
            return false;
    } else if (j == 1 && code >= 0xDC && code <= 0xDF) {
        return false; /* a low surrogate alone */
    }
    x->ucode = (uint16_t)code;
    if (j < 3) {
        x->esc++;
        return true;
    }
    if (x->hi_sur)
        x->hi_sur = false;
    else if (code == 0)
        return false; /* \u0000: valid JSON, refused (NUL in tool arguments) */
    else if (code >= 0xD800 && code <= 0xDBFF)
        x->hi_sur = true;
    x->esc = 0;
    x->any = true;
    return true;
}

static bool str_step(cursor *u, uint8_t b)
{
    mstate *x = &u->x;
    /* \u (four digits to come), a high surrogate (a low one to come), \, a UTF-8 lead */
    u->grow += x->esc == 1 && b == 'u' ? 4 : x->esc == 5 ? 6 : b == '\\' ? 1 : b >= 0xC2 ? 3 : 0;
    if (x->u8need) {
        if (b < x->u8lo || b > x->u8hi)
            return false;
        x->u8need--;
        x->u8lo = 0x80;
        x->u8hi = 0xBF;
        return true;
    }
    if (x->esc)
        return str_escape(x, b);
    if (x->hi_sur) {
        if (b != '\\')
            return false;
        x->esc = 1;
        return true;
    }
    if (b == '"')
        return str_end(u);
    if (b == '\\') {
        if (x->skind == SK_KEY_EXTRA)
            return false;
        x->esc = 1;
        x->mk = x->mset = 0;
        return true;
    }
    if (b < 0x20)
        return false;
    x->any = true;
    if (b < 0x80)
        return mark_step(str_marks, 1, &x->mset, &x->mk, b) != 0;
    x->mk = x->mset = 0;
    x->u8lo = 0x80;
    x->u8hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        x->u8need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        x->u8need = 2;
        if (b == 0xE0)
            x->u8lo = 0xA0;
        if (b == 0xED)
            x->u8hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        x->u8need = 3;
        if (b == 0xF0)
            x->u8lo = 0x90;
        if (b == 0xF4)
            x->u8hi = 0x8F;
    } else {
        return false;
    }
    return true;
}

/* ---- numbers ---- */

static const char i64_max[] = "9223372036854775807";
static const char i64_min[] = "9223372036854775808"; /* magnitude */

static bool int_fits(const mstate *x)
{
    return x->ndig < 19 || (x->ndig == 19 && x->ncmp <= 0);
}

static int num_digit(mstate *x, uint8_t b)
{
    if (x->ndig >= NUM_MAX_DIGITS)
        return 0;
    x->ndig++;
    if (x->ndig <= 19 && x->ncmp == 0) {
        uint8_t l = (uint8_t)(x->nneg ? i64_min : i64_max)[x->ndig - 1];
        x->ncmp = (int8_t)(b < l ? -1 : b > l ? 1 : 0);
    }
    if (x->nint && (!int_fits(x) || (x->nmaxdig && x->ndig > x->nmaxdig)))
        return 0;
    return 1;
}

static int exp_digit(mstate *x, uint8_t b)
{
    if (x->nexp >= NUM_MAX_EXP_DIGITS)
        return 0;
    x->nexp++;
    x->nexpval = (uint16_t)(x->nexpval * 10u + (unsigned)(b - '0'));
    /* below 10^308 for sure: integer digits + exponent <= 308 (DBL_MAX is 1.8e308) */
    if (!x->nexp_neg && x->ndig + x->nexpval > 308)
        return 0;
    return 1;
}

static int num_first(mstate *x, uint8_t b)
{
    if (!is_digit(b))
        return 0;
    if (b == '0') {
        x->nphase = N_ZERO;
        return 1;
    }
    x->nphase = N_INT;
    return num_digit(x, b);
}

static int num_dot_or_e(mstate *x, uint8_t b)
{
    if (x->nint)
        return 0;
    x->nphase = b == '.' ? N_DOT : N_E;
    return 1;
}

/* 1: consumed; 0: refused; -1: the number ended before b (b is read as structure). */
static int num_step(mstate *x, uint8_t b, uint32_t *grow)
{
    *grow += is_digit(b) ? 2 : 1; /* ".0" after a too large integer; a digit after '.', 'e' */
    bool d = is_digit(b);
    bool de = b == '.' || b == 'e' || b == 'E';
    switch (x->nphase) {
    case N_SIGN: return num_first(x, b);
    case N_ZERO:
        if (d)
            return 0;
        return de ? num_dot_or_e(x, b) : -1;
    case N_INT:
        if (d)
            return num_digit(x, b);
        if (de)
            return num_dot_or_e(x, b);
        return int_fits(x) ? -1 : 0;
    case N_DOT:
        if (!d)
            return 0;
        x->nphase = N_FRAC;
        x->nfrac = 1;
        return 1;
    case N_FRAC:
        if (d)
            return ++x->nfrac <= NUM_MAX_DIGITS;
        if (b == 'e' || b == 'E') {
            x->nphase = N_E;
            return 1;
        }
        return -1;
    case N_E:
        if (b == '+' || b == '-') {
            x->nexp_neg = b == '-';
            x->nphase = N_ESIGN;
            return 1;
        }
        /* fallthrough */
    case N_ESIGN:
        if (!d)
            return 0;
        x->nphase = N_EXP;
        return exp_digit(x, b);
    default: /* N_EXP */ return d ? exp_digit(x, b) : -1;
    }
}

/* ---- literals (names, keys, enums, true / false / null) ---- */

static bool lit_is_str(const constrain *c, const lit *l)
{
    return lit_byte(c, l, 0) == '"';
}

static void lit_done(const constrain *c, cursor *u, uint32_t idx)
{
    mstate *x = &u->x;
    if (x->lrole == LR_NAME)
        x->tool = (uint16_t)set_lits(c, x->lset)[idx].aux;
    if (x->lrole == LR_KEY) {
        u->top.seen |= (uint64_t)1 << idx;
        u->top.prop = (uint16_t)idx;
    }
    x->lex = LX_NONE;
}

static bool unseen_in(const frame *f, uint32_t i, uint32_t j)
{
    for (; i < j; i++) {
        if (!(f->seen >> i & 1))
            return true;
    }
    return false;
}

/* A key that left every property name: an extra key, read as a plain string without escapes
 * (property names never need one). */
static int key_diverge(const constrain *c, cursor *u, uint8_t b)
{
    const lit *l = &set_lits(c, u->x.lset)[u->x.llo];
    uint32_t k = u->x.lk;
    str_start(&u->x, SK_KEY_EXTRA, false);
    for (uint32_t i = 1; i < k; i++) {
        if (!str_step(u, lit_byte(c, l, i)))
            return 0;
    }
    return str_step(u, b) ? 1 : 0;
}

/* 1: consumed; 0: refused; -1: a literal that is not a string ended before b. */
static int lit_step(const constrain *c, cursor *u, uint8_t b)
{
    mstate *x = &u->x;
    const lit *L = set_lits(c, x->lset);
    uint32_t k = x->lk, lo = x->llo, hi = x->lhi;
    bool exact = lo < hi && L[lo].len == k; /* sorted: the literal equal to the prefix first */
    uint32_t i = exact ? lo + 1 : lo;
    while (i < hi && lit_byte(c, &L[i], k) < b)
        i++;
    uint32_t j = i;
    while (j < hi && lit_byte(c, &L[j], k) == b)
        j++;
    bool key = x->lrole == LR_KEY;
    const snode *n = key ? &c->nodes[u->top.node] : NULL;
    if (i < j) {
        bool ends = L[i].len == k + 1 && lit_is_str(c, &L[i]);
        if (key && ends && (u->top.seen >> i & 1))
            return 0; /* a property given twice */
        if (key && !ends && !n->extra && !unseen_in(&u->top, i, j))
            return 0; /* only leads to properties already given */
        if (x->lrole != LR_FIXED && !u->lit_grown) {
            /* the completion may now take another literal: once per literal and token */
            u->grow += x->lrole == LR_KEY    ? n->key_grow
                       : x->lrole == LR_NAME ? c->name_grow
                                             : c->sets[x->lset].maxlen + 2;
            u->lit_grown = true;
        }
        x->llo = i;
        x->lhi = j;
        x->lk = k + 1;
        if (ends)
            lit_done(c, u, i);
        return 1;
    }
    if (exact && !lit_is_str(c, &L[lo]))
        return -1;
    if (key && n->extra) {
        u->grow += n->key_grow;
        return key_diverge(c, u, b);
    }
    return 0;
}

static bool lit_start(const constrain *c, cursor *u, uint32_t set, uint8_t role, uint8_t b)
{
    mstate *x = &u->x;
    x->lex = LX_LIT;
    x->lrole = role;
    x->lset = set;
    x->llo = 0;
    x->lhi = c->sets[set].n;
    x->lk = 0;
    u->lit_grown = false;
    return lit_step(c, u, b) == 1;
}

/* ---- structure ---- */

static bool push_frame(cursor *u, uint32_t node, uint8_t kind, uint8_t phase)
{
    frame f = {.node = node, .kind = kind, .phase = phase, .prop = NO_PROP, .seen = 0};
    return push(u, f);
}

static bool value_start(const constrain *c, cursor *u, uint32_t node, uint8_t b)
{
    const snode *n = &c->nodes[node];
    mstate *x = &u->x;
    u->grow += n->start_grow;
    if (n->lits >= 0)
        return lit_start(c, u, (uint32_t)n->lits, LR_VALUE, b);
    if (b == '"' && (n->types & T_STRING)) {
        str_start(x, SK_VALUE, n->nonempty);
        return true;
    }
    if ((b == '-' || is_digit(b)) && (n->types & (T_NUMBER | T_INTEGER))) {
        if (b == '-' && n->nonneg)
            return false;
        x->lex = LX_NUM;
        x->nint = !(n->types & T_NUMBER);
        x->nmaxdig = x->nint ? n->maxdig : 0;
        x->nneg = b == '-';
        x->ndig = x->nfrac = x->nexp = 0;
        x->ncmp = 0;
        x->nexp_neg = false;
        x->nexpval = 0;
        x->nphase = N_SIGN;
        return b == '-' || num_first(x, b) == 1;
    }
    if ((b == 't' || b == 'f') && (n->types & T_BOOLEAN))
        return lit_start(c, u, c->set_bool, LR_VALUE, b);
    if (b == 'n' && (n->types & T_NULL))
        return lit_start(c, u, c->set_null, LR_VALUE, b);
    if (b == '{' && (n->types & T_OBJECT))
        return push_frame(u, node, FR_OBJ, O_FIRST);
    if (b == '[' && (n->types & T_ARRAY))
        return push_frame(u, node, FR_ARR, A_FIRST);
    return false;
}

static bool key_possible(const snode *n, const frame *f)
{
    if (n->extra)
        return true;
    uint64_t all = n->n_props >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n->n_props) - 1);
    return (all & ~f->seen) != 0;
}

static bool obj_step(const constrain *c, cursor *u, uint8_t b)
{
    frame *f = &u->top;
    const snode *n = &c->nodes[f->node];
    switch (f->phase) {
    case O_FIRST:
    case O_KEY:
        if (b == '}' && f->phase == O_FIRST) {
            if (n->required & ~f->seen)
                return false;
            pop(u);
            return true;
        }
        if (b != '"' || !key_possible(n, f))
            return false;
        u->grow += n->key_grow;
        f->phase = O_COLON;
        if (n->keys >= 0)
            return lit_start(c, u, (uint32_t)n->keys, LR_KEY, b);
        str_start(&u->x, SK_KEY_ANY, false);
        return true;
    case O_COLON:
        if (b != ':')
            return false;
        f->phase = O_VALUE;
        return true;
    case O_VALUE: {
        uint32_t vn = f->prop != NO_PROP ? c->child[n->prop0 + f->prop] : NODE_ANY;
        f->phase = O_AFTER; /* set before a push moves the frame */
        return value_start(c, u, vn, b);
    }
    default: /* O_AFTER */
        if (b == ',') {
            if (!key_possible(n, f))
                return false;
            u->grow += n->key_grow;
            f->phase = O_KEY;
            return true;
        }
        if (b != '}' || (n->required & ~f->seen))
            return false;
        pop(u);
        return true;
    }
}

static bool arr_step(const constrain *c, cursor *u, uint8_t b)
{
    frame *f = &u->top;
    const snode *n = &c->nodes[f->node];
    switch (f->phase) {
    case A_FIRST:
    case A_VALUE:
        if (b == ']' && f->phase == A_FIRST) {
            pop(u);
            return true;
        }
        f->phase = A_AFTER;
        return value_start(c, u, n->items, b);
    default: /* A_AFTER */
        if (b == ',') {
            u->grow += c->nodes[n->items].start_grow + 1;
            f->phase = A_VALUE;
            return true;
        }
        if (b != ']')
            return false;
        pop(u);
        return true;
    }
}

static bool top_expect(frame *f, uint8_t b, uint8_t want, uint8_t next)
{
    if (b != want)
        return false;
    f->phase = next;
    return true;
}

static bool top_step(const constrain *c, cursor *u, uint8_t b)
{
    frame *f = &u->top;
    switch (f->phase) {
    case T_OPEN: return top_expect(f, b, '{', T_KEY_NAME);
    case T_KEY_NAME:
        return top_expect(f, b, '"', T_COLON1) && lit_start(c, u, c->set_kname, LR_FIXED, b);
    case T_COLON1: return top_expect(f, b, ':', T_NAME);
    case T_NAME: return top_expect(f, b, '"', T_COMMA) && lit_start(c, u, c->set_names, LR_NAME, b);
    case T_COMMA: return top_expect(f, b, ',', T_KEY_ARGS);
    case T_KEY_ARGS:
        return top_expect(f, b, '"', T_COLON2) && lit_start(c, u, c->set_kargs, LR_FIXED, b);
    case T_COLON2: return top_expect(f, b, ':', T_ARGS);
    case T_ARGS:
        return top_expect(f, b, '{', T_END) &&
               push_frame(u, c->tool_node[u->x.tool], FR_OBJ, O_FIRST);
    default: /* T_END */
        if (b != '}')
            return false;
        pop(u);
        u->x.mode = M_CLOSE;
        u->x.mk = 0;
        return true;
    }
}

static bool struct_step(const constrain *c, cursor *u, uint8_t b)
{
    if (is_ws(b))
        return ++u->x.ws <= CONSTRAIN_MAX_WS;
    u->x.ws = 0;
    switch (u->top.kind) {
    case FR_TOP: return top_step(c, u, b);
    case FR_OBJ: return obj_step(c, u, b);
    default: return arr_step(c, u, b);
    }
}

static bool body_step(const constrain *c, cursor *u, uint8_t b)
{
    int r;
    switch (u->x.lex) {
    case LX_STR: return str_step(u, b);
    case LX_NUM: r = num_step(&u->x, b, &u->grow); break;
    case LX_LIT: r = lit_step(c, u, b); break;
    default: return struct_step(c, u, b);
    }
    if (r >= 0)
        return r == 1;
    u->x.lex = LX_NONE; /* the value ended before b */
    return struct_step(c, u, b);
}

static bool open_call(const constrain *c, cursor *u)
{
    mstate *x = &u->x;
    if (!c->n_tools)
        return false;
    x->mode = M_BODY;
    x->lex = LX_NONE;
    x->ws = 0;
    x->body = 0;
    x->mk = x->mset = 0;
    return push_frame(u, 0, FR_TOP, T_OPEN);
}

static bool step(const constrain *c, cursor *u, uint8_t b)
{
    mstate *x = &u->x;
    int m;
    switch (x->mode) {
    case M_FREE:
        m = mark_step(free_marks, 3, &x->mset, &x->mk, b);
        if (m == 0) {
            u->grow += c->call_grow;
            return c->mode != CONSTRAIN_NO_CALLS && open_call(c, u);
        }
        if (m == 1)
            return false; /* "<function=" would open a call of the XML dialect */
        if (m == 2)
            x->mode = M_THINK;
        return true;
    case M_THINK:
        if (mark_step(think_marks, 1, &x->mset, &x->mk, b) == 0)
            x->mode = M_FREE;
        return true;
    case M_FORCE:
        u->grow += OPEN_LEN; /* a partial tag can no longer be the one added token */
        if (b != (uint8_t)OPEN_TAG[x->mk])
            return false;
        x->mk++;
        return x->mk < OPEN_LEN || open_call(c, u);
    case M_CLOSE:
        u->grow += CLOSE_LEN;
        if (b != (uint8_t)CLOSE_SEQ[x->mk])
            return false;
        x->body++;
        if (!CLOSE_SEQ[++x->mk]) {
            x->mode = M_FREE;
            x->mk = x->mset = 0;
            x->calls++;
        }
        return true;
    default: /* M_BODY */ x->body++; return body_step(c, u, b);
    }
}

/* ---- completion: the shortest way to close the call from a state ---- */

/* Next byte of the literal the completion takes (required unseen keys first, else the
 * shortest literal); -1 when a literal that is not a string is complete. */
static int lit_choose(const constrain *c, const cursor *u)
{
    const mstate *x = &u->x;
    const lit *L = set_lits(c, x->lset);
    if (x->llo < x->lhi && L[x->llo].len == x->lk && !lit_is_str(c, &L[x->llo]))
        return -1;
    uint32_t pick = UINT32_MAX;
    if (x->lrole == LR_KEY) {
        const snode *n = &c->nodes[u->top.node];
        for (uint32_t i = x->llo; i < x->lhi && pick == UINT32_MAX; i++) {
            if (!(u->top.seen >> i & 1) && (n->required >> i & 1))
                pick = i;
        }
        for (uint32_t i = x->llo; i < x->lhi && pick == UINT32_MAX; i++) {
            if (!(u->top.seen >> i & 1))
                pick = i;
        }
        if (pick == UINT32_MAX)
            return '_'; /* every candidate was given: leave them as an extra key */
    } else {
        for (uint32_t i = x->llo; i < x->lhi; i++) {
            if (pick == UINT32_MAX || L[i].len < L[pick].len)
                pick = i;
        }
    }
    return lit_byte(c, &L[pick], x->lk);
}

static int struct_choose(const constrain *c, const cursor *u)
{
    static const char top_bytes[] = "{\":\",\":{}";
    const frame *f = &u->top;
    const snode *n = &c->nodes[f->node];
    switch (f->kind) {
    case FR_TOP: return top_bytes[f->phase];
    case FR_OBJ: {
        bool missing = (n->required & ~f->seen) != 0;
        switch (f->phase) {
        case O_FIRST: return missing ? '"' : '}';
        case O_KEY: return '"';
        case O_COLON: return ':';
        case O_VALUE:
            return c->nodes[f->prop != NO_PROP ? c->child[n->prop0 + f->prop] : NODE_ANY].first;
        default: return missing ? ',' : '}';
        }
    }
    default: return f->phase == A_VALUE ? c->nodes[n->items].first : ']';
    }
}

static int choose(const constrain *c, const cursor *u)
{
    const mstate *x = &u->x;
    switch (x->mode) {
    case M_FREE:
    case M_THINK: return -1;
    case M_FORCE: return OPEN_TAG[x->mk];
    case M_CLOSE: return CLOSE_SEQ[x->mk];
    default: break;
    }
    int ch;
    switch (x->lex) {
    case LX_STR:
        if (x->u8need)
            return x->u8lo;
        if (x->esc == 1)
            return x->hi_sur ? 'u' : 'n';
        if (x->esc >= 2) {
            unsigned j = x->esc - 2u;
            if (x->hi_sur)
                return j == 0 ? 'd' : j == 1 ? 'c' : '0';
            return j == 3 && x->ucode == 0 ? '1' : '0';
        }
        if (x->hi_sur)
            return '\\';
        return x->nonempty && !x->any ? 'x' : '"';
    case LX_NUM:
        if (x->nphase == N_SIGN || x->nphase == N_DOT || x->nphase == N_E || x->nphase == N_ESIGN)
            return '0';
        if (x->nphase == N_INT && !int_fits(x))
            return '.';
        break;
    case LX_LIT:
        ch = lit_choose(c, u);
        if (ch >= 0)
            return ch;
        break;
    default: break;
    }
    return struct_choose(c, u);
}

/* Writes the completion of the state `from` to out (at most cap bytes); at_depth (may be NULL)
 * gets at [k] the bytes written when depth first fell to k. Returns the length, or SIZE_MAX
 * when it does not fit (never within the schema limits) or a choice is refused (a bug). */
static size_t complete(const constrain *c, const cursor *from, cursor *w, char *out, size_t cap,
                       uint32_t *at_depth)
{
    cur_copy(w, from);
    size_t n = 0;
    uint32_t low = w->x.depth;
    for (;;) {
        if (at_depth && w->x.mode == M_BODY && w->x.depth < low) {
            low = w->x.depth;
            at_depth[low] = (uint32_t)n;
        }
        int ch = choose(c, w);
        if (ch < 0)
            return n;
        if (n == cap || !step(c, w, (uint8_t)ch))
            return SIZE_MAX;
        if (out)
            out[n] = (char)ch;
        n++;
    }
}

/* Tokens that certainly suffice to write p[0..n): one per byte, one for each added tag. */
static long tokens_for(const constrain *c, const char *p, size_t n)
{
    long t = 0;
    if (c->v->id_open >= 0 && n >= OPEN_LEN && !memcmp(p, OPEN_TAG, OPEN_LEN)) {
        t++;
        p += OPEN_LEN;
        n -= OPEN_LEN;
    }
    if (c->v->id_close >= 0 && n >= CLOSE_LEN && !memcmp(p + n - CLOSE_LEN, CLOSE_TAG, CLOSE_LEN))
        return t + 1 + (long)(n - CLOSE_LEN);
    return t + (long)n;
}

static bool in_call(const mstate *x)
{
    return x->mode == M_FORCE || x->mode == M_BODY || x->mode == M_CLOSE;
}

/* Recomputes the completion of the committed state, and rest[k]: the bytes the completion
 * still writes once the frames have closed down to depth k (then the top is stack[k - 1],
 * untouched, in its after-value phase), so a state that shares those frames costs only its
 * own part. */
static void refresh(constrain *c)
{
    c->fin_len = 0;
    c->need = 0;
    if (!in_call(&c->x))
        return;
    cursor u;
    cur_from(c, &u);
    uint32_t at[CONSTRAIN_MAX_DEPTH + 1];
    size_t n = complete(c, &u, &c->wcur, c->fin, FIN_CAP, at);
    LOCO_ASSERT(n != SIZE_MAX);
    c->fin_len = n;
    c->need = tokens_for(c, c->fin, n);
    for (uint32_t k = 1; c->x.mode == M_BODY && k < c->x.depth; k++)
        c->rest[k] = (uint32_t)n - at[k];
}

/* True when no JSON token is open, or the open one (a number, true, ...) may end here. */
static bool token_done(const constrain *c, const mstate *x)
{
    if (x->lex == LX_NUM)
        return x->nphase == N_ZERO || x->nphase == N_FRAC || x->nphase == N_EXP ||
               (x->nphase == N_INT && int_fits(x));
    if (x->lex == LX_LIT) {
        const lit *l = &set_lits(c, x->lset)[x->llo];
        return x->llo < x->lhi && l->len == x->lk && !lit_is_str(c, l);
    }
    return x->lex == LX_NONE;
}

/* Bytes the completion writes from an object or array frame in its after-value phase: the
 * required members still missing (each its shortest value, as choose() writes them), then
 * the closer. */
static size_t close_cost(const constrain *c, const frame *f)
{
    if (f->kind != FR_OBJ)
        return 1;
    const snode *n = &c->nodes[f->node];
    uint64_t missing = n->required & ~f->seen;
    size_t len = 1;
    for (uint32_t i = 0; missing && i < n->n_props; i++) {
        if (missing >> i & 1)
            len += 2 + c->lits[c->sets[n->keys].first + i].len +
                   c->nodes[c->child[n->prop0 + i]].min_len;
    }
    return len;
}

/* Bytes of the completion of u (a state reached from the committed one), and in *out_tokens
 * the tokens that surely suffice to write it; SIZE_MAX when it cannot complete. Only u's own
 * part is stepped: once it is back in the frame just above the committed frames it did not
 * touch, that frame costs close_cost and the frames below rest[]. */
static size_t completion_cost(constrain *c, const cursor *u, long *out_tokens)
{
    if (u->x.mode != M_BODY || !u->n_base) {
        size_t n = complete(c, u, &c->wcur, c->wbuf, FIN_CAP, NULL);
        if (n != SIZE_MAX)
            *out_tokens = tokens_for(c, c->wbuf, n);
        return n;
    }
    cursor *w = &c->wcur;
    cur_copy(w, u);
    uint32_t nb = u->n_base;
    size_t n = 0;
    for (;;) {
        const frame *f = &w->top;
        if (w->x.depth == nb) {
            n += c->rest[nb];
            break;
        }
        if (w->x.depth == nb + 1 && token_done(c, &w->x) &&
            ((f->kind == FR_OBJ && f->phase == O_AFTER) ||
             (f->kind == FR_ARR && f->phase == A_AFTER))) {
            n += close_cost(c, f) + c->rest[nb];
            break;
        }
        int ch = choose(c, w);
        if (ch < 0 || n == FIN_CAP || !step(c, w, (uint8_t)ch))
            return SIZE_MAX;
        n++;
    }
    /* from inside a body the completion ends with "\n</tool_call>" */
    *out_tokens = (long)n - (c->v->id_close >= 0 ? CLOSE_LEN - 1 : 0);
    return n;
}

/* After a token of bytes p[0..len) (ws: all whitespace) led from the committed state to u: may
 * the call still close within the token budget and the body limit? */
static bool budget_ok(constrain *c, const cursor *u, const unsigned char *p, uint32_t len, bool ws)
{
    if (!in_call(&u->x))
        return true;
    if (len <= c->fin_len && !memcmp(p, c->fin, len)) { /* along the completion */
        long rest = tokens_for(c, c->fin + len, c->fin_len - len);
        return c->left < 0 || rest <= c->left - 1 || rest < c->need;
    }
    if (c->x.mode == M_BODY && c->x.lex == LX_NONE && u->x.mode == M_BODY && u->x.lex == LX_NONE &&
        ws) /* whitespace between JSON tokens: the completion is the same */
        return (c->left < 0 || c->need <= c->left - 1) &&
               (uint64_t)u->x.body + c->fin_len <= c->max_body;
    uint64_t grow = u->grow;
    bool tight = (c->left >= 0 && (uint64_t)c->need + grow + 1 > (uint64_t)c->left) ||
                 (uint64_t)u->x.body + c->fin_len + grow > c->max_body;
    if (!tight)
        return true;
    long nt = 0;
    size_t nb = completion_cost(c, u, &nt);
    if (nb == SIZE_MAX)
        return false;
    return (c->left < 0 || nt <= c->left - 1) && (uint64_t)u->x.body + nb <= c->max_body;
}

static bool ctrl_ok(const constrain *c)
{
    return c->x.mode == M_FREE || c->x.mode == M_THINK;
}

/* Whether b continues one of the markers the text matcher is in the middle of. */
static bool mark_continues(const mstate *x, uint8_t b)
{
    const char *const *marks = x->mode == M_THINK ? think_marks : free_marks;
    int n = x->mode == M_THINK ? 1 : 3;
    for (int i = 0; i < n; i++) {
        if ((x->mset >> i & 1) && (uint8_t)marks[i][x->mk] == b)
            return true;
    }
    return false;
}

/* Inside a string with nothing pending: a plain token stays inside it. */
static bool str_clean(const mstate *x)
{
    return x->mode == M_BODY && x->lex == LX_STR && !x->esc && !x->u8need && !x->hi_sur && !x->mk;
}

/* In a key of an object that allows other keys: most tokens leave the property names. */
static bool key_wide(const constrain *c, const mstate *x)
{
    return x->mode == M_BODY && x->lex == LX_LIT && x->lrole == LR_KEY &&
           c->nodes[c->top.node].extra;
}

/* Not tight: the completion, grown by at most `grow`, still fits the token budget after one
 * more token and the body limit with the body at `body` bytes. */
static bool grow_fits(const constrain *c, uint64_t body, uint64_t grow)
{
    return (c->left < 0 || (uint64_t)c->need + grow + 1 <= (uint64_t)c->left) &&
           body + c->fin_len + grow <= c->max_body;
}

/* In a wide key state, whether a plain token of the longest length might not fit the limits
 * (then every token is decided on its own). */
static bool key_near_limit(const constrain *c)
{
    const mstate *x = &c->x;
    uint32_t len = c->v->max_len;
    return !grow_fits(c, x->body + len, c->nodes[c->top.node].key_grow + 3u * (len + x->lk));
}

/* Whether b continues one of the candidate literals. */
static bool lit_continues(const constrain *c, const mstate *x, uint8_t b)
{
    const lit *L = set_lits(c, x->lset);
    for (uint32_t i = x->llo; i < x->lhi; i++) {
        if (L[i].len > x->lk && lit_byte(c, &L[i], x->lk) == b)
            return true;
    }
    return false;
}

static bool tok_allowed(constrain *c, int32_t id)
{
    const constrain_vocab *v = c->v;
    if (id < 0 || id >= v->n_vocab)
        return false;
    uint8_t fl = v->flags[id];
    if (!(fl & F_OK))
        return false;
    if (fl & F_CTRL)
        return ctrl_ok(c);
    const mstate *x = &c->x;
    uint32_t len = v->len[id];
    const unsigned char *p = v->bytes[id];
    if ((x->mode == M_FREE || x->mode == M_THINK) && (fl & F_NOLT) &&
        (!x->mk || !mark_continues(x, p[0]))) /* text that cannot touch a tag */
        return true;
    if (str_clean(x) && (fl & F_PLAIN)) /* inside a string: the completion does not grow */
        return grow_fits(c, x->body + len, 0);
    if (key_wide(c, x) && (fl & F_PLAIN) && !lit_continues(c, x, p[0]) &&
        grow_fits(c, x->body + len, c->nodes[c->top.node].key_grow + 3u * (len + x->lk)))
        return true; /* a key that leaves every property name: an extra key */
    cursor *u = &c->tcur;
    cur_from(c, u);
    for (uint32_t i = 0; i < len; i++) {
        if (!step(c, u, p[i]))
            return false;
    }
    return budget_ok(c, u, p, len, fl & F_WS);
}

static inline void bit_set(uint64_t *m, int32_t id)
{
    m[id >> 6] |= (uint64_t)1 << (id & 63);
}

/* The tokens sorted by bytes, each prefix matched once (cs[d] = the state after d bytes). */
static void walk_sorted(constrain *c)
{
    const constrain_vocab *v = c->v;
    cursor *cs = c->cs;
    cur_from(c, &cs[0]);
    for (int b0 = 0; b0 < 256; b0++) {
        int32_t lo = v->bucket[b0], hi = v->bucket[b0 + 1];
        if (lo == hi)
            continue;
        cur_copy(&cs[1], &cs[0]);
        if (!step(c, &cs[1], (uint8_t)b0))
            continue;
        uint32_t valid = 1, rej = UINT32_MAX;
        for (int32_t i = lo; i < hi; i++) {
            int32_t id = v->sorted[i];
            uint32_t len = v->len[id];
            uint32_t l = i == lo ? 1 : v->lcp[i];
            if (rej < l)
                continue; /* starts with the prefix refused last */
            rej = UINT32_MAX;
            uint32_t d = l < valid ? l : valid;
            const unsigned char *p = v->bytes[id];
            for (; d < len; d++) {
                cur_copy(&cs[d + 1], &cs[d]);
                if (!step(c, &cs[d + 1], p[d])) {
                    rej = d;
                    break;
                }
            }
            if (rej != UINT32_MAX) {
                valid = rej;
                if (rej == 1)
                    i = v->end2[i] - 1; /* skip every token with these two first bytes */
                continue;
            }
            valid = len;
            if (budget_ok(c, &cs[len], p, len, v->flags[id] & F_WS))
                bit_set(c->mask, id);
        }
    }
    if (ctrl_ok(c)) {
        for (int32_t i = 0; i < v->n_ctrl; i++)
            bit_set(c->mask, v->ctrl[i]);
    }
}

const uint64_t *constrain_mask(constrain *c, size_t *out_n)
{
    const constrain_vocab *v = c->v;
    size_t words = ((size_t)v->n_vocab + 63) / 64;
    memset(c->mask, 0, words * sizeof(uint64_t));
    const mstate *x = &c->x;
    bool text = x->mode == M_FREE || x->mode == M_THINK;
    const int32_t *ex = NULL;
    int32_t n_ex = 0;
    if (text && !x->mk) { /* a bitset of the tokens allowed on their flags, then the rest */
        memcpy(c->mask, v->bits_nolt, words * sizeof(uint64_t));
        ex = v->ex_nolt;
        n_ex = v->n_ex_nolt;
    } else if (str_clean(x) && grow_fits(c, x->body + v->max_len, 0)) {
        memcpy(c->mask, v->bits_plain, words * sizeof(uint64_t));
        ex = v->ex_plain;
        n_ex = v->n_ex_plain;
    }
    if (!ex && ((text && x->mk) || (key_wide(c, x) && !key_near_limit(c)))) {
        /* as above, but the tokens whose first byte continues a tag or a property name are
         * left to be decided one by one */
        memcpy(c->mask, text ? v->bits_nolt : v->bits_plain, words * sizeof(uint64_t));
        for (int b = 0; b < 256; b++) {
            if (text ? !mark_continues(x, (uint8_t)b) : !lit_continues(c, x, (uint8_t)b))
                continue;
            for (int32_t i = v->bucket[b]; i < v->bucket[b + 1]; i++) {
                int32_t id = v->sorted[i];
                c->mask[id >> 6] &= ~((uint64_t)1 << (id & 63));
                if (tok_allowed(c, id))
                    bit_set(c->mask, id);
            }
        }
        ex = text ? v->ex_nolt : v->ex_plain;
        n_ex = text ? v->n_ex_nolt : v->n_ex_plain;
    }
    if (ex) {
        for (int32_t i = 0; i < n_ex; i++) {
            if (tok_allowed(c, ex[i]))
                bit_set(c->mask, ex[i]);
        }
    } else if (text || str_clean(x) || key_wide(c, x)) {
        for (int32_t id = 0; id < v->n_vocab; id++) { /* most pass on their flags alone */
            if (tok_allowed(c, id))
                bit_set(c->mask, id);
        }
    } else {
        walk_sorted(c);
    }
    if (out_n) {
        size_t n = 0;
        for (size_t i = 0; i < words; i++)
            n += (size_t)__builtin_popcountll(c->mask[i]);
        *out_n = n;
    }
    return c->mask;
}

bool constrain_allows(constrain *c, int32_t id)
{
    return tok_allowed(c, id);
}

loco_status constrain_accept(constrain *c, int32_t id)
{
    if (!tok_allowed(c, id))
        return LOCO_ERR_INVALID;
    const constrain_vocab *v = c->v;
    if (!(v->flags[id] & F_CTRL)) {
        cursor *u = &c->tcur;
        cur_from(c, u);
        const unsigned char *p = v->bytes[id];
        for (uint32_t i = 0; i < v->len[id]; i++) {
            bool ok = step(c, u, p[i]);
            LOCO_ASSERT(ok);
        }
        commit(c, u);
    }
    if (c->left > 0)
        c->left--;
    refresh(c);
    return LOCO_OK;
}

size_t constrain_accept_bytes(constrain *c, const char *p, size_t n)
{
    cursor *u = &c->tcur;
    size_t i = 0;
    for (; i < n; i++) {
        cur_from(c, u);
        if (!step(c, u, (uint8_t)p[i]))
            break;
        commit(c, u);
    }
    refresh(c);
    return i;
}

void constrain_reset(constrain *c, long max_tokens)
{
    memset(&c->x, 0, sizeof(c->x));
    memset(&c->top, 0, sizeof(c->top));
    c->x.mode = c->mode == CONSTRAIN_FORCE ? M_FORCE : M_FREE;
    c->max_tokens = max_tokens;
    c->left = max_tokens > 0 ? max_tokens : -1;
    refresh(c);
}

void constrain_set_budget(constrain *c, long tokens_left)
{
    c->left = tokens_left < 0 ? -1 : tokens_left;
}

int32_t constrain_n_vocab(const constrain *c)
{
    return c->v->n_vocab;
}

bool constrain_in_call(const constrain *c)
{
    return in_call(&c->x);
}

bool constrain_can_end(const constrain *c)
{
    return ctrl_ok(c);
}

size_t constrain_calls(const constrain *c)
{
    return c->x.calls;
}

const char *constrain_completion(const constrain *c, size_t *out_len)
{
    if (out_len)
        *out_len = c->fin_len;
    return c->fin_len ? c->fin : "";
}

/* ---- schema compilation ---- */

/* Room for `need` elements of `size` bytes in the array whose pointer is at pp (a T **,
 * read and written through memcpy so any element type works), *cap elements allocated. */
static loco_status grow(void *pp, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return LOCO_OK;
    uint32_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *p;
    memcpy(&p, pp, sizeof(p));
    void *q = realloc(p, (size_t)nc * size);
    if (!q)
        return LOCO_ERR_NOMEM;
    memcpy(pp, &q, sizeof(q));
    *cap = nc;
    return LOCO_OK;
}

/* A literal about to be added: its bytes (borrowed) and aux. */
typedef struct {
    const char *p;
    size_t len;
    int32_t aux;
    const json_t *schema; /* properties: the property's schema */
    bool required;
} lit_in;

static int lit_in_cmp(const void *a, const void *b)
{
    const lit_in *x = a, *y = b;
    return bytes_cmp((const unsigned char *)x->p, x->len, (const unsigned char *)y->p, y->len);
}

/* Sorts in[0..*n), drops repeats (the first of equal ones stays, as qsort is not stable the
 * aux of a repeat is resolved by the caller keeping them unique). */
static void lits_sort_unique(lit_in *in, size_t *n)
{
    qsort(in, *n, sizeof(*in), lit_in_cmp);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (k && !lit_in_cmp(&in[k - 1], &in[i]))
            continue;
        in[k++] = in[i];
    }
    *n = k;
}

/* Adds a literal set from sorted, distinct in[0..n); its index in *out. */
static loco_status set_add(constrain *c, const lit_in *in, size_t n, uint32_t *out)
{
    loco_status rc = grow(&c->sets, &c->cap_sets, c->n_sets + 1, sizeof(lset));
    if (!rc)
        rc = grow(&c->lits, &c->cap_lits, c->n_lits + (uint32_t)n, sizeof(lit));
    if (rc)
        return rc;
    lset *s = &c->sets[c->n_sets];
    s->first = c->n_lits;
    s->n = (uint32_t)n;
    s->maxlen = 0;
    for (size_t i = 0; i < n; i++) {
        lit *l = &c->lits[c->n_lits++];
        l->off = (uint32_t)c->pool.len;
        l->len = (uint32_t)in[i].len;
        l->aux = in[i].aux;
        if (l->len > s->maxlen)
            s->maxlen = l->len;
        rc = buf_append(&c->pool, in[i].p, in[i].len);
        if (rc)
            return rc;
    }
    *out = c->n_sets++;
    return LOCO_OK;
}

/* A name (tool or property) usable as a literal: "..." with no byte JSON must escape. */
static bool name_ok(const char *s, size_t n)
{
    if (!n || n + 2 > CONSTRAIN_MAX_LITERAL || !str_utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\')
            return false;
    }
    return !str_memmem(s, n, CLOSE_TAG);
}

static char *quoted(const char *s, size_t n)
{
    char *q = malloc(n + 3);
    if (!q)
        return NULL;
    q[0] = '"';
    memcpy(q + 1, s, n);
    q[n + 1] = '"';
    q[n + 2] = '\0';
    return q;
}

static uint8_t type_bit(const char *s)
{
    static const char *const names[] = {"string", "number", "integer", "boolean",
                                        "null",   "object", "array"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(names); i++) {
        if (!strcmp(s, names[i]))
            return (uint8_t)(1u << i);
    }
    return 0;
}

static uint8_t types_of(const json_t *s)
{
    const json_t *t = json_object_get(s, "type");
    uint8_t m = 0;
    if (json_is_string(t)) {
        m = type_bit(json_string_value(t));
    } else if (json_is_array(t)) {
        size_t i;
        const json_t *e;
        json_array_foreach (t, i, e) {
            if (json_is_string(e))
                m |= type_bit(json_string_value(e));
        }
    } else if (json_object_get(s, "properties") || json_object_get(s, "required") ||
               json_object_get(s, "additionalProperties")) {
        m = T_OBJECT;
    } else if (json_object_get(s, "items")) {
        m = T_ARRAY;
    }
    return m ? m : T_ALL;
}

/* True when the enum value v is of a type in mask. */
static bool value_typed(const json_t *v, uint8_t mask)
{
    if (json_is_string(v))
        return mask & T_STRING;
    if (json_is_integer(v))
        return mask & (T_NUMBER | T_INTEGER);
    if (json_is_real(v))
        return mask & T_NUMBER;
    if (json_is_boolean(v))
        return mask & T_BOOLEAN;
    if (json_is_null(v))
        return mask & T_NULL;
    return false;
}

/* enum / const of s as a literal set (scalar values of the node's types); -1 when none. */
static loco_status enum_set(constrain *c, const json_t *s, uint8_t types, int32_t *out)
{
    *out = -1;
    const json_t *e = json_object_get(s, "enum");
    const json_t *k = json_object_get(s, "const");
    size_t n = json_is_array(e) ? json_array_size(e) : k ? 1 : 0;
    if (!n)
        return LOCO_OK;
    if (n > 4096)
        n = 4096;
    lit_in *in = calloc(n, sizeof(*in));
    char **texts = calloc(n, sizeof(*texts));
    loco_status rc = in && texts ? LOCO_OK : LOCO_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const json_t *v = json_is_array(e) ? json_array_get(e, i) : k;
        if (!value_typed(v, types))
            continue;
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!t) {
            rc = LOCO_ERR_NOMEM;
            break;
        }
        size_t tl = strlen(t);
        if (!tl || tl > CONSTRAIN_MAX_LITERAL || str_memmem(t, tl, CLOSE_TAG) ||
            (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))) {
            free(t);
            continue;
        }
        texts[m] = t;
        in[m] = (lit_in){t, tl, 0, NULL, false};
        m++;
    }
    if (!rc && m) {
        lits_sort_unique(in, &m);
        uint32_t id;
        rc = set_add(c, in, m, &id);
        if (!rc)
            *out = (int32_t)id;
    }
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    free(in);
    return rc;
}

static loco_status node_new(constrain *c, uint32_t *out)
{
    loco_status rc = grow(&c->nodes, &c->cap_nodes, c->n_nodes + 1, sizeof(snode));
    if (rc)
        return rc;
    memset(&c->nodes[c->n_nodes], 0, sizeof(snode));
    *out = c->n_nodes++;
    return LOCO_OK;
}

static uint32_t compile(constrain *c, const json_t *s, int depth, loco_status *rc);

/* The properties of object schema s into node idx (sorted; required ones flagged). */
static loco_status compile_props(constrain *c, uint32_t idx, const json_t *s, int depth)
{
    const json_t *props = json_object_get(s, "properties");
    const json_t *req = json_object_get(s, "required");
    size_t cap = (json_is_object(props) ? json_object_size(props) : 0) +
                 (json_is_array(req) ? json_array_size(req) : 0);
    if (!cap)
        return LOCO_OK;
    lit_in *in = calloc(cap, sizeof(*in));
    char **keep = calloc(cap, sizeof(*keep));
    loco_status rc = in && keep ? LOCO_OK : LOCO_ERR_NOMEM;
    size_t n = 0;
    const char *key;
    const json_t *val;
    if (!rc && json_is_object(props)) {
        json_object_foreach ((json_t *)props, key, val) {
            size_t kl = strlen(key);
            if (!name_ok(key, kl))
                continue;
            keep[n] = quoted(key, kl);
            if (!keep[n]) {
                rc = LOCO_ERR_NOMEM;
                break;
            }
            in[n] = (lit_in){keep[n], kl + 2, 0, val, false};
            n++;
        }
    }
    size_t i;
    json_array_foreach (req, i, val) {
        if (rc || !json_is_string(val))
            continue;
        const char *r = json_string_value(val);
        size_t rl = json_string_length(val);
        bool found = false;
        for (size_t j = 0; j < n; j++) {
            if (in[j].len == rl + 2 && !memcmp(in[j].p + 1, r, rl)) {
                in[j].required = true;
                found = true;
            }
        }
        if (found || rl != strlen(r) || !name_ok(r, rl))
            continue;
        keep[n] = quoted(r, rl); /* required but not described: any value */
        if (!keep[n]) {
            rc = LOCO_ERR_NOMEM;
            break;
        }
        in[n] = (lit_in){keep[n], rl + 2, 0, NULL, true};
        n++;
    }
    if (!rc && n) {
        lits_sort_unique(in, &n);
        if (n > CONSTRAIN_MAX_PROPS)
            n = CONSTRAIN_MAX_PROPS;
        uint32_t set;
        rc = set_add(c, in, n, &set);
        uint32_t first = c->n_child;
        if (!rc)
            rc = grow(&c->child, &c->cap_child, c->n_child + (uint32_t)n, sizeof(uint32_t));
        if (!rc) {
            c->n_child += (uint32_t)n;
            uint64_t required = 0;
            for (size_t j = 0; j < n; j++) {
                if (in[j].required)
                    required |= (uint64_t)1 << j;
            }
            for (size_t j = 0; !rc && j < n; j++) {
                uint32_t ch = compile(c, in[j].schema, depth + 1, &rc);
                c->child[first + j] = ch;
            }
            snode *nd = &c->nodes[idx];
            nd->keys = (int32_t)set;
            nd->prop0 = first;
            nd->n_props = (uint32_t)n;
            nd->required = required;
        }
    }
    for (size_t j = 0; keep && j < cap; j++)
        free(keep[j]);
    free(keep);
    free(in);
    return rc;
}

/* start_grow: the longest shortest completion of a value begun any way the node allows;
 * key_grow: of a member begun (the longest key, its value, and a required key put off). */
static void node_grow(constrain *c, uint32_t idx)
{
    snode *n = &c->nodes[idx];
    uint32_t g = 6; /* strings (x"), numbers, true, false, null, [] */
    if (n->lits >= 0) {
        const lset *s = &c->sets[n->lits];
        for (uint32_t i = 0; i < s->n; i++)
            g = c->lits[s->first + i].len > g ? c->lits[s->first + i].len : g;
    }
    if ((n->types & T_OBJECT) && n->min_len > g)
        g = n->min_len;
    n->start_grow = g + 2;
    uint32_t k = 16; /* an extra key: "" and any value */
    for (uint32_t i = 0; i < n->n_props; i++) {
        const lit *l = &c->lits[c->sets[n->keys].first + i];
        uint32_t v = c->nodes[c->child[n->prop0 + i]].start_grow;
        k = l->len + v + 2 > k ? l->len + v + 2 : k;
    }
    n->key_grow = 2 * k + 4;
}

static void node_min(constrain *c, uint32_t idx)
{
    snode *n = &c->nodes[idx];
    if (n->lits >= 0) {
        const lset *s = &c->sets[n->lits];
        const lit *best = NULL;
        for (uint32_t i = 0; i < s->n; i++) {
            const lit *l = &c->lits[s->first + i];
            if (!best || l->len < best->len)
                best = l;
        }
        n->min_len = best->len;
        n->first = lit_byte(c, best, 0);
    } else if (n->types & (T_NUMBER | T_INTEGER)) {
        n->min_len = 1;
        n->first = '0';
    } else if (n->types & T_STRING) {
        n->min_len = n->nonempty ? 3 : 2;
        n->first = '"';
    } else if (n->types & T_ARRAY) {
        n->min_len = 2;
        n->first = '[';
    } else if (n->types & T_OBJECT) {
        uint64_t len = 2, nreq = 0;
        for (uint32_t i = 0; i < n->n_props; i++) {
            if (!(n->required >> i & 1))
                continue;
            const lit *k = &c->lits[c->sets[n->keys].first + i];
            len += k->len + 1 + c->nodes[c->child[n->prop0 + i]].min_len;
            nreq++;
        }
        len += nreq ? nreq - 1 : 0;
        if (len > MAX_MIN_LEN) { /* too much to force: the requirements are not enforced */
            n->required = 0;
            len = 2;
        }
        n->min_len = (uint32_t)len;
        n->first = '{';
    } else {
        n->min_len = 4;
        n->first = n->types & T_BOOLEAN ? 't' : 'n';
    }
    node_grow(c, idx);
}

static uint32_t compile(constrain *c, const json_t *s, int depth, loco_status *rc)
{
    if (*rc || !json_is_object(s) || depth > CONSTRAIN_MAX_SCHEMA_DEPTH || c->n_nodes >= MAX_NODES)
        return NODE_ANY;
    uint32_t idx;
    uint8_t types = types_of(s);
    int32_t lits = -1;
    *rc = node_new(c, &idx);
    if (!*rc)
        *rc = enum_set(c, s, types, &lits);
    if (*rc)
        return NODE_ANY;
    snode *n = &c->nodes[idx];
    n->types = types;
    n->lits = lits;
    n->keys = -1;
    n->items = NODE_ANY;
    const json_t *ap = json_object_get(s, "additionalProperties");
    n->extra = !json_is_false(ap);
    const json_t *min = json_object_get(s, "minimum");
    n->nonneg = json_is_number(min) && json_number_value(min) >= 0;
    const json_t *max = json_object_get(s, "maximum");
    if (types == T_INTEGER && json_is_number(max) && json_number_value(max) >= 10 &&
        json_number_value(max) < 1e18) {
        unsigned d = 0;
        for (double m = json_number_value(max); m >= 1; m /= 10)
            d++;
        n->maxdig = (uint8_t)(d - 1); /* every value of fewer digits is below maximum */
    }
    const json_t *ml = json_object_get(s, "minLength");
    n->nonempty = json_is_number(ml) && json_number_value(ml) >= 1;
    if (lits < 0 && (types & T_OBJECT))
        *rc = compile_props(c, idx, s, depth);
    if (*rc)
        return NODE_ANY;
    if (lits < 0 && (types & T_ARRAY)) {
        uint32_t it = compile(c, json_object_get(s, "items"), depth + 1, rc);
        c->nodes[idx].items = it;
    }
    node_min(c, idx);
    return idx;
}

typedef struct {
    const char *name;
    size_t len;
    uint32_t tool;
} name_in;

static loco_status compile_tools(constrain *c, const constrain_tool *tools, size_t n_tools)
{
    loco_status rc = LOCO_OK;
    c->tool_node = calloc(n_tools ? n_tools : 1, sizeof(*c->tool_node));
    lit_in *in = calloc(n_tools ? n_tools : 1, sizeof(*in));
    char **keep = calloc(n_tools ? n_tools : 1, sizeof(*keep));
    if (!c->tool_node || !in || !keep)
        rc = LOCO_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; !rc && i < n_tools; i++) {
        const char *name = tools[i].name;
        size_t nl = name ? strlen(name) : 0;
        if (!name_ok(name, nl))
            continue;
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = in[j].len == nl + 2 && !memcmp(in[j].p + 1, name, nl);
        if (dup)
            continue;
        keep[n] = quoted(name, nl);
        if (!keep[n]) {
            rc = LOCO_ERR_NOMEM;
            break;
        }
        const char *sj = tools[i].schema_json;
        json_t *schema = sj ? json_parse(sj, strlen(sj), NULL) : NULL;
        uint32_t node = NODE_ANY_OBJECT;
        if (json_is_object(schema)) {
            node = compile(c, schema, 1, &rc);
            if (!(c->nodes[node].types & T_OBJECT) || c->nodes[node].lits >= 0)
                node = NODE_ANY_OBJECT;
        }
        json_decref(schema);
        c->tool_node[n] = node;
        in[n] = (lit_in){keep[n], nl + 2, (int32_t)n, NULL, false};
        n++;
    }
    c->n_tools = (uint32_t)n;
    if (!rc) {
        lits_sort_unique(in, &n); /* names are distinct: nothing dropped */
        rc = set_add(c, in, n, &c->set_names);
    }
    for (size_t j = 0; keep && j < n_tools; j++)
        free(keep[j]);
    free(keep);
    free(in);
    return rc;
}

static loco_status fixed_set(constrain *c, const char *const *vals, size_t n, uint32_t *out)
{
    lit_in in[2];
    for (size_t i = 0; i < n; i++)
        in[i] = (lit_in){vals[i], strlen(vals[i]), 0, NULL, false};
    return set_add(c, in, n, out); /* vals given sorted */
}

static loco_status base_nodes(constrain *c)
{
    uint32_t a, o;
    loco_status rc = node_new(c, &a);
    if (!rc)
        rc = node_new(c, &o);
    if (rc)
        return rc;
    c->nodes[a] = (snode){.types = T_ALL,
                          .extra = true,
                          .lits = -1,
                          .keys = -1,
                          .items = NODE_ANY,
                          .min_len = 1,
                          .first = '0'};
    c->nodes[o] = (snode){.types = T_OBJECT,
                          .extra = true,
                          .lits = -1,
                          .keys = -1,
                          .items = NODE_ANY,
                          .min_len = 2,
                          .first = '{'};
    node_grow(c, a);
    node_grow(c, o);
    static const char *const kname[] = {"\"name\""}, *const kargs[] = {"\"arguments\""},
                             *const bools[] = {"false", "true"}, *const nul[] = {"null"};
    rc = fixed_set(c, kname, 1, &c->set_kname);
    if (!rc)
        rc = fixed_set(c, kargs, 1, &c->set_kargs);
    if (!rc)
        rc = fixed_set(c, bools, 2, &c->set_bool);
    if (!rc)
        rc = fixed_set(c, nul, 1, &c->set_null);
    return rc;
}

/* Bounds on what a byte adds to the completion (docs/internals/constrain.md, "Budget"): a
 * byte of a literal may switch to the longest literal and the largest value, and leave a
 * required key for later; opening a call adds a whole call. */
static void compute_grow(constrain *c)
{
    uint32_t maxlit = 0, maxmin = 0;
    for (uint32_t i = 0; i < c->n_lits; i++)
        maxlit = c->lits[i].len > maxlit ? c->lits[i].len : maxlit;
    for (uint32_t i = 0; i < c->n_nodes; i++)
        maxmin = c->nodes[i].min_len > maxmin ? c->nodes[i].min_len : maxmin;
    c->name_grow = 2 * maxlit + 2 * maxmin + 8;
    c->call_grow = 48 + maxlit + maxmin;
}

void constrain_free(constrain *c)
{
    if (!c)
        return;
    constrain_vocab_free(c->own_v);
    free(c->nodes);
    free(c->child);
    free(c->lits);
    free(c->sets);
    buf_release(&c->pool);
    free(c->tool_node);
    free(c->mask);
    free(c->cs);
    free(c);
}

loco_status constrain_new(const tok *t, const constrain_tool *tools, size_t n_tools,
                          const constrain_opts *opts, constrain **out, loco_err *err)
{
    constrain_opts o;
    memset(&o, 0, sizeof(o));
    if (opts)
        o = *opts;
    if (n_tools > CONSTRAIN_MAX_TOOLS)
        return loco_err_set(err, LOCO_ERR_LIMIT, "constrain: %zu tools (at most %d)", n_tools,
                            CONSTRAIN_MAX_TOOLS);
    constrain *c = calloc(1, sizeof(*c));
    if (!c)
        return loco_err_set(err, LOCO_ERR_NOMEM, "constrain: out of memory");
    c->t = t;
    c->mode = o.mode;
    c->max_body = o.max_body_bytes ? o.max_body_bytes : CONSTRAIN_DEFAULT_MAX_BODY;
    buf_init(&c->pool, (size_t)64 << 20);
    loco_status rc = LOCO_OK;
    if (o.vocab) {
        c->v = o.vocab;
    } else {
        rc = constrain_vocab_new(t, o.n_vocab, &c->own_v, err);
        c->v = c->own_v;
    }
    if (!rc) {
        c->mask = calloc(((size_t)c->v->n_vocab + 63) / 64, sizeof(uint64_t));
        c->cs = malloc(((size_t)c->v->max_len + 2) * sizeof(cursor));
        rc = c->mask && c->cs ? LOCO_OK : LOCO_ERR_NOMEM;
        if (!rc)
            rc = base_nodes(c);
        if (!rc)
            rc = compile_tools(c, tools, n_tools);
        if (rc)
            loco_err_set(err, rc, "constrain: %s while reading the tool schemas",
                         loco_status_str(rc));
    }
    if (!rc && c->mode == CONSTRAIN_FORCE && !c->n_tools)
        rc = loco_err_set(err, LOCO_ERR_INVALID,
                          "constrain: a tool call is required but no usable tool was given");
    if (rc) {
        constrain_free(c);
        return rc;
    }
    compute_grow(c);
    constrain_reset(c, o.max_tokens);
    *out = c;
    return LOCO_OK;
}

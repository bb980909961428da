/* kv.c: the block pool and prefix tree of the KV cache (kv.h, docs/internals/sched.md).
 * A block is FREE (on the free list, its pages given back), PRIVATE (being written by the one
 * sequence that owns it) or SEALED (immutable, in the prefix tree under the block before it,
 * shared by any number of sequences, cached when none uses it). Only sealed blocks without
 * children and without users are evicted, so a cached block's ancestors are always cached. */
#include "base/common.h"

#include <sys/mman.h>
#include <unistd.h>

#include "engine/kv.h"

enum { BLK_FREE, BLK_PRIVATE, BLK_SEALED };

typedef struct {
    int32_t parent;  /* block before it in its sequences; -1: a first block */
    int32_t child;   /* first child (sealed blocks only), -1: none */
    int32_t sibling; /* next child of the same parent, or next free block */
    uint32_t gen;    /* bumped when the block is freed (stale pins are ignored) */
    uint32_t refs;   /* sequences using it */
    uint32_t pins;   /* kv_pin handles on it or on a descendant */
    uint16_t n;      /* positions written */
    uint8_t state;
    uint64_t stamp;  /* last use, for LRU */
    int32_t tokens[KV_BLOCK];
} kv_block;

struct kv_cache {
    kv_params p;
    size_t row_bytes;    /* one position of one head */
    size_t tile_bytes;   /* KV_BLOCK rows */
    size_t block_bytes;  /* n_layer * 2 * n_head_kv tiles, rounded up to whole pages */
    size_t map_bytes;
    uint8_t *pool;       /* (max_blocks, block_bytes) reserved with MAP_NORESERVE */
    kv_block *blocks;    /* (max_blocks) */
    int32_t free_head;
    int32_t root_child;  /* first child of the root: the first blocks of sequences */
    uint64_t clock;
    uint32_t used;       /* blocks not FREE */
    uint32_t cached;     /* SEALED blocks with refs == 0 */
    uint64_t evictions;
};

struct kv_seq {
    kv_cache *c;
    uint32_t n_ctx;
    uint32_t len;
    uint32_t n_table;  /* blocks in table (may exceed ceil(len / KV_BLOCK) after a reserve) */
    int32_t *table;    /* (ceil(n_ctx / KV_BLOCK)) block ids */
};

/* ---------------------------------------------------------------- pool */

loco_status kv_cache_new(const kv_params *p, kv_cache **out, loco_err *err)
{
    if (!p->n_layer || !p->n_head_kv || !p->head_dim || !p->max_blocks ||
        p->max_blocks > (1u << 30))
        return loco_err_set(err, LOCO_ERR_INVALID, "KV cache: bad shape");
    if (p->type != GGML_TYPE_F16 && p->type != GGML_TYPE_Q8_0)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED, "KV cache type %s is not supported (f16, q8_0)",
                            ggml_type_name(p->type));
    if (p->type == GGML_TYPE_Q8_0 && p->head_dim % 32)
        return loco_err_set(err, LOCO_ERR_UNSUPPORTED,
                            "a q8_0 KV cache needs a head size that is a multiple of 32 (it is %u)",
                            p->head_dim);
    kv_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    c->p = *p;
    c->row_bytes = ggml_type_row_size(p->type, p->head_dim);
    c->tile_bytes = c->row_bytes * KV_BLOCK;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (page < 4096)
        page = 4096;
    size_t raw = c->tile_bytes * 2 * p->n_head_kv * p->n_layer;
    c->block_bytes = (raw + page - 1) / page * page;
    c->map_bytes = c->block_bytes * p->max_blocks;
    c->blocks = calloc(p->max_blocks, sizeof(kv_block));
    void *m = mmap(NULL, c->map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    c->pool = m == MAP_FAILED ? NULL : m;
    if (!c->blocks || !c->pool) {
        size_t mib = c->map_bytes >> 20;
        kv_cache_free(c);
        return loco_err_set(err, LOCO_ERR_NOMEM, "cannot reserve %zu MiB for the KV cache", mib);
    }
    /* large blocks (real models: several MiB) on huge pages where the kernel offers them: the
     * attention walks every block of a sequence each step, a TLB miss per 4 KiB otherwise */
    if (c->block_bytes >= ((size_t)2 << 20))
        madvise(c->pool, c->map_bytes, MADV_HUGEPAGE);
    for (uint32_t i = 0; i < p->max_blocks; i++) {
        c->blocks[i].sibling = i + 1 < p->max_blocks ? (int32_t)i + 1 : -1;
        c->blocks[i].state = BLK_FREE;
    }
    c->free_head = 0;
    c->root_child = -1;
    *out = c;
    return LOCO_OK;
}

void kv_cache_free(kv_cache *c)
{
    if (!c)
        return;
    if (c->pool)
        munmap(c->pool, c->map_bytes);
    free(c->blocks);
    free(c);
}

void kv_cache_stats(const kv_cache *c, kv_stats *out)
{
    out->block_bytes = c->block_bytes;
    out->blocks_used = c->used;
    out->blocks_cached = c->cached;
    out->evictions = c->evictions;
}

size_t kv_row_bytes(const kv_cache *c)
{
    return c->row_bytes;
}

ggml_type kv_type(const kv_cache *c)
{
    return c->p.type;
}

static uint8_t *block_mem(const kv_cache *c, int32_t b)
{
    return c->pool + (size_t)b * c->block_bytes;
}

/* Tile (layer, kind 0 = K / 1 = V, head) of block b. */
static uint8_t *tile(const kv_cache *c, int32_t b, uint32_t layer, uint32_t kind, uint32_t head)
{
    size_t t = ((size_t)layer * 2 + kind) * c->p.n_head_kv + head;
    return block_mem(c, b) + t * c->tile_bytes;
}

static int32_t *children_link(kv_cache *c, int32_t parent)
{
    return parent < 0 ? &c->root_child : &c->blocks[parent].child;
}

static void unlink_child(kv_cache *c, int32_t b)
{
    int32_t *l = children_link(c, c->blocks[b].parent);
    while (*l != b) {
        LOCO_ASSERT(*l >= 0);
        l = &c->blocks[*l].sibling;
    }
    *l = c->blocks[b].sibling;
    c->blocks[b].sibling = -1;
}

static void block_release_mem(kv_cache *c, int32_t b)
{
    kv_block *k = &c->blocks[b];
    if (k->state == BLK_SEALED)
        unlink_child(c, b);
    k->state = BLK_FREE;
    k->gen++;
    k->refs = k->pins = 0;
    k->n = 0;
    k->parent = k->child = -1;
    /* give the pages back: a cache that shrank costs no memory */
    madvise(block_mem(c, b), c->block_bytes, MADV_DONTNEED);
    k->sibling = c->free_head;
    c->free_head = b;
    c->used--;
}

/* The eviction victim: a cached leaf, unpinned before pinned, least recently used first. */
static int32_t pick_victim(const kv_cache *c)
{
    int32_t best = -1;
    for (uint32_t i = 0; i < c->p.max_blocks; i++) {
        const kv_block *k = &c->blocks[i];
        if (k->state != BLK_SEALED || k->refs || k->child >= 0)
            continue;
        if (best < 0) {
            best = (int32_t)i;
            continue;
        }
        const kv_block *b = &c->blocks[best];
        if ((k->pins == 0) != (b->pins == 0) ? k->pins == 0 : k->stamp < b->stamp)
            best = (int32_t)i;
    }
    return best;
}

static void evict(kv_cache *c, int32_t b)
{
    kv_block *k = &c->blocks[b];
    /* its pins came from handles on it (it is a leaf): they leave its ancestors too */
    for (int32_t a = k->parent; a >= 0 && k->pins; a = c->blocks[a].parent)
        c->blocks[a].pins -= k->pins;
    c->cached--;
    c->evictions++;
    block_release_mem(c, b);
}

void kv_cache_trim(kv_cache *c, uint64_t cap)
{
    while ((uint64_t)c->cached * c->block_bytes > cap) {
        int32_t v = pick_victim(c);
        if (v < 0)
            break;
        evict(c, v);
    }
}

/* A FREE block made PRIVATE (refs 1), evicting a cached one when none is free; -1 when
 * every block is in use. */
static int32_t block_alloc(kv_cache *c)
{
    if (c->free_head < 0) {
        int32_t v = pick_victim(c);
        if (v < 0)
            return -1;
        evict(c, v);
    }
    int32_t b = c->free_head;
    kv_block *k = &c->blocks[b];
    c->free_head = k->sibling;
    k->sibling = k->parent = k->child = -1;
    k->state = BLK_PRIVATE;
    k->refs = 1;
    k->pins = 0;
    k->n = 0;
    k->stamp = ++c->clock;
    c->used++;
    return b;
}

static void block_ref(kv_cache *c, int32_t b)
{
    kv_block *k = &c->blocks[b];
    if (k->state == BLK_SEALED && k->refs == 0)
        c->cached--;
    k->refs++;
    k->stamp = ++c->clock;
}

static void block_unref(kv_cache *c, int32_t b)
{
    kv_block *k = &c->blocks[b];
    LOCO_ASSERT(k->refs > 0);
    if (--k->refs)
        return;
    if (k->state == BLK_PRIVATE) {
        block_release_mem(c, b);
        return;
    }
    k->stamp = ++c->clock;
    c->cached++;
}

/* Copies the first n positions of every tile of block src into block dst. */
static void block_copy(kv_cache *c, int32_t dst, int32_t src, uint32_t n)
{
    for (uint32_t l = 0; l < c->p.n_layer; l++)
        for (uint32_t kind = 0; kind < 2; kind++)
            for (uint32_t h = 0; h < c->p.n_head_kv; h++)
                memcpy(tile(c, dst, l, kind, h), tile(c, src, l, kind, h), n * c->row_bytes);
    memcpy(c->blocks[dst].tokens, c->blocks[src].tokens, n * sizeof(int32_t));
    c->blocks[dst].n = (uint16_t)n;
}

/* Seals private block b (refs 1) under parent. When an identical sibling exists, b is freed
 * and that sibling (now referenced) returned instead. */
static int32_t block_seal(kv_cache *c, int32_t b, int32_t parent)
{
    kv_block *k = &c->blocks[b];
    for (int32_t s = *children_link(c, parent); s >= 0; s = c->blocks[s].sibling) {
        const kv_block *o = &c->blocks[s];
        if (o->n == k->n && !memcmp(o->tokens, k->tokens, k->n * sizeof(int32_t))) {
            block_ref(c, s);
            block_unref(c, b);
            return s;
        }
    }
    k->state = BLK_SEALED;
    k->parent = parent;
    k->child = -1;
    int32_t *l = children_link(c, parent);
    k->sibling = *l;
    *l = b;
    k->stamp = ++c->clock;
    return b;
}

/* ---------------------------------------------------------------- sequences */

loco_status kv_seq_new(kv_cache *c, uint32_t n_ctx, kv_seq **out, loco_err *err)
{
    kv_seq *s = calloc(1, sizeof(*s));
    uint32_t nb = (n_ctx + KV_BLOCK - 1) / KV_BLOCK;
    if (s)
        s->table = calloc(nb ? nb : 1, sizeof(int32_t));
    if (!s || !s->table) {
        free(s);
        return loco_err_set(err, LOCO_ERR_NOMEM, "out of memory");
    }
    s->c = c;
    s->n_ctx = n_ctx;
    *out = s;
    return LOCO_OK;
}

/* Drops blocks [from, n_table). */
static void drop_blocks(kv_seq *s, uint32_t from)
{
    while (s->n_table > from)
        block_unref(s->c, s->table[--s->n_table]);
}

/* Drops the reserved blocks past len and seals the partial last one, so every block left
 * is SEALED; returns the last (or -1). Idempotent. */
static int32_t seal_tail(kv_seq *s)
{
    kv_cache *c = s->c;
    uint32_t full = s->len / KV_BLOCK, part = s->len % KV_BLOCK;
    drop_blocks(s, full + (part ? 1 : 0));
    if (part && c->blocks[s->table[full]].state == BLK_PRIVATE)
        s->table[full] = block_seal(c, s->table[full], full ? s->table[full - 1] : -1);
    return s->n_table ? s->table[s->n_table - 1] : -1;
}

void kv_seq_free(kv_seq *s)
{
    if (!s)
        return;
    seal_tail(s);
    drop_blocks(s, 0);
    kv_cache_trim(s->c, s->c->p.cache_bytes);
    free(s->table);
    free(s);
}

kv_pin kv_seq_free_pin(kv_seq *s)
{
    kv_pin p = {-1, 0};
    if (!s)
        return p;
    kv_cache *c = s->c;
    /* pinned before the release's trim, so what is kept warm is not what gets evicted */
    int32_t leaf = seal_tail(s);
    if (leaf >= 0) {
        for (int32_t a = leaf; a >= 0; a = c->blocks[a].parent)
            c->blocks[a].pins++;
        p.block = leaf;
        p.gen = c->blocks[leaf].gen;
    }
    kv_seq_free(s);
    return p;
}

void kv_unpin(kv_cache *c, kv_pin p)
{
    if (p.block < 0 || (uint32_t)p.block >= c->p.max_blocks || c->blocks[p.block].gen != p.gen ||
        c->blocks[p.block].state != BLK_SEALED)
        return;
    for (int32_t a = p.block; a >= 0; a = c->blocks[a].parent) {
        LOCO_ASSERT(c->blocks[a].pins > 0);
        c->blocks[a].pins--;
    }
    kv_cache_trim(c, c->p.cache_bytes);
}

uint32_t kv_seq_len(const kv_seq *s)
{
    return s->len;
}

uint32_t kv_seq_ctx(const kv_seq *s)
{
    return s->n_ctx;
}

ggml_type kv_seq_type(const kv_seq *s)
{
    return s->c->p.type;
}

size_t kv_seq_row_bytes(const kv_seq *s)
{
    return s->c->row_bytes;
}

int32_t kv_seq_token(const kv_seq *s, uint32_t i)
{
    if (i >= s->len)
        return -1;
    return s->c->blocks[s->table[i / KV_BLOCK]].tokens[i % KV_BLOCK];
}

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb)
{
    uint32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

uint32_t kv_seq_attach(kv_seq *s, const int32_t *ids, uint32_t n)
{
    kv_cache *c = s->c;
    if (s->len || s->n_table)
        return 0;
    if (n > s->n_ctx)
        n = s->n_ctx;
    uint32_t pos = 0;
    int32_t parent = -1;
    while (pos < n) {
        int32_t best = -1;
        uint32_t best_j = 0;
        for (int32_t ch = *children_link(c, parent); ch >= 0; ch = c->blocks[ch].sibling) {
            uint32_t j = common_prefix(c->blocks[ch].tokens, c->blocks[ch].n, ids + pos, n - pos);
            if (j > best_j) {
                best = ch;
                best_j = j;
            }
        }
        if (best < 0)
            break;
        kv_block *k = &c->blocks[best];
        if (best_j == KV_BLOCK) { /* a whole block: share it */
            block_ref(c, best);
            s->table[s->n_table++] = best;
            pos += KV_BLOCK;
            parent = best;
            continue;
        }
        if (best_j == k->n && k->refs == 0 && k->pins == 0) {
            /* a partial block nobody else can use: take it over */
            unlink_child(c, best);
            c->cached--;
            k->state = BLK_PRIVATE;
            k->refs = 1;
            k->parent = -1;
            k->stamp = ++c->clock;
            s->table[s->n_table++] = best;
            pos += best_j;
            break;
        }
        block_ref(c, best); /* so the allocation below cannot evict it */
        int32_t nb = block_alloc(c);
        if (nb >= 0) {
            block_copy(c, nb, best, best_j);
            s->table[s->n_table++] = nb;
            pos += best_j;
        }
        block_unref(c, best);
        break;
    }
    s->len = pos;
    return pos;
}

loco_status kv_seq_reserve(kv_seq *s, uint32_t n, loco_err *err)
{
    if ((uint64_t)s->len + n > s->n_ctx)
        return loco_err_set(err, LOCO_ERR_OVERFLOW,
                            "the context is full: %u tokens in it + %u new > %u (raise --ctx)",
                            s->len, n, s->n_ctx);
    uint32_t need = (s->len + n + KV_BLOCK - 1) / KV_BLOCK;
    while (s->n_table < need) {
        int32_t b = block_alloc(s->c);
        if (b < 0)
            return loco_err_set(err, LOCO_ERR_LIMIT,
                                "the KV cache has no free block (%u in use)", s->c->used);
        s->table[s->n_table++] = b;
    }
    return LOCO_OK;
}

void kv_seq_commit(kv_seq *s, const int32_t *ids, uint32_t n)
{
    kv_cache *c = s->c;
    LOCO_ASSERT((uint64_t)s->len + n <= (uint64_t)s->n_table * KV_BLOCK);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t bi = s->len / KV_BLOCK;
        kv_block *k = &c->blocks[s->table[bi]];
        LOCO_ASSERT(k->state == BLK_PRIVATE && k->n == s->len % KV_BLOCK);
        k->tokens[k->n++] = ids[i];
        s->len++;
        if (k->n == KV_BLOCK)
            s->table[bi] = block_seal(c, s->table[bi], bi ? s->table[bi - 1] : -1);
    }
}

loco_status kv_seq_truncate(kv_seq *s, uint32_t n, loco_err *err)
{
    kv_cache *c = s->c;
    if (n >= s->len)
        return LOCO_OK;
    uint32_t bi = n / KV_BLOCK, off = n % KV_BLOCK;
    if (off && c->blocks[s->table[bi]].state == BLK_SEALED) {
        int32_t old = s->table[bi];
        int32_t nb = block_alloc(c);
        if (nb < 0)
            return loco_err_set(err, LOCO_ERR_LIMIT, "the KV cache has no free block");
        block_copy(c, nb, old, off);
        s->table[bi] = nb;
        block_unref(c, old);
    } else if (off) {
        c->blocks[s->table[bi]].n = (uint16_t)off;
    }
    drop_blocks(s, bi + (off ? 1 : 0));
    s->len = n;
    kv_cache_trim(c, c->p.cache_bytes);
    return LOCO_OK;
}

uint8_t *kv_seq_k(const kv_seq *s, uint32_t layer, uint32_t head, uint32_t blk)
{
    return tile(s->c, s->table[blk], layer, 0, head);
}

uint8_t *kv_seq_v(const kv_seq *s, uint32_t layer, uint32_t head, uint32_t blk)
{
    return tile(s->c, s->table[blk], layer, 1, head);
}

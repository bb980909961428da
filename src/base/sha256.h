/* sha256.h: SHA-256 (FIPS 180-4), incremental, for checking downloaded model files against the
 * Hub's LFS digests. Part of base/; no state beyond the caller's context. */
#ifndef LOCO_SHA256_H
#define LOCO_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];     /* running hash */
    uint64_t len;      /* bytes hashed so far */
    uint8_t block[64]; /* pending input */
    size_t fill;       /* bytes in block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
/* Hashes n more bytes of p (p may be NULL when n is 0). */
void sha256_update(sha256_ctx *c, const void *p, size_t n);
/* Writes the 32-byte digest to out; c must be re-initialised before reuse. */
void sha256_final(sha256_ctx *c, uint8_t out[32]);
/* The digest as 64 lowercase hex digits plus a NUL. */
void sha256_hex(const uint8_t digest[32], char out[65]);

#endif

/* fuzz_hub.c: the parsers of `loco pull` on arbitrary bytes: the first byte picks one. 0: a Hub
 * file listing page (hub_parse_listing), then a pick over it with the rest of the byte's
 * neighbours as the quant; 1: what the user typed (hub_parse_target, models_parse_ref,
 * models_quant_of); 2: an HTTP Link header (hub_link_next). Never crashes; every refusal says
 * why; everything accepted obeys the documented shapes. */
#include "base/common.h"

#include "base/models.h"
#include "net/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_listing(const char *s, size_t n)
{
    hub_listing l;
    memset(&l, 0, sizeof(l));
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = hub_parse_listing(s, n, &l, &err);
    if (rc != LOCO_OK && err.msg[0] == '\0')
        abort();
    for (size_t i = 0; i < l.n; i++) {
        if (!models_file_valid(l.files[i].path))
            abort();
        size_t hl = strlen(l.files[i].sha256);
        if (hl != 0 && hl != 64)
            abort();
    }
    const char *wants[] = {NULL, "Q4_K_M", "q8_0", "x.gguf"};
    for (size_t k = 0; k < LOCO_ARRAY_LEN(wants); k++) {
        size_t at = (size_t)-1;
        loco_err_clear(&err);
        rc = hub_pick(&l, "o/n", wants[k], &at, &err);
        if (rc == LOCO_OK) {
            const char *p = at < l.n ? l.files[at].path : NULL;
            if (!p || strlen(p) < 5 || strcasecmp(p + strlen(p) - 5, ".gguf") != 0)
                abort();
        }
        if (rc != LOCO_OK && err.msg[0] == '\0')
            abort();
    }
    hub_listing_release(&l);
}

static void check_target(const char *s)
{
    hub_target t;
    loco_err err;
    loco_err_clear(&err);
    loco_status rc = hub_parse_target(s, &t, &err);
    if (rc != LOCO_OK && err.msg[0] == '\0')
        abort();
    if (rc == LOCO_OK) {
        if (t.repo[0] && !models_repo_valid(t.repo))
            abort();
        if (t.file[0] && !models_file_valid(t.file))
            abort();
        if (!t.repo[0] && !t.url[0])
            abort();
    }
    models_ref r;
    loco_err_clear(&err);
    if (models_parse_ref(s, &r, &err) == LOCO_OK) {
        if (!models_repo_valid(r.repo))
            abort();
    } else if (err.msg[0] == '\0') {
        abort();
    }
    char q[64];
    if (models_quant_of(s, q, sizeof(q)) && (q[0] != 'Q' && q[0] != 'I' && q[0] != 'F' &&
                                             q[0] != 'B' && q[0] != 'T' && q[0] != 'M'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        check_listing(s, size - 1);
        break;
    case 1:
        check_target(s);
        break;
    default: {
        char out[256];
        if (hub_link_next(s, out, sizeof(out)) && (!out[0] || strlen(out) >= sizeof(out)))
            abort();
        break;
    }
    }
    free(s);
    return 0;
}

/* url.c: URL syntax check and API-root normalisation (see url.h). */
#include "base/common.h"

#include <ctype.h>
#include <strings.h>

#include "base/url.h"

bool url_valid(const char *url)
{
    const char *p = url;
    if (!strncasecmp(p, "http://", 7))
        p += 7;
    else if (!strncasecmp(p, "https://", 8))
        p += 8;
    else
        return false;
    for (const char *q = url; *q; q++) {
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return false;
    }
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at)
        p = at + 1;
    const char *host_end;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close || close == p + 1)
            return false;
        for (const char *q = p + 1; q < close; q++) {
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
                return false;
        }
        host_end = close + 1;
    } else {
        host_end = p;
        while (host_end < end && *host_end != ':') {
            unsigned char c = (unsigned char)*host_end;
            if (!isalnum(c) && c != '-' && c != '.' && c != '_' && c != '%')
                return false;
            host_end++;
        }
        if (host_end == p)
            return false;
    }
    if (host_end == end)
        return true;
    if (*host_end != ':')
        return false;
    size_t digits = (size_t)(end - host_end - 1);
    if (digits < 1 || digits > 5)
        return false;
    for (const char *q = host_end + 1; q < end; q++) {
        if (!isdigit((unsigned char)*q))
            return false;
    }
    return true;
}

size_t url_api_root_len(const char *url)
{
    static const char *const suffixes[] = {
        "/v1/messages/count_tokens",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/messages",
        "/v1/models",
        "/v1",
    };
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    if (memchr(url, '?', n))
        return n;
    /* keep the scheme and host: only a path may be cut */
    const char *host = strstr(url, "://");
    size_t path_start = host ? (size_t)(host + 3 - url) : 0;
    while (path_start < n && url[path_start] != '/')
        path_start++;
    for (size_t k = 0; k < LOCO_ARRAY_LEN(suffixes); k++) {
        size_t sl = strlen(suffixes[k]);
        if (n >= path_start + sl && !strncasecmp(url + n - sl, suffixes[k], sl)) {
            n -= sl;
            break;
        }
    }
    while (n && url[n - 1] == '/')
        n--;
    return n;
}

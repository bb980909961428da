/* url.h: the base URLs users give for model servers and clouds: a syntax check, and the API
 * root a URL names whether it ends before /v1, at /v1 or at a full endpoint. Part of base/;
 * backend_join_url (backend/) builds every endpoint from url_api_root_len. */
#ifndef LOCO_URL_H
#define LOCO_URL_H

#include <stdbool.h>
#include <stddef.h>

/* True when url is http:// or https:// (any case) followed by a host (an optional
 * user@ part, a name or [IPv6] address, an optional :port of 1-5 digits) and an optional path,
 * with no spaces or control characters. */
bool url_valid(const char *url);

/* Length of the API root of url: url without trailing '/' and without one trailing
 * "/v1", "/v1/chat/completions", "/v1/completions", "/v1/messages",
 * "/v1/messages/count_tokens" or "/v1/models" (each optionally followed by '/'), so
 * "http://h:8080", "http://h:8080/v1" and "http://h:8080/v1/chat/completions" all give
 * "http://h:8080", and "https://openrouter.ai/api/v1" gives "https://openrouter.ai/api". A URL
 * with a query string ('?') keeps everything but trailing '/'. Pure. */
size_t url_api_root_len(const char *url);

#endif

/* models.h: the model store, the one directory where pulled GGUF files live ($LOCO_MODELS,
 * else $XDG_DATA_HOME/loco/models, else ~/.local/share/loco/models), and the names a user may
 * give a model by: a path, a file name in the store, or REPO[:QUANT]. Part of base/; the Hub
 * client (net/hub.h) fills the store, every command that takes --model reads it.
 *
 * Layout: <dir>/<owner>/<name>/<file> for a file pulled from the Hub repository owner/name,
 * beside it <file>.json (the metadata: repo, file, quant, size, sha256) written after the file
 * was verified, and <file>.part while a download is under way. Any other *.gguf under <dir>
 * (up to MODELS_MAX_DEPTH folders down) is listed too, without a repository. */
#ifndef LOCO_MODELS_H
#define LOCO_MODELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* The repository `loco pull` fetches when none is named (the model's authors'). */
#define MODELS_DEFAULT_REPO "LocoreMind/LocoOperator-4B-GGUF"
/* The quant taken when a repository has several and none is named. */
#define MODELS_DEFAULT_QUANT "Q4_K_M"
/* Limits on names (a Hub repository id is at most 96 characters per part). */
#define MODELS_REPO_MAX 200
#define MODELS_QUANT_MAX 256
/* Folders below the store scanned for *.gguf files, and the most files listed. */
#define MODELS_MAX_DEPTH 4
#define MODELS_MAX_FILES 10000
/* Largest metadata file read. */
#define MODELS_META_MAX (64 * 1024)

/* One model file in the store. Every string is owned by the listing it belongs to. */
typedef struct {
    char *path;    /* the .gguf file: <dir>/... as listed (absolute when dir is) */
    char *file;    /* its name in the repository ("LocoOperator-4B.Q4_K_M.gguf"), or its path
                      relative to the store for a file with no metadata */
    char *repo;    /* "owner/name" it was pulled from; NULL when unknown */
    char *quant;   /* upper case ("Q4_K_M"), from the metadata or the file name; NULL if none */
    char *sha256;  /* 64 lowercase hex digits from the metadata; NULL when unknown */
    uint64_t size; /* bytes on disk */
} models_entry;

typedef struct {
    models_entry *items; /* sorted by path */
    size_t n;
} models_listing;

/* A parsed REPO[:QUANT]: repo is "owner/name"; quant is "" when none was named, else what
 * followed the colon as given (a quant such as q4_k_m, or a file name in the repository). */
typedef struct {
    char repo[MODELS_REPO_MAX + 1];
    char quant[MODELS_QUANT_MAX + 1];
} models_ref;

/* What a pull writes beside a verified file (all borrowed; NULL members are left out). */
typedef struct {
    const char *repo, *file, *quant, *sha256, *revision, *url;
    uint64_t size;
} models_meta;

/* The store directory into *out (malloc'd; the caller frees): $LOCO_MODELS when set and not
 * empty, else $XDG_DATA_HOME/loco/models when XDG_DATA_HOME is an absolute path, else
 * $HOME/.local/share/loco/models (the password database's home when HOME is unset). The
 * directory is not created. LOCO_ERR_NOT_FOUND when no home can be found. */
loco_status models_default_dir(char **out, loco_err *err);

/* Lists the *.gguf files under dir (NULL: the default dir) into *out, which the caller
 * releases with models_listing_release (also after an error). A missing dir is an empty
 * store, not an error; .part files, hidden entries and unreadable metadata are skipped. */
loco_status models_list(const char *dir, models_listing *out, loco_err *err);
void models_listing_release(models_listing *l);

/* Resolves what a user typed after --model into a path in *out_path (malloc'd; the caller
 * frees), in this order: an existing file (returned as given); a path-like name that does not
 * exist (LOCO_ERR_NOT_FOUND, "cannot open"); REPO:QUANT or REPO in the store (the repository's
 * MODELS_DEFAULT_QUANT when several, or its only file); a file name in the store (with or
 * without .gguf). LOCO_ERR_NOT_FOUND when nothing matches (the message names the store and
 * says how to pull); LOCO_ERR_INVALID for a directory or a name that matches several files
 * (the message lists them). Uses the default store directory. */
loco_status models_resolve(const char *name_or_path, char **out_path, loco_err *err);
/* The same with an explicit store directory (NULL: the default one). */
loco_status models_resolve_in(const char *dir, const char *name_or_path, char **out_path,
                              loco_err *err);

/* The model to use when none is named, into *out_path (malloc'd): the only file in the store;
 * with several, the only MODELS_DEFAULT_QUANT one (MODELS_DEFAULT_REPO's when several repos
 * have one). LOCO_ERR_NOT_FOUND when the store is empty ("run loco pull"); LOCO_ERR_INVALID
 * when the choice is ambiguous (the message lists the candidates). */
loco_status models_find_default(char **out_path, loco_err *err);
loco_status models_find_default_in(const char *dir, char **out_path, loco_err *err);

/* Picks one entry of l for repo (NULL: any; compared case-insensitively) and want (NULL or "":
 * the default rule above; else a quant or a file name, case-insensitive). Sets *out_index.
 * LOCO_ERR_NOT_FOUND when none matches, LOCO_ERR_INVALID when several do (both messages name
 * what was asked and what is there). */
loco_status models_pick(const models_listing *l, const char *repo, const char *want,
                        size_t *out_index, loco_err *err);

/* Parses "owner/name[:QUANT]", optionally prefixed with "hf.co/" or "huggingface.co/", into
 * *out. LOCO_ERR_INVALID with a message saying what is wrong otherwise. Pure. */
loco_status models_parse_ref(const char *s, models_ref *out, loco_err *err);
/* True when repo is a well-formed Hub repository id "owner/name" (letters, digits, '.', '_',
 * '-'; no "..", no leading or trailing '.' or '-'). */
bool models_repo_valid(const char *repo);
/* True when file is a safe relative path inside a repository (no "..", "." or empty
 * components, no leading '/', no control characters or backslashes, at most 1000 bytes). */
bool models_file_valid(const char *file);

/* The quantization named in a GGUF file name ("LocoOperator-4B.Q4_K_M.gguf" -> "Q4_K_M",
 * "x-bf16.gguf" -> "BF16", "x.i1-IQ4_XS.gguf" -> "IQ4_XS"), upper case, into out (size n).
 * The last token of the base name (split at '.', '-' and '/') shaped like a quant: Q<digits>
 * or IQ<digits> with optional _SUFFIX parts, F16/BF16/F32/F64, TQ1_0/TQ2_0, MXFP4[_MOE].
 * False (out = "") when the name carries none. */
bool models_quant_of(const char *file, char *out, size_t n);

/* The path of repo's file in dir: "<dir>/<repo>/<file>" into *out (malloc'd). Validates both
 * names (LOCO_ERR_INVALID). */
loco_status models_file_path(const char *dir, const char *repo, const char *file, char **out,
                             loco_err *err);
/* Writes the metadata of gguf_path to "<gguf_path>.json" atomically. */
loco_status models_write_meta(const char *gguf_path, const models_meta *m, loco_err *err);
/* Reads "<gguf_path>.json" into *out (strings malloc'd; free with models_entry_release).
 * LOCO_ERR_NOT_FOUND when absent, LOCO_ERR_INVALID when malformed. Only repo, file, quant,
 * sha256 and size are filled. */
loco_status models_read_meta(const char *gguf_path, models_entry *out, loco_err *err);
/* Frees the strings of one entry read by models_read_meta and zeroes it. */
void models_entry_release(models_entry *e);

/* "REPO:QUANT" for e (or its file when it has no repo or quant) into out (size n). */
void models_entry_name(const models_entry *e, char *out, size_t n);

#endif

/* cmd_tokenize.c: `loco tokenize`: token ids of a text with a model's tokenizer. User text is
 * plain text (special-looking strings stay text) unless --special. */
#include "base/common.h"

#include "base/file.h"
#include "base/models.h"
#include "cli/cli.h"
#include "cli/options.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *file = NULL, *text = NULL;
    bool special = false, nfc = true;
    for (int i = 1; i < argc; i++) {
        bool bad = false;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: loco tokenize --model F.gguf [--special] [--no-nfc] (--file F | TEXT)\n"
                   "\nPrints the token ids of the text, separated by spaces. The text is user\n"
                   "text: strings like <|im_end|> stay plain text unless --special. A TEXT or\n"
                   "file given as - is read from standard input.\n"
                   "\noptions:\n"
                   "  -m, --model F.gguf   a GGUF file or a pulled model (REPO:QUANT, file name)\n"
                   "  --file F             tokenize the file's bytes\n"
                   "  --special            parse special tokens in the text\n"
                   "  --no-nfc             no NFC normalisation (as llama.cpp)\n"
                   "  -h, --help           this help\n");
            return 0;
        }
        if (!strcmp(argv[i], "--special")) {
            special = true;
            continue;
        }
        if (!strcmp(argv[i], "--no-nfc")) {
            nfc = false;
            continue;
        }
        if (cli_flag_value(argc, argv, &i, "--model", &model, &bad) ||
            cli_flag_value(argc, argv, &i, "--file", &file, &bad)) {
            if (bad)
                return 2;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "loco tokenize: unknown option '%s'\n", argv[i]);
            return 2;
        }
        if (text) {
            fprintf(stderr, "loco tokenize: give one TEXT (quote it)\n");
            return 2;
        }
        text = argv[i];
    }
    if (!model || !!file == !!text) {
        fprintf(stderr, "loco tokenize: give --model and one of --file or TEXT\n");
        return 2;
    }
    int code = 1;
    loco_err err;
    loco_err_clear(&err);
    gguf *g = NULL;
    tok *t = NULL;
    buf in;
    buf_init(&in, (size_t)1 << 30);
    tok_ids ids;
    tok_ids_init(&ids, (size_t)1 << 30);
    char *model_path = NULL;
    if (text && !strcmp(text, "-"))
        file = text;
    if (file && cli_read_input(file, &in, &err))
        goto fail;
    if (text && !file)
        buf_appends(&in, text);
    if (models_resolve(model, &model_path, &err) || gguf_open(model_path, &g, &err) || tok_from_gguf(g, nfc, &t, &err))
        goto fail;
    if (tok_encode(t, buf_str(&in), in.len, special ? TOK_PARSE_SPECIAL : 0, &ids, &err))
        goto fail;
    for (size_t i = 0; i < ids.len; i++)
        printf("%s%d", i ? " " : "", ids.ids[i]);
    printf("\n");
    code = 0;
    goto out;
fail:
    fprintf(stderr, "loco tokenize: %s\n", err.msg);
out:
    free(model_path);
    tok_ids_release(&ids);
    buf_release(&in);
    tok_free(t);
    gguf_close(g);
    return code;
}

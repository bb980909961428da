/* fuzz_dotenv.c: the .env parser on arbitrary bytes: never crashes, and every parsed key is
 * a shell-style name. */
#include "base/common.h"

#include "base/file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dotenv env;
    loco_err err;
    if (dotenv_parse((const char *)data, size, &env, &err) == LOCO_OK) {
        for (size_t i = 0; i < env.n; i++) {
            const char *k = env.keys[i];
            if (!k[0] || (k[0] >= '0' && k[0] <= '9'))
                abort();
            if (dotenv_get(&env, k) == NULL)
                abort();
        }
        dotenv_release(&env);
    } else if (err.msg[0] == '\0') {
        abort(); /* an error always says what was wrong */
    }
    return 0;
}

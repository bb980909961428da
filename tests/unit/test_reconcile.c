/* test_reconcile.c: unit tests of gateway/reconcile: renames, Task <-> Agent, and the Bash
 * equivalents of Grep, Glob, Read and LS, run for real with /bin/sh in a scratch tree
 * (a .git dir, file names with quotes, spaces, $ and backticks); hostile patterns must stay
 * literal; every UNMAPPABLE reason is checked word for word. */
#include "base/common.h"

#include <setjmp.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "gateway/reconcile.h"

static char g_dir[64]; /* the scratch tree */

#define WEIRD "we ird's $file `x`.md"

static void write_file(const char *rel, const char *text, long mtime)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimes(path, tv), 0);
}

static void make_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int setup_tree(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/loco-reconcile-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    make_dir(".git");
    make_dir("src");
    make_dir("src/deep");
    write_file(".git/config", "needle in git\n", 100);
    write_file("a.txt", "alpha needle\nbeta\nNeedle gamma\ndelta\nepsilon needle\n", 1000);
    write_file("notes.md", "nothing\n", 1500);
    write_file(WEIRD, "needle with 'quotes' and $HOME and `id`\n", 1200);
    write_file("src/main.py", "def needle():\n    return 1\n", 3000);
    write_file("src/util.ts", "const needle = 1;\n", 2000);
    write_file("src/app.tsx", "export const Needle = 2;\n", 4000);
    write_file("src/deep/x.ts", "// needle here\n", 5000);
    write_file("src/deep/y.js", "let x = 1;\n", 6000);
    return 0;
}

static int teardown_tree(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A request offering the comma-separated tools. */
static chat_request *req_with(const char *tools)
{
    chat_request *req = chat_request_new();
    assert_non_null(req);
    char copy[256];
    snprintf(copy, sizeof copy, "%s", tools);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        assert_non_null(chat_request_add_tool(req, t, "d", "{\"type\":\"object\"}"));
    return req;
}

/* Runs reconcile and checks action and target; returns the arguments (malloc'd). */
static char *expect_action(const char *tools, const char *name, const char *args,
                           reconcile_action want, const char *want_name, char *why)
{
    chat_request *req = req_with(tools);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    const char *target = "unset";
    reconcile_action a = reconcile_tool_call(req, name, args, &target, &out, why, 512);
    assert_string_equal(reconcile_action_str(a), reconcile_action_str(want));
    if (want_name)
        assert_string_equal(target, want_name);
    else
        assert_null(target);
    chat_request_free(req);
    return buf_take(&out, NULL);
}

static void expect_unmappable(const char *tools, const char *name, const char *args,
                              const char *want_why)
{
    char why[512];
    char *out = expect_action(tools, name, args, RECONCILE_UNMAPPABLE, NULL, why);
    assert_string_equal(out, "");
    assert_string_equal(why, want_why);
    free(out);
}

/* Maps name(args) with Bash offered; returns the command (malloc'd) after checking the
 * description. */
static char *bash_command(const char *name, const char *args, const char *want_desc)
{
    char why[512];
    char *out = expect_action("Bash,Agent,Skill", name, args, RECONCILE_MAPPED, "Bash", why);
    json_t *o = json_parse(out, strlen(out), NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 2);
    assert_string_equal(json_get_str(o, "description"), want_desc);
    char *cmd = strdup(json_get_str(o, "command"));
    json_decref(o);
    free(out);
    return cmd;
}

/* Runs cmd with /bin/sh in the scratch tree; stdout (malloc'd), lines sorted when sort. */
static char *run_in_tree(const char *cmd, bool sort)
{
    buf full;
    buf_init(&full, BUF_UNLIMITED);
    assert_int_equal(buf_appends(&full, "cd "), LOCO_OK);
    assert_int_equal(str_shell_quote(&full, g_dir), LOCO_OK);
    assert_int_equal(buf_appendf(&full, " && { %s; } 2>/dev/null%s", cmd, sort ? " | LC_ALL=C sort" : ""),
                     LOCO_OK);
    FILE *p = popen(full.data, "r");
    assert_non_null(p);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        assert_int_equal(buf_append(&out, chunk, n), LOCO_OK);
    pclose(p);
    buf_release(&full);
    return buf_take(&out, NULL);
}

static void expect_run(const char *name, const char *args, const char *want_desc,
                       const char *want_cmd, bool sort, const char *want_out)
{
    char *cmd = bash_command(name, args, want_desc);
    if (want_cmd)
        assert_string_equal(cmd, want_cmd);
    char *out = run_in_tree(cmd, sort);
    assert_string_equal(out, want_out);
    free(out);
    free(cmd);
}

/* ---- keep, rename, sub-agent ---- */

static void test_keep(void **state)
{
    (void)state;
    char why[512];
    char *out = expect_action("Bash,Read", "Read", "{\"file_path\":\"x\"}", RECONCILE_KEEP,
                              "Read", why);
    assert_string_equal(out, "");
    assert_string_equal(why, "");
    free(out);
    out = expect_action("", "Grep", "{}", RECONCILE_KEEP, "Grep", why);
    free(out);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    const char *target = NULL;
    assert_int_equal(reconcile_tool_call(NULL, "Glob", "{}", &target, &b, NULL, 0),
                     RECONCILE_KEEP);
    assert_string_equal(target, "Glob");
    buf_release(&b);
}

static void test_rename_case(void **state)
{
    (void)state;
    char why[512];
    char *out = expect_action("Bash,Read", "bash", "{ \"command\" : \"ls\" }", RECONCILE_MAPPED,
                              "Bash", why);
    assert_string_equal(out, "{\"command\":\"ls\"}");
    assert_string_equal(why, "bash mapped to Bash");
    free(out);
}

static void test_task_agent(void **state)
{
    (void)state;
    char why[512];
    const char *args = "{\"description\":\"find it\",\"prompt\":\"Where is main?\","
                       "\"subagent_type\":\"Explore\",\"extra\":1}";
    char *out = expect_action("Bash,Agent", "Task", args, RECONCILE_MAPPED, "Agent", why);
    assert_string_equal(out, "{\"description\":\"find it\",\"prompt\":\"Where is main?\","
                             "\"subagent_type\":\"Explore\"}");
    assert_string_equal(why, "Task mapped to Agent");
    free(out);
    out = expect_action("Task", "Agent", "{\"prompt\":\"p\"}", RECONCILE_MAPPED, "Task", why);
    assert_string_equal(out, "{\"prompt\":\"p\"}");
    free(out);
    expect_unmappable("Agent", "Task", "{\"description\":\"x\"}",
                      "Task: argument 'prompt' is missing");
    expect_unmappable("Bash", "Task", "{\"prompt\":\"p\"}",
                      "Task: not offered by the client, and no sub-agent tool is");
}

/* ---- Grep ---- */

static void test_grep_files(void **state)
{
    (void)state;
    expect_run("Grep", "{\"pattern\":\"needle\"}", "Grep needle (mapped by loco)",
               "grep -r -I -P -l --exclude-dir=.git -e 'needle'", true,
               "a.txt\nsrc/deep/x.ts\nsrc/main.py\nsrc/util.ts\n" WEIRD "\n");
    /* PCRE syntax: \w, \s, lookahead */
    expect_run("Grep", "{\"pattern\":\"need\\\\w+\\\\s+(?=here)\",\"path\":\"src\"}",
               "Grep need\\w+\\s+(?=here) (mapped by loco)", NULL, true, "src/deep/x.ts\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"-i\":true,\"type\":\"ts\"}",
               "Grep needle (mapped by loco)",
               "grep -r -I -P -l -i --exclude-dir=.git --include='*.ts' --include='*.tsx' "
               "--include='*.mts' --include='*.cts' -e 'needle'",
               true, "src/app.tsx\nsrc/deep/x.ts\nsrc/util.ts\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"type\":\"python\"}",
               "Grep needle (mapped by loco)", NULL, true, "src/main.py\n");
    expect_run("Grep", "{\"pattern\":\"x\",\"type\":\"js\"}", "Grep x (mapped by loco)", NULL,
               true, "src/deep/y.js\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"type\":\"txt\"}",
               "Grep needle (mapped by loco)", NULL, true, "a.txt\n");
}

static void test_grep_content(void **state)
{
    (void)state;
    expect_run("Grep", "{\"pattern\":\"needle\",\"path\":\"a.txt\",\"output_mode\":\"content\","
                       "\"-i\":true}",
               "Grep needle (mapped by loco)",
               "grep -r -I -P -n -i --exclude-dir=.git -e 'needle' -- 'a.txt'", false,
               "1:alpha needle\n3:Needle gamma\n5:epsilon needle\n");
    expect_run("Grep", "{\"pattern\":\"^beta$\",\"path\":\"a.txt\",\"output_mode\":\"content\","
                       "\"-C\":1}",
               "Grep ^beta$ (mapped by loco)", NULL, false,
               "1-alpha needle\n2:beta\n3-Needle gamma\n");
    expect_run("Grep", "{\"pattern\":\"delta\",\"path\":\"a.txt\",\"output_mode\":\"content\","
                       "\"-A\":\"1\",\"-B\":2,\"-n\":false}",
               "Grep delta (mapped by loco)", NULL, false,
               "beta\nNeedle gamma\ndelta\nepsilon needle\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"path\":\"a.txt\",\"output_mode\":\"content\","
                       "\"head_limit\":1}",
               "Grep needle (mapped by loco)", NULL, false, "1:alpha needle\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"path\":\"a.txt\",\"output_mode\":\"content\","
                       "\"offset\":1,\"head_limit\":5}",
               "Grep needle (mapped by loco)", NULL, false, "5:epsilon needle\n");
    expect_run("Grep", "{\"pattern\":\"\\\\$HOME and `id`\",\"output_mode\":\"content\"}",
               "Grep \\$HOME and `id` (mapped by loco)", NULL, false,
               WEIRD ":1:needle with 'quotes' and $HOME and `id`\n");
    expect_run("Grep", "{\"pattern\":\"'quotes'\",\"path\":\"" WEIRD "\","
                       "\"output_mode\":\"content\"}",
               "Grep 'quotes' (mapped by loco)", NULL, false,
               "1:needle with 'quotes' and $HOME and `id`\n");
}

static void test_grep_count_glob(void **state)
{
    (void)state;
    expect_run("Grep", "{\"pattern\":\"needle\",\"output_mode\":\"count\",\"glob\":\"*.txt\"}",
               "Grep needle (mapped by loco)",
               "grep -r -I -P -c --exclude-dir=.git --include='*.txt' -e 'needle' | "
               "grep -v ':0$'",
               false, "a.txt:2\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"output_mode\":\"count\",\"-i\":true,"
                       "\"glob\":\"*.{ts,tsx}\"}",
               "Grep needle (mapped by loco)", NULL, true,
               "src/app.tsx:1\nsrc/deep/x.ts:1\nsrc/util.ts:1\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"glob\":\"src/**/*.ts\"}",
               "Grep needle (mapped by loco)",
               "grep -r -I -P -l --exclude-dir=.git --include='*.ts' -e 'needle' -- 'src'", true,
               "src/deep/x.ts\nsrc/util.ts\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"glob\":\"*.py *.md\"}",
               "Grep needle (mapped by loco)", NULL, true, "src/main.py\n" WEIRD "\n");
    expect_run("Grep", "{\"pattern\":\"needle\",\"glob\":\"*.py,*.txt\"}",
               "Grep needle (mapped by loco)", NULL, true, "a.txt\nsrc/main.py\n");
}

static void test_grep_multiline(void **state)
{
    (void)state;
    expect_run("Grep", "{\"pattern\":\"beta\\\\nNeedle\",\"multiline\":true}",
               "Grep beta\\nNeedle (mapped by loco)", NULL, false, "a.txt\n");
    expect_run("Grep", "{\"pattern\":\"beta\\\\nNeedle\",\"multiline\":true,"
                       "\"output_mode\":\"content\",\"path\":\"a.txt\"}",
               "Grep beta\\nNeedle (mapped by loco)",
               "grep -r -I -P -z -o --exclude-dir=.git -e 'beta\\nNeedle' -- 'a.txt' | "
               "tr '\\0' '\\n'",
               false, "beta\nNeedle\n");
}

/* Each hostile string must reach grep/find as a literal: no canary file appears. */
static void test_hostile(void **state)
{
    (void)state;
    static const char *const hostile[] = {
        "'; touch CANARY; echo '",
        "$(touch CANARY)",
        "`touch CANARY`",
        "\\'; touch CANARY #",
        "\"; touch CANARY; \"",
        "-f /etc/passwd --include=x",
        "*.ts' -o -exec touch CANARY ';' -o -name '",
    };
    static const char *const tools[] = {"Grep", "Glob", "Read", "LS"};
    char canary[128];
    snprintf(canary, sizeof canary, "%s/CANARY", g_dir);
    /* the canary check works: an unquoted command does create it */
    free(run_in_tree("touch CANARY", false));
    assert_true(file_exists(canary));
    assert_int_equal(unlink(canary), 0);
    static const char *const keys[] = {"pattern", "pattern", "file_path", "path"};
    for (size_t i = 0; i < LOCO_ARRAY_LEN(hostile); i++) {
        for (size_t t = 0; t < LOCO_ARRAY_LEN(tools); t++) {
            json_t *args = json_pack("{ss}", keys[t], hostile[i]);
            if (t == 0)
                json_object_set_new(args, "path", json_string(hostile[i]));
            char *text = json_to_string(args);
            char why[512];
            char *out = expect_action("Bash", tools[t], text, RECONCILE_MAPPED, "Bash", why);
            json_t *o = json_parse(out, strlen(out), NULL);
            char *res = run_in_tree(json_get_str(o, "command"), false);
            assert_false(file_exists(canary));
            free(res);
            json_decref(o);
            free(out);
            free(text);
            json_decref(args);
        }
    }
}

/* ---- Glob ---- */

static void test_glob(void **state)
{
    (void)state;
    expect_run("Glob", "{\"pattern\":\"**/*.ts\"}", "Glob **/*.ts (mapped by loco)",
               "find '.' -name .git -prune -o -type f -name '*.ts' -printf '%T@ %p\\n' | "
               "sort -rn | cut -d' ' -f2- | head -n 100",
               false, "./src/deep/x.ts\n./src/util.ts\n");
    expect_run("Glob", "{\"pattern\":\"*.ts\"}", "Glob *.ts (mapped by loco)", NULL, false,
               "./src/deep/x.ts\n./src/util.ts\n");
    expect_run("Glob", "{\"pattern\":\"src/*.ts\"}", "Glob src/*.ts (mapped by loco)",
               "find './src' -regextype posix-extended -name .git -prune -o -type f "
               "-regex '\\./src/[^/]*\\.ts' -printf '%T@ %p\\n' | sort -rn | cut -d' ' -f2- | "
               "head -n 100",
               false, "./src/util.ts\n");
    expect_run("Glob", "{\"pattern\":\"src/**/*.ts\"}", "Glob src/**/*.ts (mapped by loco)",
               NULL, false, "./src/deep/x.ts\n./src/util.ts\n");
    expect_run("Glob", "{\"pattern\":\"src/**/deep/*\"}", "Glob src/**/deep/* (mapped by loco)",
               NULL, false, "./src/deep/y.js\n./src/deep/x.ts\n");
    expect_run("Glob", "{\"pattern\":\"*.{ts,tsx}\"}", "Glob *.{ts,tsx} (mapped by loco)",
               "find '.' -name .git -prune -o -type f \\( -name '*.ts' -o -name '*.tsx' \\) "
               "-printf '%T@ %p\\n' | sort -rn | cut -d' ' -f2- | head -n 100",
               false, "./src/deep/x.ts\n./src/app.tsx\n./src/util.ts\n");
    expect_run("Glob", "{\"pattern\":\"*.md\"}", "Glob *.md (mapped by loco)", NULL, false,
               "./notes.md\n./" WEIRD "\n");
    expect_run("Glob", "{\"pattern\":\"*.py\",\"path\":\"src/\"}", "Glob *.py (mapped by loco)",
               NULL, false, "src/main.py\n");
    expect_run("Glob", "{\"pattern\":\"[ab].txt\"}", "Glob [ab].txt (mapped by loco)", NULL,
               false, "./a.txt\n");
    expect_run("Glob", "{\"pattern\":\"config\"}", "Glob config (mapped by loco)", NULL, false,
               "");
    expect_run("Glob", "{\"pattern\":\"we ird's*\"}", "Glob we ird's* (mapped by loco)", NULL,
               false, "./" WEIRD "\n");
    /* an absolute pattern searches from its literal directories */
    char args[256], desc[256], want[256];
    snprintf(args, sizeof args, "{\"pattern\":\"%s/src/*.py\"}", g_dir);
    snprintf(desc, sizeof desc, "Glob %s/src/*.py (mapped by loco)", g_dir);
    snprintf(want, sizeof want, "%s/src/main.py\n", g_dir);
    expect_run("Glob", args, desc, NULL, false, want);
}

/* ---- Read, LS ---- */

static void test_read_ls(void **state)
{
    (void)state;
    expect_run("Read", "{\"file_path\":\"a.txt\",\"offset\":2,\"limit\":2}",
               "Read a.txt (mapped by loco)", "cat -n -- 'a.txt' | sed -n '2,3p;3q'", false,
               "     2\tbeta\n     3\tNeedle gamma\n");
    expect_run("Read", "{\"file_path\":\"" WEIRD "\"}", "Read " WEIRD " (mapped by loco)",
               NULL, false, "     1\tneedle with 'quotes' and $HOME and `id`\n");
    expect_run("Read", "{\"file_path\":\"a.txt\",\"offset\":5}", "Read a.txt (mapped by loco)",
               "cat -n -- 'a.txt' | sed -n '5,2004p;2004q'", false, "     5\tepsilon needle\n");
    char *cmd = bash_command("LS", "{\"path\":\"src/deep\",\"ignore\":[\"*.js\"]}",
                             "LS src/deep (mapped by loco)");
    assert_string_equal(cmd, "ls -la --ignore='*.js' -- 'src/deep'");
    buf names;
    buf_init(&names, BUF_UNLIMITED);
    assert_int_equal(buf_appendf(&names, "%s | tail -n +2 | awk '{print $NF}'", cmd), LOCO_OK);
    char *out = run_in_tree(names.data, false);
    assert_string_equal(out, ".\n..\nx.ts\n");
    free(out);
    free(cmd);
    buf_release(&names);
}

static void test_unmappable(void **state)
{
    (void)state;
    expect_unmappable("Bash,Read", "Write", "{\"file_path\":\"x\",\"content\":\"y\"}",
                      "Write: not offered by the client (offered: Bash, Read); a write is "
                      "never turned into a shell command");
    expect_unmappable("Bash", "Edit", "{}",
                      "Edit: not offered by the client (offered: Bash); a write is never "
                      "turned into a shell command");
    expect_unmappable("Bash,Read", "WebFetch", "{}",
                      "WebFetch: not offered by the client (offered: Bash, Read) and has no "
                      "equivalent");
    expect_unmappable("Read,Agent", "Grep", "{\"pattern\":\"x\"}",
                      "Grep: not offered by the client (offered: Read, Agent), nor is Bash");
    expect_unmappable("Bash", "Grep", "{}", "Grep: argument 'pattern' is missing");
    expect_unmappable("Bash", "Grep", "{\"pattern\":5}", "Grep: argument 'pattern' is not a string");
    expect_unmappable("Bash", "Grep", "{\"pattern\":\"a\\u0000b\"}",
                      "Grep: argument 'pattern' contains a NUL byte");
    expect_unmappable("Bash", "Grep", "{\"pattern\":\"x\",\"-A\":-1}",
                      "Grep: argument '-A' is not a non-negative integer");
    expect_unmappable("Bash", "Grep", "{\"pattern\":\"x\",\"-i\":\"maybe\"}",
                      "Grep: argument '-i' is not a boolean");
    expect_unmappable("Bash", "Grep", "{\"pattern\":\"x\",\"output_mode\":\"lines\"}",
                      "Grep: unknown output_mode 'lines'");
    expect_unmappable("Bash", "Grep", "[1,2]", "Grep: the arguments are not a JSON object");
    expect_unmappable("Bash", "Grep", "{\"pattern\":", "Grep: the arguments are not a JSON object");
    expect_unmappable("Bash", "Glob", "{\"path\":\"src\"}", "Glob: argument 'pattern' is missing");
    expect_unmappable("Bash", "Glob", "{\"pattern\":[\"*.c\"]}",
                      "Glob: argument 'pattern' is not a string");
    expect_unmappable("Bash", "Glob",
                      "{\"pattern\":\"{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}\"}",
                      "Glob: pattern '{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}' expands to too many "
                      "patterns");
    expect_unmappable("Bash", "Read", "{\"offset\":3}", "Read: argument 'file_path' is missing");
    expect_unmappable("Bash", "LS", "{\"ignore\":\"x\"}", "LS: argument 'ignore' is not an array");
    /* out_args' limit */
    chat_request *req = req_with("Bash");
    buf small;
    buf_init(&small, 16);
    const char *target = "unset";
    char why[512];
    assert_int_equal(reconcile_tool_call(req, "Grep", "{\"pattern\":\"needle\"}", &target,
                                         &small, why, sizeof why),
                     RECONCILE_UNMAPPABLE);
    assert_null(target);
    assert_int_equal(small.len, 0);
    assert_string_equal(why, "Grep: the mapped arguments do not fit the output buffer");
    /* a tiny why buffer is cut, still terminated */
    char tiny[6];
    reconcile_tool_call(req, "Write", "{}", &target, &small, tiny, sizeof tiny);
    assert_string_equal(tiny, "Write");
    buf_release(&small);
    chat_request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep),
        cmocka_unit_test(test_rename_case),
        cmocka_unit_test(test_task_agent),
        cmocka_unit_test(test_grep_files),
        cmocka_unit_test(test_grep_content),
        cmocka_unit_test(test_grep_count_glob),
        cmocka_unit_test(test_grep_multiline),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_read_ls),
        cmocka_unit_test(test_unmappable),
    };
    return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}

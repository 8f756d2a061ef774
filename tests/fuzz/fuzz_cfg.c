/* libFuzzer target for the flag parser (cli/cfg.c, cli/cfg_value.c): the
 * input, split at NUL bytes, is argv after the program name. ps_cfg_parse
 * must return 0 or PS_ECONFIG with a one-line reason, and a config it
 * accepts must survive the run header's round trip: every (key, value)
 * pair set through ps_cfg_set on fresh defaults gives back the same header
 * (what checkpoints and model.json rely on). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cli/cfg.h"
#include "common/err.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[4096 + 1];
    static char h1[16384], h2[16384];
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    if (size > sizeof text - 1) {
        return 0;
    }
    (void)fuzz_tmpdir(); /* quiets the log */
    memcpy(text, data, size);
    text[size] = '\0';
    argv[argc++] = (char *)"adamps";
    for (size_t i = 0; i <= size && argc < MAX_ARGS + 1;) {
        argv[argc++] = text + i;
        i += strlen(text + i) + 1;
    }
    argv[argc] = NULL;

    ps_cfg cfg, back;
    char err[512];
    int rc = ps_cfg_parse(&cfg, argc, argv, err, sizeof err);
    CHECK(rc == 0 || rc == PS_ECONFIG);
    CHECK(rc == 0 || (err[0] != '\0' && !strchr(err, '\n')));
    if (rc || cfg.cmd == PS_CMD_HELP) {
        return 0;
    }
    char advice[256];
    (void)ps_cfg_warning(&cfg, advice, sizeof advice);
    int n1 = ps_cfg_format(&cfg, h1, sizeof h1);
    CHECK(n1 > 0 && (size_t)n1 < sizeof h1);
    ps_cfg_defaults(&back);
    for (size_t i = 0; i < ps_cfg_count(); i++) {
        char val[2048];
        const char *key = ps_cfg_pair(&cfg, i, NULL, val, sizeof val);
        rc = ps_cfg_set(&back, key, val, err, sizeof err);
        if (rc) {
            ps_log_fatal(__FILE__, __LINE__, err);
        }
    }
    int n2 = ps_cfg_format(&back, h2, sizeof h2);
    CHECK(n1 == n2 && strcmp(h1, h2) == 0);
    return 0;
}

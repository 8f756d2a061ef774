#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Per thread: the loop comm backend runs every rank as a thread of one
 * process, and each thread sets the rank its lines carry. */
static _Thread_local int log_rank = -1;
static ps_log_level log_min = PS_LOG_INFO;
static int log_json;
static void (*log_abort_hook)(void);

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void ps_log_set_rank(int rank)
{
    log_rank = rank;
}

void ps_log_set_level(ps_log_level level)
{
    log_min = level;
}

void ps_log_set_json(int on)
{
    log_json = on;
}

void ps_log_set_abort_hook(void (*hook)(void))
{
    log_abort_hook = hook;
}

/* Writes a JSON string body with the characters JSON requires escaped. */
static void put_json_string(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

void ps_log_write(ps_log_level level, const char *file, int line, const char *fmt, ...)
{
    if (level < log_min) {
        return;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);

    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int with_where = level == PS_LOG_DEBUG || level == PS_LOG_ERROR;

    /* One fprintf per line so lines from different ranks do not interleave. */
    if (log_json) {
        char esc[4200];
        put_json_string(esc, sizeof esc, msg);
        fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"rank\":%d,\"level\":\"%s\",\"msg\":\"%s\"}\n",
                when, ts.tv_nsec / 1000000, log_rank, level_names[level], esc);
    } else if (with_where) {
        fprintf(stderr, "%s.%03ldZ [rank %d] %s %s:%d: %s\n", when, ts.tv_nsec / 1000000,
                log_rank, level_names[level], base, line, msg);
    } else {
        fprintf(stderr, "%s.%03ldZ [rank %d] %s: %s\n", when, ts.tv_nsec / 1000000, log_rank,
                level_names[level], msg);
    }
}

void ps_log_fatal(const char *file, int line, const char *expr)
{
    ps_log_write(PS_LOG_ERROR, file, line, "assertion failed (bug): %s", expr);
    fflush(stderr);
    if (log_abort_hook) {
        log_abort_hook();
    }
    abort();
}

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/mem.h"

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

int ps_log_is_json(void)
{
    return log_json;
}

void ps_log_set_abort_hook(void (*hook)(void))
{
    log_abort_hook = hook;
}

/* The JSON line of one log record into line (NUL-terminated). Returns 0
 * or PS_ENOMEM: then the caller prints the text line instead, since logging
 * must never fail. */
static int json_line(ps_bytes *line, const char *when, long ms, const char *level, const char *msg,
                     const ps_json *fields)
{
    char stamp[48];
    snprintf(stamp, sizeof stamp, "%s.%03ldZ", when, ms);
    ps_json *o = ps_json_object();
    int rc = ps_json_set(o, "time", ps_json_string(stamp));
    rc = rc ? rc : ps_json_set(o, "rank", ps_json_int(log_rank));
    rc = rc ? rc : ps_json_set(o, "level", ps_json_string(level));
    rc = rc ? rc : ps_json_set(o, "msg", ps_json_string(msg));
    rc = rc || !fields ? rc : ps_json_update(o, fields);
    rc = rc ? rc : ps_json_dump(o, 0, line);
    rc = rc ? rc : PS_GROW(line->data, line->cap, line->len + 1);
    if (rc == 0) {
        line->data[line->len] = '\0';
    }
    ps_json_free(&o);
    return rc;
}

/* One line: text, or JSON with fields (may be NULL). */
static void write_line(ps_log_level level, const char *file, int line, const ps_json *fields,
                       const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);

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
    ps_bytes js = {0};
    if (log_json &&
        json_line(&js, when, ts.tv_nsec / 1000000, level_names[level], msg, fields) == 0) {
        fprintf(stderr, "%s\n", (const char *)js.data);
    } else if (with_where) {
        fprintf(stderr, "%s.%03ldZ [rank %d] %s %s:%d: %s\n", when, ts.tv_nsec / 1000000, log_rank,
                level_names[level], base, line, msg);
    } else {
        fprintf(stderr, "%s.%03ldZ [rank %d] %s: %s\n", when, ts.tv_nsec / 1000000, log_rank,
                level_names[level], msg);
    }
    ps_free(js.data);
}

void ps_log_write(ps_log_level level, const char *file, int line, const char *fmt, ...)
{
    if (level < log_min) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    write_line(level, file, line, NULL, fmt, ap);
    va_end(ap);
}

void ps_log_fields(ps_log_level level, struct json_t *fields, const char *fmt, ...)
{
    if (level >= log_min) {
        va_list ap;
        va_start(ap, fmt);
        write_line(level, "", 0, fields, fmt, ap);
        va_end(ap);
    }
    ps_json_free(&fields);
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

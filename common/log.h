/* Logging: one macro, PS_LOG(level, fmt, ...), to stderr with a timestamp
 * and the rank (per thread, set by the comm module). Debug and error lines
 * also carry file:line. PS_ASSERT is for our own bugs only: it logs and
 * aborts the whole job through the abort hook (MPI_Abort once comm is up). */
#ifndef PS_LOG_H
#define PS_LOG_H

#include <stdarg.h>

typedef enum { PS_LOG_DEBUG = 0, PS_LOG_INFO, PS_LOG_WARN, PS_LOG_ERROR } ps_log_level;

/* Sets the rank printed on this thread's lines (-1 until set: before MPI
 * is up, and in every new thread; loop comm tests set it per rank thread). */
void ps_log_set_rank(int rank);
/* Lines below this level are dropped. Default PS_LOG_INFO. */
void ps_log_set_level(ps_log_level level);
/* JSON lines instead of text (--log-format json): one object per line with
 * time, rank, level and msg, written with common/json.h; a line jansson
 * cannot allocate for is written as text instead. */
void ps_log_set_json(int on);
/* Called by PS_ASSERT after logging; default calls abort(). */
void ps_log_set_abort_hook(void (*hook)(void));

void ps_log_write(ps_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A line with structured fields (progress): as PS_LOG, and under
 * --log-format json the keys of the object `fields` (common/json.h; may be
 * NULL) follow time, rank, level and msg in the same line, so a reader
 * needs no parsing of msg. Takes ownership of fields. */
struct json_t;
void ps_log_fields(ps_log_level level, struct json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when lines are JSON (ps_log_set_json). */
int ps_log_is_json(void);
void ps_log_fatal(const char *file, int line, const char *expr) __attribute__((noreturn));

#define PS_LOG(level, ...) ps_log_write(PS_LOG_##level, __FILE__, __LINE__, __VA_ARGS__)

#define PS_ASSERT(expr)                                                                            \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            ps_log_fatal(__FILE__, __LINE__, #expr);                                               \
        }                                                                                          \
    } while (0)

#ifdef PS_DEBUG
#define PS_DEBUG_ASSERT(expr) PS_ASSERT(expr)
#else
#define PS_DEBUG_ASSERT(expr) ((void)0)
#endif

#endif

/* Inject (worker/inject.h). */
#include "worker/inject.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/comm.h"
#include "common/log.h"
#include "common/rng.h"

const char *ps_inject_read(void)
{
#ifdef PS_TESTING
    return getenv("ADAMPS_TEST_INJECT");
#else
    return NULL;
#endif
}

void ps_inject_delay(double max_ms, uint32_t worker, uint64_t clock)
{
    if (max_ms <= 0) {
        return;
    }
    uint64_t x = ps_rng_hash((uint64_t)time(NULL), worker, clock, (uint64_t)(ps_comm_time() * 1e6));
    double ms = ps_rng_unit_double(x) * max_ms;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                          .tv_nsec = (long)fmod(ms, 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void ps_inject_fault(const char *what, int last, uint64_t clock, ps_plan *plan, float *grad0,
                     size_t rows0)
{
#ifndef PS_TESTING
    (void)what;
    (void)last;
    (void)clock;
    (void)plan;
    (void)grad0;
    (void)rows0;
#else
    if (!what || !last) {
        return;
    }
    if (strncmp(what, "crash-at-", 9) == 0 && clock == strtoull(what + 9, NULL, 10)) {
        _exit(3);
    }
    if (clock != 3) {
        return;
    }
    if (strcmp(what, "bad-key") == 0) {
        ps_plan_inject_bad_key(plan);
    } else if (strcmp(what, "nan") == 0 && rows0) {
        grad0[0] = NAN;
    }
#endif
}

void ps_inject_pause(const char *what, int coordinator, uint64_t clock)
{
#ifdef PS_TESTING
    unsigned long long at = 0;
    double secs = 0;
    int beat = what && sscanf(what, "pause-at-%llu-%lf", &at, &secs) == 2;
    if (!coordinator || (!beat && !(what && sscanf(what, "freeze-at-%llu-%lf", &at, &secs) == 2)) ||
        at != clock) {
        return;
    }
    PS_LOG(INFO, "test: busy for %.1f s at clock %llu (%s heartbeats)", secs, at,
           beat ? "with" : "without");
    for (double t = 0; t < secs; t += 0.05) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
        if (beat) {
            ps_comm_alive();
        }
    }
#else
    (void)what;
    (void)coordinator;
    (void)clock;
#endif
}

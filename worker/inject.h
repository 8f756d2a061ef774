/* Inject: the delays and faults the integration tests (tests/mpi) ask a
 * worker for. The delay (--inject-delay-ms) is in every build; the faults
 * and pauses are read from ADAMPS_TEST_INJECT and exist only in test
 * builds (-DPS_TESTING, build-test/): elsewhere they do nothing. */
#ifndef PS_INJECT_H
#define PS_INJECT_H

#include <stddef.h>
#include <stdint.h>

#include "worker/client.h"

/* ADAMPS_TEST_INJECT in test builds (borrowed from the environment), else
 * NULL. */
const char *ps_inject_read(void);
/* Sleeps a random time below max_ms (nothing for max_ms <= 0), random per
 * (worker, clock, time): the point is to vary arrival order. */
void ps_inject_delay(double max_ms, uint32_t worker, uint64_t clock);
/* On the last worker (last = 1): "crash-at-N" ends the process at clock N,
 * as a killed node would; at clock 3 "bad-key" moves a key of plan past
 * its shard, "nan" makes grad0[0] (rows0 > 0 rows) non-finite, which the
 * servers must report naming this worker. */
void ps_inject_fault(const char *what, int last, uint64_t clock, ps_plan *plan, float *grad0,
                     size_t rows0);
/* On the coordinator: "pause-at-N-SECS" keeps it busy for SECS at clock N
 * (a long evaluation) with its heartbeats going on, which must not end the
 * job; "freeze-at-N-SECS" the same without heartbeats (a hung rank), which
 * must, naming it. */
void ps_inject_pause(const char *what, int coordinator, uint64_t clock);

#endif

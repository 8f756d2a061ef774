/* Fpu: MXCSR's FTZ (bit 15) and DAZ (bit 6) on x86; nothing elsewhere. */
#include "cli/fpu.h"

#if defined(__SSE2__) && (defined(__x86_64__) || defined(__i386__))
#include <xmmintrin.h>
#define PS_FPU_BITS 0x8040u /* FTZ | DAZ; every SSE2 CPU has DAZ */

ps_fpu_mode ps_fpu_flush_denormals(void)
{
    ps_fpu_mode old = {_mm_getcsr()};
    _mm_setcsr(old.csr | PS_FPU_BITS);
    return old;
}

void ps_fpu_restore(ps_fpu_mode mode)
{
    _mm_setcsr(mode.csr);
}

int ps_fpu_denormals_flushed(void)
{
    return (_mm_getcsr() & PS_FPU_BITS) == PS_FPU_BITS;
}
#else
ps_fpu_mode ps_fpu_flush_denormals(void)
{
    ps_fpu_mode old = {0};
    return old;
}

void ps_fpu_restore(ps_fpu_mode mode)
{
    (void)mode;
}

int ps_fpu_denormals_flushed(void)
{
    return 0;
}
#endif

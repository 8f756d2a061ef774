/* Fpu: flush-to-zero and denormals-are-zero for the calling thread. Adam's
 * m and v decay geometrically, so over thousands of steps rows that see
 * small gradients drift into the subnormal range, where x86 float math is
 * ~100x slower (issue 15: the MLP ran 1.49x slower over 2,500 steps). Every
 * rank sets both at start (cli/main.c). On x86 this is MXCSR's FTZ and DAZ
 * bits; elsewhere the calls do nothing and ps_fpu_denormals_flushed says 0.
 * Per thread: MXCSR is not shared, and a new thread starts with its own. */
#ifndef PS_FPU_H
#define PS_FPU_H

/* The calling thread's floating-point mode, as ps_fpu_flush_denormals found
 * it, for ps_fpu_restore. */
typedef struct {
    unsigned csr;
} ps_fpu_mode;

/* Sets flush-to-zero (a subnormal result becomes 0) and denormals-are-zero
 * (a subnormal input reads as 0) for the calling thread. Returns the mode
 * before the call. */
ps_fpu_mode ps_fpu_flush_denormals(void);

/* Puts back a mode returned by ps_fpu_flush_denormals. */
void ps_fpu_restore(ps_fpu_mode mode);

/* 1 when both FTZ and DAZ are set on the calling thread, else 0 (always 0
 * where the CPU has no such mode here). */
int ps_fpu_denormals_flushed(void);

#endif

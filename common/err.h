/* Error codes for every adamps module.
 * Functions that can fail return 0 or a negative PS_E* code (libuv style);
 * ps_strerror() turns a code into text. The list is one X-macro so the
 * enum and the strings cannot drift apart. */
#ifndef PS_ERR_H
#define PS_ERR_H

#define PS_ERRNO_MAP(X)                                                                            \
    X(ENOMEM, "out of memory")                                                                     \
    X(EINVAL, "invalid argument")                                                                  \
    X(EIO, "input/output error")                                                                   \
    X(EFORMAT, "malformed input")                                                                  \
    X(ERANGE, "value out of range")                                                                \
    X(EMSG, "bad message from peer")                                                               \
    X(EMPI, "MPI call failed")                                                                     \
    X(ENONFINITE, "non-finite value")                                                              \
    X(ECONFIG, "invalid configuration")                                                            \
    X(ECKPT, "bad or mismatched checkpoint")                                                       \
    X(EEOF, "end of data")                                                                         \
    X(EPEER, "peer reported a fatal error")                                                        \
    X(ETIMEDOUT, "peer silent past --peer-timeout")                                                \
    X(ESTOPPED, "stopped at a checkpoint after a signal")

enum {
    PS_OK = 0,
#define PS_ERR_ENUM(name, text) PS_##name,
    PS_ERR_FIRST_ = -1000,
    PS_ERRNO_MAP(PS_ERR_ENUM)
#undef PS_ERR_ENUM
        PS_ERR_LAST_
};

/* Returns a static string for rc (0 or a PS_E* code); never NULL. */
const char *ps_strerror(int rc);

#endif

#include "common/err.h"

const char *ps_strerror(int rc)
{
    switch (rc) {
    case PS_OK:
        return "success";
#define PS_ERR_CASE(name, text)                                                                    \
    case PS_##name:                                                                                \
        return text;
        PS_ERRNO_MAP(PS_ERR_CASE)
#undef PS_ERR_CASE
    default:
        return "unknown error";
    }
}

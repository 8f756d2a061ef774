/* Label sets: the distinct integer labels of a classification data set,
 * sorted ascending. Class c of a model is the c-th label, so a libsvm file
 * labelled +1/-1 has the classes (-1, +1) and one labelled 1..K has K
 * classes, none unused, and predictions are written back as the user's own
 * labels (as LIBLINEAR does). The set 0..C-1 is the identity: its class ids
 * are the labels themselves. Not thread-safe on one set; pure otherwise. */
#ifndef PS_LABELS_H
#define PS_LABELS_H

#include <stddef.h>
#include <stdint.h>

/* Most distinct labels a set holds: a softmax over more is not a job for
 * this trainer. */
#define PS_LABELS_MAX 65536

/* A growing set. Zero-initialise; ps_labels_fini frees it. */
typedef struct {
    int32_t *v; /* v[0..n) ascending, distinct */
    size_t n, cap;
} ps_labels;

/* Adds label (a no-op when present). Returns 0; PS_ERANGE when the set
 * already holds PS_LABELS_MAX labels (nothing logged: the caller names the
 * file); PS_ENOMEM. */
int ps_labels_add(ps_labels *s, int32_t label);
/* Adds every label of v[0..n). Returns as ps_labels_add. */
int ps_labels_add_all(ps_labels *s, const int32_t *v, size_t n);
/* Frees the set's array and zeroes it; accepts NULL. */
void ps_labels_fini(ps_labels *s);

/* Parses "L1,L2,..." (decimal integers in int32 range, in any order,
 * distinct, at least two) into out (NULL: only checks, allocating
 * nothing). Returns 0, PS_EINVAL with a one-line reason in err (errlen
 * bytes; may be NULL), PS_ERANGE (more than PS_LABELS_MAX) or PS_ENOMEM. */
int ps_labels_parse(const char *text, ps_labels *out, char *err, size_t errlen);

/* Index of label in the ascending array v[0..n), or -1. O(log n). */
long ps_labels_find(const int32_t *v, size_t n, int32_t label);
/* 1 if v[0..n) is exactly 0, 1, ..., n-1 (class ids are the labels). */
int ps_labels_is_identity(const int32_t *v, size_t n);
/* v[0..n) for a message into buf (len bytes): "-1, 1", or the first few,
 * "..." and the last with the count for long sets. */
void ps_labels_format(const int32_t *v, size_t n, char *buf, size_t len);

#endif

#!/usr/bin/env bash
# Runs each cmocka unit binary in its own process with a timeout (libuv's
# runner does the same), prints its output, and a closing tally.
# Leak checking stays on: these binaries never start MPI.
set -u
timeout_s=${UNIT_TIMEOUT:-300}
pass=0
fail=0
failed=()
for bin in "$@"; do
    name=$(basename "$bin")
    if timeout "$timeout_s" "$bin"; then
        pass=$((pass + 1))
    else
        rc=$?
        fail=$((fail + 1))
        failed+=("$name(rc=$rc)")
    fi
done
echo "unit binaries: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi

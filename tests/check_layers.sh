#!/usr/bin/env bash
# The layer rules of docs/design.md ("Layers"), checked on the include lines:
#   common/  includes only common/
#   data/    common/ and data/
#   server/  common/ and server/
#   worker/  common/, data/ and worker/
#   cli/     anything
# plus: only common/codec.c and common/fileheader.c include the generated
# protobuf header; only common/comm*.c include <mpi.h>; every header in
# common/ is reached (directly or through other headers) from both server/
# and worker/, or it is not common. Run by `make test` (`make check-layers`).
set -u
cd "$(dirname "$0")/.."

bad=0
breach() {
    echo "check-layers: $1" >&2
    bad=$((bad + 1))
}

allowed_for() {
    case $1 in
    common) echo "common" ;;
    data) echo "common data" ;;
    server) echo "common server" ;;
    worker) echo "common data worker" ;;
    *) echo "*" ;;
    esac
}

srcs=$(ls common/*.[ch] data/*.[ch] server/*.[ch] worker/*.[ch] cli/*.[ch] 2>/dev/null)
for f in $srcs; do
    layer=${f%%/*}
    allowed=$(allowed_for "$layer")
    while IFS= read -r line; do
        inc=$(sed -n 's/^#include "\([^"]*\)".*/\1/p' <<<"$line")
        [ -n "$inc" ] || continue
        dir=${inc%%/*}
        if [ "$inc" = "adamps.pb-c.h" ]; then
            case $f in
            common/codec.c | common/fileheader.c) ;;
            *) breach "$f includes the generated protobuf header (only common/codec.c and common/fileheader.c may)" ;;
            esac
            continue
        fi
        [ "$allowed" = "*" ] && continue
        case " $allowed " in
        *" $dir "*) ;;
        *) breach "$f ($layer/) includes $inc: $layer/ may include only $(tr ' ' ',' <<<"$allowed")/" ;;
        esac
    done < <(grep '^#include "' "$f")
    if grep -q '^#include <mpi.h>' "$f"; then
        case $f in
        common/comm*.c) ;;
        *) breach "$f includes <mpi.h> (only common/comm*.c may)" ;;
        esac
    fi
    if grep -q '^#include <protobuf-c/' "$f"; then
        case $f in
        common/codec.c | common/fileheader.c) ;;
        *) breach "$f includes protobuf-c (only common/codec.c and common/fileheader.c may)" ;;
        esac
    fi
done

# Transitive use of every file, for the "common means both roles" rule.
declare -A direct
for f in $srcs; do
    direct[$f]=$(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f" | grep -v '^adamps.pb-c.h$' | tr '\n' ' ')
done
reach_from() { # prints every header reachable from the files given
    local -A seen=()
    local todo=("$@") f h
    while [ ${#todo[@]} -gt 0 ]; do
        f=${todo[-1]}
        unset 'todo[-1]'
        # A module's .c counts with its header: reaching common/file.h
        # means using common/file.c, and so whatever that includes.
        for h in ${direct[$f]:-} ${direct[${f%.h}.c]:-}; do
            if [ -z "${seen[$h]:-}" ]; then
                seen[$h]=1
                todo+=("$h")
            fi
        done
    done
    printf '%s\n' "${!seen[@]}"
}
server_reach=$(reach_from server/*.[ch])
worker_reach=$(reach_from worker/*.[ch])
for h in common/*.h; do
    grep -qx "$h" <<<"$server_reach" || breach "$h is in common/ but no server/ file reaches it: move it to the layer that uses it"
    grep -qx "$h" <<<"$worker_reach" || breach "$h is in common/ but no worker/ file reaches it: move it to the layer that uses it"
done

if [ "$bad" -ne 0 ]; then
    echo "check-layers: $bad breach(es) of the layer rules (docs/design.md, Layers)" >&2
    exit 1
fi
echo "check-layers: ok ($(wc -w <<<"$srcs") files)"

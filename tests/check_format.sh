#!/usr/bin/env bash
# The tree as its own .clang-format writes it (STYLE.md: formatting is
# pinned). Run by `make test` (`make check-format`); `make format` rewrites.
# Pinned to clang-format 14 (Debian 12's): other majors lay some constructs
# out differently, so with another one this says so and checks nothing.
set -u
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$cf" ]; then
    echo "check-format: clang-format not found (deploy/install-deps.sh installs it)" >&2
    exit 1
fi
major=$("$cf" --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
if [ "$major" != 14 ]; then
    echo "check-format: skipped: $cf is version $major, the tree is pinned to 14"
    exit 0
fi
files=$(find common data server worker cli tests bench -name '*.[ch]' -not -path '*/build*' | sort)
bad=0
for f in $files; do
    if ! "$cf" --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "check-format: $f differs from .clang-format (make format rewrites it)" >&2
        bad=$((bad + 1))
    fi
done
[ "$bad" -eq 0 ] || exit 1

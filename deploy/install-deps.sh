#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages adamps needs to build, test and run.
# Idempotent: installs only what is missing. Uses sudo only when not root.
#   deploy/install-deps.sh          install what is missing
#   deploy/install-deps.sh --check  exit 1 if anything is missing, install nothing
#   deploy/install-deps.sh --slurm  also slurm-wlm and munge (`make test-slurm`)
set -eu

check=0
slurm=0
for a in "$@"; do
    case $a in
    --check) check=1 ;;
    --slurm) slurm=1 ;;
    *)
        echo "install-deps: unknown option $a (expected --check, --slurm)" >&2
        exit 2
        ;;
    esac
done

PKGS=(
    build-essential pkg-config
    openmpi-bin libopenmpi-dev
    libopenblas-dev
    libprotobuf-c-dev protobuf-c-compiler
    libcmocka-dev
    zlib1g-dev
    libjansson-dev
    dataset-fashion-mnist
    python3 python3-numpy
    gnuplot-nox
    help2man
    clang libclang-rt-14-dev
    clang-format
)
# clang and its libFuzzer runtime build `make fuzz` / `make fuzz-ci`, which
# CI runs; clang-format checks the layout in `make test`. Optional: the golden-vector generator (torch), only needed to
# regenerate test vectors.
# A one-node Slurm cluster for `make test-slurm`.
if [ "$slurm" = 1 ]; then
    PKGS+=(slurm-wlm munge)
fi
if [ "${ADAMPS_DEV_DEPS:-0}" = 1 ]; then
    PKGS+=(python3-torch)
fi

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "$check" = 1 ]; then
    if [ ${#missing[@]} -ne 0 ]; then
        echo "missing packages: ${missing[*]}" >&2
        exit 1
    fi
    exit 0
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: apt-get not found; install these by hand: ${missing[*]}" >&2
    exit 1
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

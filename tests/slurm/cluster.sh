#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for tests: munged, slurmctld and
# slurmd from Debian's packages, every file (config, keys, state, logs,
# sockets) under one directory and on ports of their own, so it runs beside
# a real Slurm install without touching it.
#
#   tests/slurm/cluster.sh start DIR   starts the daemons; prints the SLURM_CONF to export
#   tests/slurm/cluster.sh stop DIR    stops exactly the daemons it started (by PID)
set -u

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

stop() {
    for d in slurmd slurmctld munged; do
        pidf="$dir/run/$d.pid"
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null
        fi
        rm -f "$pidf"
    done
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

for b in munged slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || {
        echo "cluster.sh: $b not found (apt-get install slurm-wlm munge)" >&2
        exit 2
    }
done
export PATH="$PATH:/usr/sbin"
mkdir -p "$dir"/{run,log,state,spool,munge}
dir=$(cd "$dir" && pwd)
chmod 700 "$dir/munge"

# Free TCP ports for slurmctld and slurmd, picked by the kernel.
read -r ctl_port slurmd_port < <(python3 -c '
import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1",0))
print(*[x.getsockname()[1] for x in s])')

dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
sock="$dir/munge/munge.socket"
# --force: as root, and with a key and socket outside /etc and /run.
munged --force --key-file="$dir/munge/munge.key" --socket="$sock" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/seed" || {
    echo "cluster.sh: munged failed to start (see $dir/log/munged.log)" >&2
    exit 1
}

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
user=$(id -un)
cat >"$dir/slurm.conf" <<CONF
ClusterName=adamps-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobRequeue=1
ReturnToService=2
SchedulerType=sched/builtin
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" || {
    echo "cluster.sh: slurmctld failed (see $dir/log/slurmctld.log)" >&2
    stop
    exit 1
}
slurmd -f "$SLURM_CONF" || {
    echo "cluster.sh: slurmd failed (see $dir/log/slurmd.log)" >&2
    stop
    exit 1
}
# Ready when the node reports idle.
for _ in $(seq 100); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1)
    case $state in
    idle*) echo "SLURM_CONF=$SLURM_CONF"; exit 0 ;;
    esac
    sleep 0.2
done
echo "cluster.sh: node did not come up (state '${state:-none}'; see $dir/log)" >&2
stop
exit 1

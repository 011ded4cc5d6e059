#!/bin/bash
# slurm/local-cluster.sh — a private, real Slurm on this host, for tests and for trying
# lethe's batch scripts: munged + slurmctld + one slurmd per virtual node (n1..nN,
# 2 CPUs each), all started from Debian's packages (slurm-wlm, munge) under one folder.
#
#   local-cluster.sh up     [--dir DIR] [--nodes N]   start (or check) the cluster; prints
#                                                     the export lines on stdout, so
#                                                     eval "$(local-cluster.sh up)" works
#   local-cluster.sh env    [--dir DIR]               print the export lines of a running
#                                                     cluster
#   local-cluster.sh status [--dir DIR]               daemons and node states; exit 0 if up
#   local-cluster.sh down   [--dir DIR]               cancel its jobs, stop the daemons it
#                                                     started (by recorded pid), remove DIR
#                                                     (only a folder `up` made: it holds
#                                                     the marker .lethe-local-cluster)
#
# DIR defaults to /tmp/lethe-slurm-$UID, N to 4. Every file lives under DIR: the munge key,
# socket, seed and log; slurm.conf; the controller's state; each node's spool and TmpFS
# folder (TmpFS per node keeps the PMIx folders of the virtual nodes apart); logs; the pid
# of every daemon. Nothing is written elsewhere: each path a daemon would default to under
# /var or /run is set inside DIR. The ports (one for slurmctld, one per slurmd) are picked
# below the kernel's ephemeral range among those `ss -ltn` shows free.
#
# Must run as root: slurmd launches job steps as the submitting user. `up` is idempotent
# (a running cluster is left alone; a half-dead one is stopped and started again; a
# failed start stops what it started and keeps DIR for its logs), `down` on a stopped
# cluster does nothing. A daemon counts as ours while its recorded pid's command line
# names DIR, so a recycled pid is never signalled. Errors are one line,
# "local-cluster: ...", exit 1; progress goes to stderr, the export lines alone to
# stdout. The cluster keeps finished jobs for an hour (MinJobAge) for `scontrol show
# job`, and a requeued job may start again after 20 s (cred_expire).
set -u

PROG=local-cluster
die() {
    echo "$PROG: $*" >&2
    exit 1
}
say() { echo "$PROG: $*" >&2; }

usage() {
    echo "usage: $0 up|down|status|env [--dir DIR] [--nodes N]" >&2
    exit 2
}

verb="${1:-}"
[ -n "$verb" ] || usage
shift
DIR="/tmp/lethe-slurm-$(id -u)"
NODES=4
while [ $# -gt 0 ]; do
    case "$1" in
    --dir)
        [ $# -ge 2 ] || die "--dir needs a folder"
        DIR="$2"
        shift 2
        ;;
    --dir=*)
        DIR="${1#--dir=}"
        shift
        ;;
    --nodes)
        [ $# -ge 2 ] || die "--nodes needs a number"
        NODES="$2"
        shift 2
        ;;
    --nodes=*)
        NODES="${1#--nodes=}"
        shift
        ;;
    *) die "unknown option '$1' (expected --dir DIR or --nodes N)" ;;
    esac
done
case "$NODES" in
'' | *[!0-9]*) die "--nodes '$NODES' is not a positive integer" ;;
esac
if [ "$NODES" -lt 1 ] || [ "$NODES" -gt 64 ]; then
    die "--nodes $NODES is out of range 1..64"
fi
[ -n "$DIR" ] || die "--dir is empty"
case "$DIR" in
/*) ;;
*) DIR="$(pwd)/$DIR" ;;
esac
DIR="${DIR%/}"
[ -n "$DIR" ] || die "refusing --dir '/'"

CONF="$DIR/slurm.conf"
RUN="$DIR/run"
MUNGE_SOCKET="$DIR/munge/munge.socket"
SLURM_SBIN_HINTS="/usr/sbin:/sbin:/usr/local/sbin"
# Daemons live in sbin, which a non-login root shell may lack.
PATH="$PATH:$SLURM_SBIN_HINTS"

# A pid recorded in DIR/run is ours only while its command line still names this
# cluster's files (a recycled pid names something else).
pid_is_ours() { # pidfile
    local f="$1" pid
    [ -f "$f" ] || return 1
    pid="$(cat "$f" 2>/dev/null)"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/"
}

pid_of() { cat "$1"; }

# Written first by `up`: only a folder holding it is ever removed by `down`.
MARK="$DIR/.lethe-local-cluster"

# Node count of the cluster under DIR, from its slurm.conf (0 if none).
conf_nodes() {
    [ -f "$CONF" ] || {
        echo 0
        return
    }
    sed -n 's/^# lethe-local-cluster nodes=\([0-9]*\)$/\1/p' "$CONF" | head -n1
}

all_running() {
    local n k
    n="$(conf_nodes)"
    [ "${n:-0}" -ge 1 ] || return 1
    pid_is_ours "$RUN/munged.pid" || return 1
    pid_is_ours "$RUN/slurmctld.pid" || return 1
    for k in $(seq 1 "$n"); do
        pid_is_ours "$RUN/slurmd-n$k.pid" || return 1
    done
}

print_env() {
    echo "export SLURM_CONF='$CONF'"
    echo "export LETHE_SLURM_DIR='$DIR'"
}

stop_pid() { # pidfile name: TERM, wait up to 10 s, then KILL
    local f="$1" name="$2" pid
    pid_is_ours "$f" || {
        rm -f "$f"
        return 0
    }
    pid="$(pid_of "$f")"
    kill -TERM "$pid" 2>/dev/null
    wait_for 10 not_ours "$f"
    if pid_is_ours "$f"; then
        say "$name (pid $pid) ignored TERM for 10 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.2
    fi
    rm -f "$f"
}

not_ours() { ! pid_is_ours "$1"; }

# Cancel every job of this private cluster and wait (bounded) for their steps to end,
# so no slurmstepd outlives the daemons that own it.
cancel_jobs() {
    pid_is_ours "$RUN/slurmctld.pid" || return 0
    local ids
    ids="$(SLURM_CONF="$CONF" squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')"
    if [ -n "${ids// /}" ]; then
        # shellcheck disable=SC2086 # one id per word
        SLURM_CONF="$CONF" scancel $ids 2>/dev/null
        wait_for 10 no_jobs
    fi
    # A step's slurmstepd keeps its node's log file (under DIR) open: that is how the
    # ones of this cluster are told from any other Slurm's on the host.
    wait_for 10 no_stepds && return 0
    local p
    for p in $(our_stepds); do
        say "slurmstepd (pid $p) still runs 10 s after its job was cancelled; sending KILL"
        kill -KILL "$p" 2>/dev/null
    done
}

no_jobs() { [ -z "$(SLURM_CONF="$CONF" squeue -h -o '%A' 2>/dev/null)" ]; }
no_stepds() { [ -z "$(our_stepds)" ]; }

our_stepds() {
    local d p fd
    for d in /proc/[0-9]*; do
        [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] || continue
        p="${d#/proc/}"
        for fd in "$d"/fd/*; do
            case "$(readlink "$fd" 2>/dev/null)" in
            "$DIR"/*)
                echo "$p"
                break
                ;;
            esac
        done
    done
    return 0
}

# The daemons recorded in DIR/run, nodes first, munged last.
stop_daemons() {
    local f
    for f in "$RUN"/slurmd-n*.pid; do
        [ -f "$f" ] && stop_pid "$f" "slurmd $(basename "$f" .pid | sed 's/^slurmd-//')"
    done
    stop_pid "$RUN/slurmctld.pid" slurmctld
    stop_pid "$RUN/munged.pid" munged
}

do_down() {
    if [ ! -e "$DIR" ]; then
        say "no cluster under $DIR (nothing to stop)"
        return 0
    fi
    [ -f "$MARK" ] || die "$DIR holds no local cluster (no $(basename "$MARK")); not touching it"
    cancel_jobs
    stop_daemons
    rm -rf "$DIR" || die "could not remove $DIR"
    say "stopped; removed $DIR"
}

# TCP ports something listens on, one per line: from `ss -ltn`, or, where iproute2 is
# not installed (slim images), from the kernel's tables (state 0A is LISTEN).
listening_ports() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://'
    else
        cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
            awk '$4 == "0A" { split($2, a, ":"); print a[2] }' |
            while read -r hex; do echo $((16#$hex)); done
    fi
}

# Ports below the ephemeral range (outgoing connections never take them) that nothing
# listens on: NODES+1 consecutive ports from a start that depends on uid and time.
pick_ports() {
    local lo=15000 hi eph_lo used start tries p ok k
    eph_lo="$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)"
    hi="$((${eph_lo:-32768} - NODES - 2))"
    [ "$hi" -gt "$lo" ] || hi=30000
    used=" $(listening_ports | sort -u | tr '\n' ' ') "
    start=$((lo + ($(id -u) * 7919 + $$ * 131 + $(date +%s)) % (hi - lo)))
    for tries in $(seq 1 200); do
        ok=1
        for k in $(seq 0 "$NODES"); do
            p=$((start + k))
            if [ $p -ge "$hi" ] || [[ "$used" == *" $p "* ]]; then
                ok=0
                break
            fi
        done
        if [ $ok = 1 ]; then
            echo "$start"
            return 0
        fi
        start=$((lo + (start - lo + NODES + 1 + tries * 97) % (hi - lo)))
    done
    die "found no $((NODES + 1)) consecutive free TCP ports in $lo..$hi"
}

write_conf() { # base-port
    local base="$1" host last
    host="$(hostname -s 2>/dev/null || hostname)"
    [ -n "$host" ] || die "hostname is empty"
    last=$((base + NODES))
    cat >"$CONF.tmp" <<EOF
# lethe-local-cluster nodes=$NODES
# A private single-host Slurm written by slurm/local-cluster.sh; every path is under
# $DIR.
ClusterName=lethe
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire is also how long a requeued job waits before it may start again (120 s
# by default); a private test cluster need not wait that long.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=20
CredType=cred/munge
SlurmctldPort=$base
SlurmdPort=$((base + 1))
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
TmpFS=$DIR/tmp/%n
SlurmctldPidFile=$RUN/slurmctld.daemon.pid
SlurmdPidFile=$RUN/slurmd-%n.daemon.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SchedulerType=sched/backfill
ReturnToService=2
# Finished jobs stay visible to "scontrol show job" for an hour: there is no accounting.
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=n[1-$NODES] NodeHostname=$host NodeAddr=127.0.0.1 Port=[$((base + 1))-$last] CPUs=2
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

# Start a daemon in the foreground mode of its own, detached into a new session, and
# record its pid ourselves (the daemons' own pid files are kept inside DIR too).
spawn() { # pidfile logfile cmd...
    local pidf="$1" log="$2"
    shift 2
    setsid "$@" </dev/null >>"$log" 2>&1 &
    echo $! >"$pidf"
}

wait_for() { # seconds command...: polls command every 0.1 s
    local stop=$((SECONDS + $1))
    shift
    while [ $SECONDS -lt $stop ]; do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}

munge_ready() { [ -S "$MUNGE_SOCKET" ] && pid_is_ours "$RUN/munged.pid"; }

ctld_ready() {
    pid_is_ours "$RUN/slurmctld.pid" || return 1
    SLURM_CONF="$CONF" scontrol ping 2>/dev/null | grep -q 'is UP'
}

nodes_idle() {
    local states
    states="$(SLURM_CONF="$CONF" sinfo -h -N -o '%N %t' 2>/dev/null)" || return 1
    [ "$(echo "$states" | awk '$2 == "idle"' | sort -u | wc -l)" -eq "$NODES" ]
}

# A failed start stops what it started and keeps DIR for its logs (`down` removes it).
die_up() {
    stop_daemons >/dev/null 2>&1
    die "$*; daemons stopped, logs in $DIR/log"
}

last_log_line() { # file
    [ -f "$1" ] && grep -v '^\s*$' "$1" | tail -n1
}

do_up() {
    [ "$(id -u)" = 0 ] ||
        die "must run as root (slurmd launches job steps as the submitting user)"
    local c
    for c in munged mungekey slurmctld slurmd sinfo scontrol; do
        command -v "$c" >/dev/null 2>&1 ||
            die "$c not found: install the Debian packages slurm-wlm and munge"
    done
    if all_running; then
        local n
        n="$(conf_nodes)"
        [ "$n" = "$NODES" ] || die "a cluster of $n nodes already runs under $DIR;" \
            "run 'down' first to change to $NODES"
        nodes_idle_or_busy ||
            die "the cluster under $DIR runs but its nodes are not all up; see $DIR/log"
        say "already up under $DIR ($n nodes)"
        print_env
        return 0
    fi
    if [ -f "$MARK" ]; then
        say "stale cluster state under $DIR; stopping what is left and starting again"
        (do_down) >/dev/null 2>&1 || die "could not clean up the stale $DIR"
    elif [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
        die "$DIR exists and is not empty; give another --dir"
    fi
    mkdir -p "$DIR" || die "cannot create $DIR"
    touch "$MARK" || die "cannot write in $DIR"
    chmod 755 "$DIR"
    mkdir -p "$RUN" "$DIR/munge" "$DIR/state" "$DIR/log" || die "cannot create folders in $DIR"
    # munged refuses a socket folder writable by others.
    chmod 755 "$DIR/munge"
    local k
    for k in $(seq 1 "$NODES"); do
        mkdir -p "$DIR/spool/n$k" "$DIR/tmp/n$k" || die "cannot create node folders in $DIR"
    done

    mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null 2>"$DIR/log/mungekey.log" ||
        die "mungekey failed: $(last_log_line "$DIR/log/mungekey.log")"
    chmod 0400 "$DIR/munge/munge.key"
    spawn "$RUN/munged.pid" "$DIR/log/munged.out" munged --foreground \
        --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
    wait_for 10 munge_ready ||
        die_up "munged did not start: $(last_log_line "$DIR/log/munged.log")"

    local base
    base="$(pick_ports)" || die_up "found no free ports"
    write_conf "$base"

    spawn "$RUN/slurmctld.pid" "$DIR/log/slurmctld.out" slurmctld -D -f "$CONF"
    wait_for 20 ctld_ready ||
        die_up "slurmctld did not answer in 20 s: $(last_log_line "$DIR/log/slurmctld.log")"
    for k in $(seq 1 "$NODES"); do
        spawn "$RUN/slurmd-n$k.pid" "$DIR/log/slurmd-n$k.out" slurmd -D -f "$CONF" -N "n$k"
    done
    if ! wait_for 30 nodes_idle; then
        local states
        states="$(SLURM_CONF="$CONF" sinfo -h -N -o '%N=%t' 2>/dev/null | tr '\n' ' ')"
        die_up "nodes not all idle after 30 s (${states:-sinfo gave nothing})"
    fi
    say "up under $DIR: $NODES nodes, slurmctld port $base," \
        "slurmd ports $((base + 1))-$((base + NODES))"
    print_env
}

# Up means every node responds (idle, or busy with jobs: mix/alloc/completing).
nodes_idle_or_busy() {
    local states n
    states="$(SLURM_CONF="$CONF" sinfo -h -N -o '%N %t' 2>/dev/null)" || return 1
    n="$(echo "$states" | awk '$2 ~ /^(idle|mix|alloc|comp)$/ {print $1}' | sort -u | wc -l)"
    [ "$n" -eq "$(conf_nodes)" ]
}

do_status() {
    if [ ! -f "$CONF" ]; then
        echo "down: no cluster under $DIR"
        return 1
    fi
    local f name state=up
    for f in "$RUN/munged.pid" "$RUN/slurmctld.pid"; do
        name="$(basename "$f" .pid)"
        if pid_is_ours "$f"; then
            echo "$name: running (pid $(pid_of "$f"))"
        else
            echo "$name: not running"
            state=down
        fi
    done
    local k n
    n="$(conf_nodes)"
    for k in $(seq 1 "$n"); do
        if pid_is_ours "$RUN/slurmd-n$k.pid"; then
            echo "slurmd n$k: running (pid $(pid_of "$RUN/slurmd-n$k.pid"))"
        else
            echo "slurmd n$k: not running"
            state=down
        fi
    done
    if pid_is_ours "$RUN/slurmctld.pid"; then
        SLURM_CONF="$CONF" sinfo -N -o '%N %t %c' 2>&1
        nodes_idle_or_busy || state=down
    fi
    echo "$state: SLURM_CONF=$CONF"
    [ $state = up ]
}

case "$verb" in
up) do_up ;;
down) do_down ;;
status) do_status ;;
env)
    all_running || die "no running cluster under $DIR (run: $0 up --dir $DIR)"
    print_env
    ;;
-h | --help | help) usage ;;
*) die "unknown verb '$verb' (expected up, down, status or env)" ;;
esac

#!/bin/sh
# Start a single-node Slurm cluster on this machine for the submitters' tests.
#
# For CI on a fresh Debian 12 as root; idempotent, so it is also safe on a
# developer machine where part of it is already done. Steps:
#   1. apt-get install slurm-wlm and munge if missing;
#   2. start munged as the munge user (it refuses root and wrongly owned dirs);
#   3. write /etc/slurm/slurm.conf for one node named `hostname -s` with
#      CPUs from nproc, settings that need neither systemd nor cgroups; an
#      existing slurm.conf is only replaced if this script wrote it (marker
#      line below), so a real site configuration is never touched;
#   4. start slurmctld, then slurmd;
#   5. wait (SLURM_WAIT seconds, default 60) until sinfo shows the node idle.
# Exits non-zero on any failure, with the log to read.
#
# Two partitions: `debug` (default) and `other`, so tests can check that the
# `queue` job parameter reaches Slurm. MaxArraySize/MaxJobCount are large
# enough for the 500-subjob benchmark (benchmarks/slurm_array.py), and
# `debug` lets jobs that ask for it (--oversubscribe) share a core 8 ways, so
# the benchmark's 500 tiny subjobs do not queue two at a time behind 2 CPUs;
# jobs that do not ask get whole cores as on any cluster. The scheduler runs
# right after each job ends (batch_sched_delay=0) instead of batching.
set -eu

CONF=/etc/slurm/slurm.conf
MARKER="# Written by reproman tools/ci/slurm.sh"
LOGDIR=/var/log/slurm
WAIT=${SLURM_WAIT:-60}

say() { printf 'slurm.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"

# 1. Packages ----------------------------------------------------------------------
missing=""
command -v slurmctld >/dev/null 2>&1 || missing="$missing slurm-wlm"
command -v munged >/dev/null 2>&1 || missing="$missing munge"
if [ -n "$missing" ]; then
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get install -y -q $missing >/dev/null || die "apt-get install$missing failed"
fi

# 2. munge -------------------------------------------------------------------------
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    fi
fi
chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0700 /etc/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    su -s /bin/sh munge -c munged || die "munged did not start; see /var/log/munge/munged.log"
    i=0
    until munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -le 20 ] || die "munge does not answer; see /var/log/munge/munged.log"
        sleep 0.5
    done
fi
say "munge answers"

# 3. slurm.conf ----------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
mkdir -p /etc/slurm "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd
if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    say "keeping existing $CONF (not written by this script)"
else
    new=$(mktemp /tmp/reproman-slurm-conf.XXXXXX)
    cat >"$new" <<EOF
$MARKER: one node, no systemd, no cgroups.
ClusterName=reproman
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MaxArraySize=10001
MaxJobCount=100000
MinJobAge=300
KillWait=2
InactiveLimit=0
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0,default_queue_depth=1000
NodeName=$HOST CPUs=$CPUS RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES:8
PartitionName=other Nodes=ALL Default=NO MaxTime=INFINITE State=UP
EOF
    if [ -e "$CONF" ] && cmp -s "$new" "$CONF"; then
        rm -f "$new"
    else
        say "writing $CONF"
        mv -f "$new" "$CONF"
        chmod 0644 "$CONF"
        # A changed configuration needs the daemons to read it again.
        if scontrol ping >/dev/null 2>&1; then
            scontrol reconfigure >/dev/null 2>&1 || true
        fi
    fi
fi

# 4. Daemons -------------------------------------------------------------------------
ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
if ! ctld_up; then
    say "starting slurmctld (log: $LOGDIR/slurmctld.log)"
    slurmctld || die "slurmctld did not start; see $LOGDIR/slurmctld.log"
    i=0
    until ctld_up; do
        i=$((i + 1))
        [ "$i" -le 40 ] || die "slurmctld does not answer; see $LOGDIR/slurmctld.log"
        sleep 0.5
    done
fi
if ! pgrep -x slurmd >/dev/null 2>&1; then
    say "starting slurmd (log: $LOGDIR/slurmd.log)"
    slurmd || die "slurmd did not start; see $LOGDIR/slurmd.log"
fi

# 5. Wait for the node ---------------------------------------------------------------------
start=$(date +%s)
resumed=no
while :; do
    state=$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|fail*)
            if [ "$resumed" = no ]; then
                say "node $HOST is $state; resuming it"
                scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
                resumed=yes
            fi ;;
    esac
    [ $(($(date +%s) - start)) -lt "$WAIT" ] \
        || die "node $HOST not idle after ${WAIT} s (state: ${state:-none}); see $LOGDIR/slurmd.log and $LOGDIR/slurmctld.log"
    sleep 1
done
say "ready: node $HOST ($CPUS CPUs) is $state; partitions: $(sinfo -h -o '%P' | tr '\n' ' ')"

#!/bin/sh
# Start a single-node Slurm cluster with job accounting on this machine.
#
# For CI on a fresh Debian 12 as root; idempotent, so it is also safe on a
# developer machine where part of it is already done. Steps:
#   1. apt-get install slurm-wlm, munge, slurmdbd and mariadb-server if missing;
#   2. start munged as the munge user (it refuses root and wrongly owned dirs);
#   3. start MariaDB with mysqld_safe (there is no systemd) and make the
#      accounting database and its user;
#   4. write /etc/slurm/slurmdbd.conf (mode 600, owned by SlurmUser, or
#      slurmdbd refuses to start) and start slurmdbd; register the cluster;
#   5. write /etc/slurm/slurm.conf for one node named `hostname -s`, with
#      settings that need neither systemd nor cgroups; an existing file is only
#      replaced if this script wrote it (marker line below), so a real site
#      configuration is never touched;
#   6. start slurmctld, then slurmd (restarting them when slurm.conf changed:
#      accounting and memory settings are not re-read by `scontrol reconfigure`);
#   7. wait (SLURM_WAIT seconds, default 60) until sinfo shows the node idle and
#      sacct answers from the accounting database.
# Start order matters: MariaDB, slurmdbd, then slurmctld and slurmd.
# Exits non-zero on any failure, naming the log to read.
#
# What the configuration is for:
# * Partitions: `debug` (default) and `other`, so tests can check that the
#   `queue` job parameter reaches Slurm; `short` (MaxTime=1 minute) so that a
#   job asking for more time pends with reason PartitionTimeLimit, a request
#   that can never start; `drained` holds only `ghost`, a node that exists in
#   the configuration but never answers and is drained, so a job there pends
#   the way jobs do behind a drained node, without touching the real node that
#   other tests use.
# * Memory is a consumable resource (CR_Core_Memory, DefMemPerCPU) and
#   JobAcctGatherParams=OverMemoryKill kills a step that goes over its --mem:
#   without cgroups Slurm reports such a job FAILED with signal 9, never
#   OUT_OF_MEMORY; the submitter tells it apart from accounting (MaxRSS).
# * MinJobAge=5: finished jobs leave squeue after 5-65 s (slurmctld purges
#   once a minute), so the tests of "the scheduler forgot the job" run in
#   about a minute; sacct keeps them.
# * MaxArraySize/MaxJobCount are large enough for the 500-subjob benchmark
#   (benchmarks/slurm_array.py), and `debug` lets jobs that ask for it
#   (--oversubscribe) share a core 8 ways, so 500 tiny subjobs do not queue
#   two at a time behind 2 CPUs; jobs that do not ask get whole cores. The
#   scheduler runs right after each job ends (batch_sched_delay=0).
set -eu

CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARKER="# Written by reproman tools/ci/slurm.sh"
LOGDIR=/var/log/slurm
MYSQL_LOG=/var/log/mysql/reproman-mariadb.log
WAIT=${SLURM_WAIT:-60}
DB=slurm_acct_db
DB_USER=slurm

say() { printf 'slurm.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# wait_for SECONDS DESCRIPTION LOG COMMAND...: poll COMMAND every 0.5 s.
wait_for() {
    limit=$1 what=$2 log=$3
    shift 3
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -le $((limit * 2)) ] || die "$what does not answer after ${limit} s; see $log"
        sleep 0.5
    done
}

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"

# 1. Packages ----------------------------------------------------------------------
missing=""
command -v slurmctld >/dev/null 2>&1 || missing="$missing slurm-wlm"
command -v munged >/dev/null 2>&1 || missing="$missing munge"
command -v slurmdbd >/dev/null 2>&1 || missing="$missing slurmdbd"
command -v mysqld_safe >/dev/null 2>&1 || missing="$missing mariadb-server"
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
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    say "starting munged"
    rm -f /run/munge/munged.pid
    su -s /bin/sh munge -c munged || die "munged did not start; see /var/log/munge/munged.log"
    wait_for 10 munge /var/log/munge/munged.log munge_ok
fi
say "munge answers"

# 3. MariaDB -----------------------------------------------------------------------
mkdir -p /run/mysqld "$(dirname "$MYSQL_LOG")"
chown mysql:root /run/mysqld
chown mysql:adm "$(dirname "$MYSQL_LOG")" 2>/dev/null || chown mysql "$(dirname "$MYSQL_LOG")"
if ! mysqladmin ping >/dev/null 2>&1; then
    say "starting MariaDB (log: $MYSQL_LOG)"
    # The package's policy-rc.d kept it from starting, and there is no systemd.
    setsid mysqld_safe --log-error="$MYSQL_LOG" </dev/null >/dev/null 2>&1 &
    wait_for 60 MariaDB "$MYSQL_LOG" mysqladmin ping
fi
say "MariaDB answers"

# The database password lives only in slurmdbd.conf (root-only); keep it across runs.
password=""
if [ -e "$DBD_CONF" ] && grep -qF "$MARKER" "$DBD_CONF"; then
    password=$(sed -n 's/^StoragePass=//p' "$DBD_CONF")
fi
if [ -z "$password" ]; then
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
fi
mysql -u root <<EOF || die "could not create the accounting database; see $MYSQL_LOG"
CREATE DATABASE IF NOT EXISTS $DB;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$password';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$password';
GRANT ALL ON $DB.* TO '$DB_USER'@'localhost';
EOF

# 4. slurmdbd.conf ---------------------------------------------------------------------
mkdir -p /etc/slurm "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd
if [ -e "$DBD_CONF" ] && ! grep -qF "$MARKER" "$DBD_CONF"; then
    say "keeping existing $DBD_CONF (not written by this script)"
else
    new=$(mktemp /etc/slurm/.slurmdbd.conf.XXXXXX)
    chmod 0600 "$new"
    cat >"$new" <<EOF
$MARKER: accounting in the local MariaDB.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$password
StorageLoc=$DB
EOF
    if [ -e "$DBD_CONF" ] && cmp -s "$new" "$DBD_CONF"; then
        rm -f "$new"
    else
        say "writing $DBD_CONF"
        mv -f "$new" "$DBD_CONF"
    fi
fi
# slurmdbd refuses a configuration readable by others or not owned by SlurmUser.
chown root:root "$DBD_CONF"
chmod 0600 "$DBD_CONF"
# 5. slurm.conf ----------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
if [ -e "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    say "keeping existing $CONF (not written by this script)"
else
    new=$(mktemp /tmp/reproman-slurm-conf.XXXXXX)
    cat >"$new" <<EOF
$MARKER: one node, accounting, no systemd, no cgroups.
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
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
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
MinJobAge=5
KillWait=2
InactiveLimit=0
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0,default_queue_depth=1000
NodeName=$HOST CPUs=$CPUS RealMemory=4000 State=UNKNOWN
NodeName=ghost NodeAddr=127.0.0.1 Port=6899 CPUs=1 RealMemory=100 State=DRAIN Reason="reproman tests: drained on purpose"
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES:8
PartitionName=other Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
PartitionName=short Nodes=$HOST Default=NO MaxTime=1 State=UP
PartitionName=drained Nodes=ghost Default=NO MaxTime=INFINITE State=UP
EOF
    if [ -e "$CONF" ] && cmp -s "$new" "$CONF"; then
        rm -f "$new"
    else
        say "writing $CONF"
        mv -f "$new" "$CONF"
        chmod 0644 "$CONF"
    fi
fi

# 6. Daemons: slurmdbd, then slurmctld and slurmd -----------------------------------
dbd_up() { sacctmgr -n -P list cluster format=cluster; }
# older_than FILE PID: the process started before FILE was last written, so it
# runs with an older configuration (also after an interrupted earlier run).
older_than() {
    started=$(date -d "$(ps -o lstart= -p "$2")" +%s 2>/dev/null) || return 1
    [ "$(stat -c %Y "$1")" -ge "$started" ]
}
if pgrep -x slurmdbd >/dev/null 2>&1 && older_than "$DBD_CONF" "$(pgrep -xo slurmdbd)"; then
    say "restarting slurmdbd (its configuration changed since it started)"
    pkill -x slurmdbd || true
    i=0
    while pgrep -x slurmdbd >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -le 40 ] || die "slurmdbd does not stop"; sleep 0.5
    done
fi
if ! pgrep -x slurmdbd >/dev/null 2>&1; then
    say "starting slurmdbd (log: $LOGDIR/slurmdbd.log)"
    slurmdbd || die "slurmdbd did not start; see $LOGDIR/slurmdbd.log"
fi
wait_for 30 slurmdbd "$LOGDIR/slurmdbd.log" dbd_up
if ! sacctmgr -n -P list cluster format=cluster | grep -qx reproman; then
    say "registering cluster 'reproman' in accounting"
    sacctmgr -i add cluster reproman >/dev/null || die "sacctmgr add cluster failed; see $LOGDIR/slurmdbd.log"
fi
# The tests' --account=lab42 must name a real account, as on any site with accounting.
if ! sacctmgr -n -P list account format=account | grep -qx lab42; then
    sacctmgr -i add account lab42 Description="reproman tests" Organization=reproman >/dev/null \
        || die "sacctmgr add account failed; see $LOGDIR/slurmdbd.log"
fi
if ! sacctmgr -n -P list assoc account=lab42 user=root format=user | grep -qx root; then
    sacctmgr -i add user root account=lab42 >/dev/null || die "sacctmgr add user failed; see $LOGDIR/slurmdbd.log"
fi
say "slurmdbd answers"

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
stale=no
for daemon in slurmctld slurmd; do
    pid=$(pgrep -xo "$daemon" || true)
    if [ -n "$pid" ] && older_than "$CONF" "$pid"; then stale=yes; fi
done
if [ "$stale" = yes ]; then
    # Accounting, memory and node definitions are read at start only. Running
    # jobs survive: slurmstepd keeps them going and slurmctld saves its state.
    say "restarting slurmctld and slurmd (slurm.conf changed since they started)"
    scontrol shutdown >/dev/null 2>&1 || true
    i=0
    while pgrep -x slurmctld >/dev/null 2>&1 || pgrep -x slurmd >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -le 60 ] || die "slurmctld/slurmd do not stop"; sleep 0.5
    done
fi
if ! ctld_up; then
    say "starting slurmctld (log: $LOGDIR/slurmctld.log)"
    slurmctld || die "slurmctld did not start; see $LOGDIR/slurmctld.log"
    wait_for 20 slurmctld "$LOGDIR/slurmctld.log" ctld_up
fi
if ! pgrep -x slurmd >/dev/null 2>&1; then
    say "starting slurmd (log: $LOGDIR/slurmd.log)"
    slurmd || die "slurmd did not start; see $LOGDIR/slurmd.log"
fi

# 7. Wait for the node and for accounting -------------------------------------------------
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
acct_ok() {
    out=$(sacct -n -X -S now-1minutes -o JobID 2>&1) || return 1
    case "$out" in *disabled*|*"not configured"*|*"Connection refused"*) return 1 ;; esac
}
# Jobs a killed test run left in slurmctld's saved state would hold the node's CPUs.
stale=$(squeue -h -o '%i %j' 2>/dev/null | awk '$2 ~ /^reproman-/ { print $1 }' | sort -u)
if [ -n "$stale" ]; then
    say "cancelling jobs left by an earlier run: $(echo $stale)"
    # shellcheck disable=SC2086
    scancel $stale >/dev/null 2>&1 || true
fi
wait_for 30 "sacct (accounting)" "$LOGDIR/slurmdbd.log and $LOGDIR/slurmctld.log" acct_ok
say "ready: node $HOST ($CPUS CPUs) is $state; accounting answers; partitions: $(sinfo -h -o '%P' | tr '\n' ' ')"

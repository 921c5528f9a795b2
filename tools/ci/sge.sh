#!/bin/sh
# Start a single-node Son of Grid Engine cell on this machine for the sge submitter's tests.
#
# For CI on a fresh Debian 12 as root; idempotent, so it is also safe on a
# developer machine where part of it is already done. Steps:
#   1. preseed debconf (the package then creates the cell "default" with this
#      host as master) and apt-get install gridengine-master/-exec/-client;
#   2. host_aliases: /etc/hosts gives this host's address the first name
#      "localhost", so without an alias qmaster calls itself localhost and
#      refuses its own clients ("client IP resolved to host name localhost");
#   3. start sge_qmaster (as root; it switches to sgeadmin);
#   4. global configuration: root may run jobs (min_uid/min_gid 0), accounting
#      reaches qacct within a second; scheduler: a run every second and right
#      after each submission and job end (defaults are 15 s each), and no
#      load adjustments (2 shared CPUs must not look "overloaded");
#   5. this host as submit host, a parallel environment "smp" ($pe_slots,
#      for num_processes), and the queue all.q with one slot per CPU, written
#      in full (qconf -aq's template names PEs that do not exist here);
#   6. start sge_execd, wait (SGE_WAIT seconds, default 60) until the queue
#      leaves state "u", then run one job through qsub -sync y as proof.
# Exits non-zero on any failure, with the log to read.
set -eu

SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
SGE_CELL=${SGE_CELL:-default}
export SGE_ROOT SGE_CELL
COMMON=$SGE_ROOT/$SGE_CELL/common
QMASTER_LOG=/var/spool/gridengine/qmaster/messages
WAIT=${SGE_WAIT:-60}
HOST=$(hostname)
CPUS=$(nproc)
QUEUE=all.q
PE=smp

say() { printf 'sge.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"

# 1. Packages ----------------------------------------------------------------------
if [ ! -x /usr/sbin/sge_qmaster ] || [ ! -x /usr/sbin/sge_execd ] || ! command -v qsub >/dev/null 2>&1; then
    say "installing gridengine-master gridengine-exec gridengine-client"
    export DEBIAN_FRONTEND=noninteractive
    for pkg in gridengine-common gridengine-client; do
        printf '%s\n' \
            "$pkg shared/gridengineconfig boolean true" \
            "$pkg shared/gridenginecell string $SGE_CELL" \
            "$pkg shared/gridenginemaster string $HOST" | debconf-set-selections \
            || die "debconf-set-selections failed"
    done
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q gridengine-master gridengine-exec gridengine-client >/dev/null \
        || die "apt-get install gridengine-master gridengine-exec gridengine-client failed"
fi
[ -s "$COMMON/act_qmaster" ] \
    || die "no cell at $COMMON (act_qmaster missing): the packages were installed without the debconf answers;" \
           "run 'dpkg-reconfigure gridengine-common' or purge and rerun this script"

# 2. Host aliases --------------------------------------------------------------------
master=$(cat "$COMMON/act_qmaster")
aliases="$master localhost"
if [ "$(cat "$COMMON/host_aliases" 2>/dev/null || true)" != "$aliases" ]; then
    say "writing $COMMON/host_aliases ($aliases)"
    printf '%s\n' "$aliases" >"$COMMON/host_aliases"
    chown sgeadmin:sgeadmin "$COMMON/host_aliases"
    # A running qmaster reads the aliases only at start.
    if pgrep -x sge_qmaster >/dev/null 2>&1; then
        say "restarting sge_qmaster to read the aliases"
        qconf -km >/dev/null 2>&1 || true
        i=0
        while pgrep -x sge_qmaster >/dev/null 2>&1; do
            i=$((i + 1)); [ "$i" -le 30 ] || die "sge_qmaster did not stop"; sleep 0.5
        done
    fi
fi

# 3. qmaster -------------------------------------------------------------------------
qmaster_up() { qconf -sh >/dev/null 2>&1; }
if ! qmaster_up; then
    say "starting sge_qmaster"
    /usr/sbin/sge_qmaster || die "sge_qmaster did not start; see $QMASTER_LOG"
    i=0
    until qmaster_up; do
        i=$((i + 1)); [ "$i" -le 60 ] || die "sge_qmaster does not answer; see $QMASTER_LOG"; sleep 0.5
    done
fi
say "sge_qmaster answers on $master"

# 4. Configuration -----------------------------------------------------------------------
TMP=$(mktemp -d /tmp/reproman-sge.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# Print a configuration (KEY VALUE lines, "\" continuations joined) with the
# KEY=VALUE pairs of $2 replaced; used for sge_conf(5) and sched_conf(5).
override() {
    awk -v pairs="$2" '
        BEGIN { n = split(pairs, kv, ";"); for (i = 1; i <= n; i++) { split(kv[i], p, "="); key = p[1]; sub(/^[^=]*=/, "", kv[i]); want[key] = kv[i] } }
        { line = line $0 }
        /\\$/ { sub(/\\$/, "", line); next }
        { split(line, f, /[ \t]+/); if (f[1] in want) { printf "%-32s %s\n", f[1], want[f[1]]; done[f[1]] = 1 } else print line; line = "" }
        END { for (k in want) if (!(k in done)) printf "%-32s %s\n", k, want[k] }
    ' "$1"
}

# Apply a change only when it changes something, so a rerun touches nothing.
same() { override "$1" "" | awk '{ $1 = $1; print }' >"$TMP/a"; awk '{ $1 = $1; print }' "$2" >"$TMP/b"; cmp -s "$TMP/a" "$TMP/b"; }
quiet() { out=$("$@" 2>&1) || die "$* failed: $out"; }
qconf -sconf global >"$TMP/current" || die "qconf -sconf global failed"
override "$TMP/current" "min_uid=0;min_gid=0;load_report_time=00:00:05;execd_params=ENABLE_ADDGRP_KILL=TRUE;reporting_params=accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00" >"$TMP/global"
if ! same "$TMP/current" "$TMP/global"; then
    say "setting the global configuration (min_uid 0, accounting flushed at once)"
    quiet qconf -Mconf "$TMP/global"
fi
qconf -ssconf >"$TMP/current" || die "qconf -ssconf failed"
override "$TMP/current" "schedule_interval=0:0:1;flush_submit_sec=1;flush_finish_sec=1;job_load_adjustments=NONE;load_adjustment_decay_time=0:0:0;max_pending_tasks_per_job=1000" >"$TMP/sched"
if ! same "$TMP/current" "$TMP/sched"; then
    say "setting the scheduler configuration (a run every second)"
    quiet qconf -Msconf "$TMP/sched"
fi

# 5. Hosts, parallel environment, queue ------------------------------------------------------
qconf -ss 2>/dev/null | grep -qx "$master" || quiet qconf -as "$master"
cat >"$TMP/pe" <<EOF
pe_name            $PE
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
if ! qconf -sp "$PE" >/dev/null 2>&1; then
    say "adding parallel environment $PE"
    quiet qconf -Ap "$TMP/pe"
fi
cat >"$TMP/$QUEUE" <<EOF
qname                 $QUEUE
hostlist              $master
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               $PE
rerun                 FALSE
slots                 $CPUS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
if ! qconf -sq "$QUEUE" >/dev/null 2>&1; then
    say "adding queue $QUEUE ($CPUS slots on $master)"
    quiet qconf -Aq "$TMP/$QUEUE"
else
    qconf -sq "$QUEUE" | awk '{ $1 = $1; print }' >"$TMP/have"
    awk '{ $1 = $1; print }' "$TMP/$QUEUE" >"$TMP/want"
    if ! cmp -s "$TMP/have" "$TMP/want"; then
        say "updating queue $QUEUE ($CPUS slots on $master)"
        quiet qconf -Mq "$TMP/$QUEUE"
    fi
fi

# 6. execd, readiness, proof ----------------------------------------------------------------------
if ! pgrep -x sge_execd >/dev/null 2>&1; then
    say "starting sge_execd"
    /usr/sbin/sge_execd || die "sge_execd did not start; see /var/spool/gridengine/execd/$master/messages"
fi
start=$(date +%s)
while :; do
    # Column 6 of qstat -f's queue line holds states (u: execd not heard from, E: error, d: disabled).
    line=$(qstat -f -q "$QUEUE" 2>/dev/null | awk -v q="$QUEUE@$master" '$1 == q')
    states=$(printf '%s\n' "$line" | awk '{ print $6 }')
    [ -n "$line" ] && [ -z "$states" ] && break
    case "$states" in
        *E*) say "queue in error state ($states); clearing it"; qmod -c "$QUEUE" >/dev/null 2>&1 || true ;;
        *d*) qmod -e "$QUEUE" >/dev/null 2>&1 || true ;;
    esac
    [ $(($(date +%s) - start)) -lt "$WAIT" ] \
        || die "queue $QUEUE not ready after ${WAIT} s (states: ${states:-no queue instance}); see $QMASTER_LOG"
    sleep 1
done
# Jobs left by a test run that was killed (a machine image taken mid-run, a
# cancelled CI) stay in the spool and hold the slots: the proof job below
# would then wait for ever. Only jobs this project submitted are removed.
stale=$(qstat -u '*' 2>/dev/null | awk 'NR > 2 && $3 ~ /^reproman-/ { print $1 }' | sort -u)
if [ -n "$stale" ]; then
    say "removing jobs left by an earlier run: $(echo $stale)"
    # shellcheck disable=SC2086
    qdel -f $stale >/dev/null 2>&1 || true
    i=0
    while qstat -u '*' 2>/dev/null | awk 'NR > 2 && $3 ~ /^reproman-/ { found = 1 } END { exit !found }'; do
        i=$((i + 1)); [ "$i" -le "$WAIT" ] || die "jobs of an earlier run are still listed after ${WAIT} s: $(qstat -u '*')"
        sleep 1
    done
fi
proof=$(cd /tmp && timeout "$WAIT" qsub -sync y -b y -N reproman-sge-check -o /dev/null -e /dev/null /bin/true 2>&1) \
    || die "a test job did not run: $proof; queue: $(qstat -f -u '*' 2>&1 | tr '\n' ' '); see $QMASTER_LOG"
say "ready: queue $QUEUE@$master with $CPUS slots, parallel environment $PE"

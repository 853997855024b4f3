#!/usr/bin/env bash
# scripts/start-slurm.sh (mfal; adapted from the team recipe) -- bring up a REAL single-node SLURM cluster on localhost
# (private munged + slurmctld + slurmd, all state/config/logs under $SLURM_HOME).
#
# Usage (caller's shell gets SLURM_CONF):
#     eval "$(bash start-slurm.sh)"
#     sbatch --wrap hostname ...
#     bash stop-slurm.sh
#
# stdout carries ONLY the line `export SLURM_CONF=...`; all progress goes to stderr.
# The same line is also written to $SLURM_HOME/env.sh.
#
# Idempotent: if the cluster under $SLURM_HOME is already up with the same
# config, it is reused (just re-checked); if it is partially up or the config
# changed (e.g. SLURM_FAKE_GPUS), our own daemons (found by PID file) are
# stopped and everything is started fresh with empty state.
#
# Environment knobs (all optional):
#   SLURM_HOME          dir for everything            (default /tmp/mfal-slurm)
#   SLURM_FAKE_GPUS     N>0: node advertises N fake gres/gpu, so --gres=gpu:K /
#                       --gpus=K jobs are accepted and run (no real GPU!) (default 0)
#   SLURM_CTLD_PORT     slurmctld port                (default 6817)
#   SLURMD_PORT         slurmd port                   (default 6818)
#   SLURM_CPUS          CPUs of the node              (default: nproc)
#   SLURM_REAL_MEMORY   RealMemory in MB              (default: 80% of MemTotal, min 1)
#   SLURM_START_TIMEOUT seconds to wait for idle node (default 60)
#   SLURM_SKIP_INSTALL  1: never run apt-get          (default 0)
#
# Needs root (apt-get, daemons run as SlurmUser=root). Tested on Debian 12
# (slurm-wlm 22.05.8, munge 0.5.15) without systemd and without cgroups.
set -euo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

log() { echo "[start-slurm] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SLURM_HOME="${SLURM_HOME:-/tmp/mfal-slurm}"
case "$SLURM_HOME" in
  /) die "SLURM_HOME must not be /" ;;
  /*) SLURM_HOME="${SLURM_HOME%/}" ;;
  *) die "SLURM_HOME must be an absolute path (got '$SLURM_HOME')" ;;
esac
FAKE_GPUS="${SLURM_FAKE_GPUS:-0}"
CTLD_PORT="${SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURMD_PORT:-6818}"
TIMEOUT="${SLURM_START_TIMEOUT:-60}"
NODE=localhost

ETC="$SLURM_HOME/etc"
CONF="$ETC/slurm.conf"
RUN="$SLURM_HOME/run"
LOGD="$SLURM_HOME/log"
MUNGE_DIR="$SLURM_HOME/munge"
MUNGE_SOCK="$MUNGE_DIR/munge.socket"
MUNGE_KEY="$MUNGE_DIR/munge.key"
MARKER="$SLURM_HOME/.slurm-local"   # stop-slurm.sh only rm -rf's dirs carrying it

# ---------------------------------------------------------------- 1. install
missing=""
for b in sbatch squeue sinfo scontrol scancel sacct slurmctld slurmd munged munge unmunge; do
  command -v "$b" >/dev/null 2>&1 || missing="$missing $b"
done
if [ -n "$missing" ]; then
  [ "${SLURM_SKIP_INSTALL:-0}" = 1 ] && die "missing:$missing (and SLURM_SKIP_INSTALL=1)"
  [ "$(id -u)" = 0 ] || die "missing:$missing; need root to apt-get install slurm-wlm munge"
  log "installing slurm-wlm + munge (missing:$missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -q)
  for i in 1 2 3; do apt-get "${apt_opts[@]}" update >&2 && break; log "apt-get update failed, retry $i"; sleep 5; done
  # --no-install-recommends: 7 packages instead of ~38 (no hdf5/rrd/ipmi/rocm plugins)
  apt-get "${apt_opts[@]}" install -y --no-install-recommends slurm-wlm munge >&2
  for b in sbatch slurmctld slurmd munged; do command -v "$b" >/dev/null || die "$b still missing after install"; done
fi
[ "$(id -u)" = 0 ] || die "must run as root (daemons run with SlurmUser=root)"

# ------------------------------------------------------------- helpers
# pid_of PIDFILE: print the pid iff it is alive, not a zombie, and its command
# line mentions $SLURM_HOME/ (i.e. it is OUR daemon, not a recycled pid).
pid_of() {
  local pidfile=$1 pid state
  pid=$(cat "$pidfile" 2>/dev/null | tr -dc '0-9')   # daemons delete their own pid file on exit
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)
  [ "$state" != Z ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$SLURM_HOME/" || return 1
  echo "$pid"
}
stop_pidfile() {  # stop_pidfile NAME PIDFILE : TERM, wait up to 15 s, then KILL
  local name=$1 pidfile=$2 pid _
  pid=$(pid_of "$pidfile") || { rm -f "$pidfile"; return 0; }
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do pid_of "$pidfile" >/dev/null || break; sleep 0.1; done
  if pid_of "$pidfile" >/dev/null; then log "$name did not exit, SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$pidfile"
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
node_state() { SLURM_CONF="$CONF" sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1; }
wait_idle() {
  local deadline=$((SECONDS + TIMEOUT)) st="" resumed=0
  while [ $SECONDS -lt $deadline ]; do
    st=$(node_state || true)
    case "$st" in idle|mix|alloc|comp) return 0 ;; esac   # busy is fine when reusing
    case "$st" in
      inval*) break ;;   # slurmd's registration was rejected (e.g. gres mismatch): hopeless
      drain*|drng*|down*|fail*)   # ReturnToService=2 should prevent this; nudge once
        [ $resumed = 1 ] || SLURM_CONF="$CONF" scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        resumed=1 ;;
    esac
    sleep 0.25
  done
  log "node state: '${st}' (wanted idle)"
  SLURM_CONF="$CONF" scontrol show node "$NODE" >&2 || true
  tail -n 20 "$LOGD/slurmctld.log" "$LOGD/slurmd.log" >&2 || true
  return 1
}
print_env() {
  echo "export SLURM_CONF=$CONF" > "$SLURM_HOME/env.sh"
  echo "export SLURM_CONF=$CONF"
}

# ------------------------------------------------------------- 2. config text
NCPU="${SLURM_CPUS:-$(nproc)}"
if [ -n "${SLURM_REAL_MEMORY:-}" ]; then MEM=$SLURM_REAL_MEMORY
else MEM=$(awk '/^MemTotal:/ {m=int($2/1024*0.8); print (m<1?1:m)}' /proc/meminfo); fi
GRES_NODE=""; GRES_TYPES=""
if [ "$FAKE_GPUS" -gt 0 ] 2>/dev/null; then GRES_NODE="Gres=gpu:$FAKE_GPUS"; GRES_TYPES="GresTypes=gpu"; fi

gen_conf() {
cat <<EOF
# generated by start-slurm.sh -- single-node test cluster, do not use in production
ClusterName=localcluster
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$SLURM_HOME/state
SlurmdSpoolDir=$SLURM_HOME/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGD/slurmctld.log
SlurmdLogFile=$LOGD/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
PlugStackConfig=$ETC/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# no slurmdbd: job completion records go to a text file; read them with 'sacct -c'
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGD/jobcomp.txt
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# do not drain the node if the hardware differs from what is configured here
SlurmdParameters=config_overrides
# fast turnaround for tests
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
$GRES_TYPES
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$NCPU RealMemory=$MEM $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
# second partition on the same node so CPU (labeling) and GPU (training) routing can be tested
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
}
FAKE_DEV="$SLURM_HOME/fakegpu"
gen_gres() {
  [ "$FAKE_GPUS" -gt 0 ] 2>/dev/null || return 0
  local files="$FAKE_DEV/nvidia0"
  [ "$FAKE_GPUS" -gt 1 ] && files="$FAKE_DEV/nvidia[0-$((FAKE_GPUS - 1))]"
  # gres/gpu DROPS file-less GPUs ("Removing file-less GPU"), and wants a char/block
  # device per GPU; the files are mknod'ed clones of /dev/null (c 1 3), see below.
  echo "AutoDetect=off"
  echo "NodeName=$NODE Name=gpu File=$files"
}

# ------------------------------------------------------------- 3. reuse?
mkdir -p "$SLURM_HOME"
# NB: fd 9 must not leak into the daemons (9>&- below), or they hold the lock forever
exec 9>"$SLURM_HOME/.lock"
flock -w 120 9 || die "another start/stop holds $SLURM_HOME/.lock"

new_conf=$(gen_conf)
new_gres=$(gen_gres)
running=0; all=1
for p in munged slurmctld slurmd; do
  if pid_of "$RUN/$p.pid" >/dev/null; then running=1; else all=0; fi
done
if [ $all = 1 ] && [ "$new_conf" = "$(cat "$CONF" 2>/dev/null)" ] && [ "$new_gres" = "$(cat "$ETC/gres.conf" 2>/dev/null)" ] \
   && SLURM_CONF="$CONF" scontrol ping 2>/dev/null | grep -q UP; then
  log "cluster already running under $SLURM_HOME, reusing it"
  wait_idle || die "running cluster is not healthy"
  print_env
  exit 0
fi
if [ $running = 1 ]; then
  log "partial cluster or changed config: restarting our daemons"
  stop_pidfile slurmd "$RUN/slurmd.pid"
  stop_pidfile slurmctld "$RUN/slurmctld.pid"
  stop_pidfile munged "$RUN/munged.pid"
fi

# ------------------------------------------------------------- 4. fresh layout
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  port_busy "$port" && die "port $port on 127.0.0.1 is in use by someone else (set SLURM_CTLD_PORT/SLURMD_PORT)"
done
# fresh state => job ids restart at 1, so also drop the old job-completion log,
# or 'sacct -c -j 1' would report the previous cluster's job 1
rm -rf "$SLURM_HOME/state" "$SLURM_HOME/spool" "$RUN" "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$LOGD/jobcomp.txt"
mkdir -p "$ETC" "$RUN" "$LOGD" "$MUNGE_DIR" "$SLURM_HOME/state" "$SLURM_HOME/spool/slurmd"
touch "$MARKER"
# munged: socket dir must be a+x, key must be 0600 and owned by the daemon user
chmod 755 "$SLURM_HOME" "$MUNGE_DIR" "$LOGD" "$RUN"
printf '%s\n' "$new_conf" > "$CONF"
rm -rf "$FAKE_DEV"
if [ -n "$new_gres" ]; then
  printf '%s\n' "$new_gres" > "$ETC/gres.conf"
  mkdir -p "$FAKE_DEV"
  for i in $(seq 0 $((FAKE_GPUS - 1))); do
    # a regular file also works, but slurmd then logs "is not a valid character or block device"
    mknod -m 666 "$FAKE_DEV/nvidia$i" c 1 3 2>/dev/null || touch "$FAKE_DEV/nvidia$i"
  done
else
  rm -f "$ETC/gres.conf"
fi
: > "$ETC/plugstack.conf"   # don't pick up /etc/slurm/plugstack.conf.d/*
export SLURM_CONF="$CONF"

# ------------------------------------------------------------- 5. munged
if [ ! -s "$MUNGE_KEY" ]; then
  log "creating munge key $MUNGE_KEY"
  (umask 077; head -c 128 /dev/urandom > "$MUNGE_KEY")
fi
chmod 600 "$MUNGE_KEY"
# --force: munged refuses on "insecure" dirs/stale sockets in some containers; this
# is a throw-away test cluster. Private --socket, so any system munged is untouched.
munged 9>&- --force --socket="$MUNGE_SOCK" --key-file="$MUNGE_KEY" \
  --pid-file="$RUN/munged.pid" --log-file="$LOGD/munged.log" --seed-file="$MUNGE_DIR/munged.seed" \
  || { tail -n 5 "$LOGD/munged.log" >&2; die "munged failed to start"; }
for _ in $(seq 1 50); do munge -S "$MUNGE_SOCK" -n 2>/dev/null | unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
munge -S "$MUNGE_SOCK" -n | unmunge -S "$MUNGE_SOCK" >/dev/null || die "munge round-trip failed"
log "munged up (pid $(cat "$RUN/munged.pid"))"

# ------------------------------------------------------------- 6. slurmctld
slurmctld 9>&- -f "$CONF" -i \
  || { tail -n 20 "$LOGD/slurmctld.log" >&2; die "slurmctld failed to start"; }
deadline=$((SECONDS + TIMEOUT))
until scontrol ping 2>/dev/null | grep -q UP; do
  [ $SECONDS -lt $deadline ] || { tail -n 20 "$LOGD/slurmctld.log" >&2; die "slurmctld not answering"; }
  sleep 0.2
done
log "slurmctld up (pid $(cat "$RUN/slurmctld.pid"))"

# ------------------------------------------------------------- 7. slurmd
# -N: the node is called 'localhost' whatever the machine's hostname is
slurmd 9>&- -f "$CONF" -N "$NODE" \
  || { tail -n 20 "$LOGD/slurmd.log" >&2; die "slurmd failed to start"; }
wait_idle || die "node did not become idle within ${TIMEOUT}s"
log "slurmd up (pid $(cat "$RUN/slurmd.pid")); node $NODE idle"
print_env

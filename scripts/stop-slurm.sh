#!/usr/bin/env bash
# stop-slurm.sh -- tear down the cluster started by start-slurm.sh.
#  * cancels all jobs still known to our slurmctld (so no slurmstepd/job is orphaned),
#  * stops slurmd, slurmctld, munged -- ONLY the pids recorded in $SLURM_HOME/run/*.pid,
#    and only if that pid's command line mentions $SLURM_HOME (guards against pid reuse),
#  * removes $SLURM_HOME (config, state, spool, key, logs) -- only if it carries the
#    .slurm-local marker that start-slurm.sh writes.
# Env: SLURM_HOME (default /tmp/mfal-slurm); SLURM_KEEP_LOGS=1 keeps $SLURM_HOME/log.
# Safe to run when nothing is running, and to run twice.
set -euo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

log() { echo "[stop-slurm] $*" >&2; }
SLURM_HOME="${SLURM_HOME:-/tmp/mfal-slurm}"
case "$SLURM_HOME" in
  /) log "refusing SLURM_HOME=/"; exit 1 ;;
  /*) SLURM_HOME="${SLURM_HOME%/}" ;;
  *) log "SLURM_HOME must be absolute"; exit 1 ;;
esac
CONF="$SLURM_HOME/etc/slurm.conf"
RUN="$SLURM_HOME/run"
[ -d "$SLURM_HOME" ] || { log "nothing at $SLURM_HOME"; exit 0; }

exec 9>"$SLURM_HOME/.lock"
flock -w 30 9 || log "WARNING: could not take $SLURM_HOME/.lock, going on anyway"

pid_of() {  # same ownership test as start-slurm.sh
  local pidfile=$1 pid state
  pid=$(cat "$pidfile" 2>/dev/null | tr -dc '0-9')   # daemons delete their own pid file on exit
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)
  [ "$state" != Z ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$SLURM_HOME/" || return 1
  echo "$pid"
}
stop_pidfile() {
  local name=$1 pidfile=$2 pid _
  pid=$(pid_of "$pidfile") || { rm -f "$pidfile"; return 0; }
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do pid_of "$pidfile" >/dev/null || break; sleep 0.1; done
  if pid_of "$pidfile" >/dev/null; then log "$name did not exit in 15 s, SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$pidfile"
}

# 1. cancel leftover jobs while slurmctld+slurmd are still up (KillWait=5 in our conf)
if pid_of "$RUN/slurmctld.pid" >/dev/null && [ -f "$CONF" ]; then
  export SLURM_CONF="$CONF"
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 40); do
      [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break
      sleep 0.5
    done
  fi
fi

# 2. daemons, in dependency order
stop_pidfile slurmd "$RUN/slurmd.pid"
stop_pidfile slurmctld "$RUN/slurmctld.pid"
stop_pidfile munged "$RUN/munged.pid"

# 3. state
if [ -f "$SLURM_HOME/.slurm-local" ]; then
  if [ "${SLURM_KEEP_LOGS:-0}" = 1 ]; then
    find "$SLURM_HOME" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +
    log "removed state, kept logs in $SLURM_HOME/log"
  else
    rm -rf "$SLURM_HOME"
    log "removed $SLURM_HOME"
  fi
else
  log "$SLURM_HOME has no .slurm-local marker; not deleting it"
fi

#!/usr/bin/env bash
# One background CP2K lane: label planned cells, LF (restricted PBE, no +U) then HF (UKS PBE+U), one core.
#
#   STOP=15:20 nohup nice -n 19 bash scripts/cp2k_lane.sh lf:cp2k-li50-0-01 hf:cp2k-li50-0-01 ... > lane.log 2>&1 &
#
# Each step is FIDELITY:CELL_ID of the plan in make_cp2k_science_set.py. Resumable: cp2k_label_cells.py skips a
# cell/fidelity already in its log (mfal/data/science/cp2k_cells_runs.jsonl) and reuses finished CP2K runs.
# STOP (HH:MM UTC) starts no step at or after it. Frames with status ok are appended to cp2k_cells.extxyz;
# afterwards pair them (cp2k_label_cells.py pair ...) and report the gaps (cp2k_gap_stats.py).
# Give it a core of its own: the labeler's wall-time cap (--walltime of cp2k_label_cells.py) counts wall seconds,
# so a CP2K starved by other jobs (even at nice 19) hits the cap and restarts from its wavefunction.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export OMP_NUM_THREADS=1
for step in "$@"; do  # every step is checked before any CP2K starts
  if [[ "${step%%:*}" != lf && "${step%%:*}" != hf || "$step" != *:cp2k-* ]]; then
    echo "cp2k_lane.sh: step '$step': expected lf:CELL_ID or hf:CELL_ID (e.g. lf:cp2k-mn25-0-03)" >&2
    exit 2
  fi
done
for step in "$@"; do
  fid="${step%%:*}"
  cell="${step#*:}"
  extra=()
  [[ "$fid" == lf ]] && extra=(--no-u)
  "$PY" scripts/cp2k_label_cells.py --fidelity "$fid" "${extra[@]}" --cells "$cell" ${STOP:+--stop-at "$STOP"} \
    || echo "step $step: exit $?" >&2
  if [[ -n "${STOP:-}" && "$(date -u +%H:%M)" > "$STOP" ]]; then
    echo "STOP $STOP reached after $step"
    break
  fi
done

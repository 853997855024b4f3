#!/usr/bin/env bash
# Idempotent CP2K setup for mfal's cp2k labeler (Debian bookworm: cp2k 2023.1).
#
#   bash scripts/setup-cp2k.sh            # installs cp2k + cp2k-data if needed, builds the pymatgen data dir
#   eval "$(bash scripts/setup-cp2k.sh --env)"   # only print the env exports (after a setup)
#
# 1. apt-get install cp2k cp2k-data (only if cp2k.psmp is missing; needs root)
# 2. builds pymatgen's per-element basis/potential YAML database from /usr/share/cp2k
#    (`pmg config --cp2k /usr/share/cp2k DIR`) in ${MFAL_CP2K_DATA:-$HOME/.cache/mfal/cp2k}.
#    atomate2/pymatgen name basis sets and potentials by hashes of these entries; without it input
#    generation fails with "No explicit basis found for Fe and matching has failed".
# 3. smoke test (H2 energy), skip with SKIP_SMOKE=1.
# mfal's Cp2kLabeler finds the data dir at the same default path (or $MFAL_CP2K_DATA) and sets
# PMG_CP2K_DATA_DIR / PMG_DEFAULT_CP2K_FUNCTIONAL itself, so no env file has to be sourced.
set -euo pipefail

DATA_DIR="${MFAL_CP2K_DATA:-$HOME/.cache/mfal/cp2k}"
PMG_DIR="$DATA_DIR/pmg_cp2k_data"

if [[ "${1:-}" == "--env" ]]; then
  echo "export MFAL_CP2K_DATA=$DATA_DIR"
  echo "export PMG_CP2K_DATA_DIR=$PMG_DIR"
  echo "export PMG_DEFAULT_CP2K_FUNCTIONAL=PBE"
  echo "unset CP2K_DATA_DIR"
  exit 0
fi

# ---- 1. packages ----------------------------------------------------------------------------
if ! command -v cp2k.psmp >/dev/null; then
  echo ">> cp2k.psmp not found: installing cp2k cp2k-data" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3 -q)
  $SUDO apt-get "${apt_opts[@]}" update
  $SUDO apt-get "${apt_opts[@]}" install -y --no-install-recommends cp2k cp2k-data
else
  echo ">> cp2k.psmp present: $(command -v cp2k.psmp)" >&2
fi
command -v cp2k.psmp >/dev/null || { echo "!! cp2k.psmp still missing after install" >&2; exit 1; }
[[ -d /usr/share/cp2k ]] || { echo "!! /usr/share/cp2k missing (package cp2k-data)" >&2; exit 1; }

# ---- 2. pymatgen CP2K data DB -----------------------------------------------------------------
# `pmg config --cp2k SRC DIR` asks "Destination directory exists. Continue (y/n)?" when DIR exists:
# build into a fresh temporary dir next to the target and move it into place (atomic, never prompts).
if [[ ! -s "$PMG_DIR/Fe" ]]; then
  echo ">> building pymatgen CP2K basis/potential DB in $PMG_DIR (~15 s)" >&2
  mkdir -p "$DATA_DIR"
  tmp="$DATA_DIR/.pmg_cp2k_data.tmp.$$"
  rm -rf "$tmp"
  PMG=$(command -v pmg || true)
  if [[ -n "$PMG" ]]; then
    "$PMG" config --cp2k /usr/share/cp2k "$tmp" > "$DATA_DIR/pmg_config_cp2k.log" 2>&1
  else
    python -m pymatgen.cli.pmg config --cp2k /usr/share/cp2k "$tmp" > "$DATA_DIR/pmg_config_cp2k.log" 2>&1
  fi
  [[ -s "$tmp/Fe" ]] || { echo "!! pmg config --cp2k failed, see $DATA_DIR/pmg_config_cp2k.log" >&2; exit 1; }
  rm -rf "$PMG_DIR"
  mv "$tmp" "$PMG_DIR"
else
  echo ">> pymatgen CP2K DB present: $PMG_DIR" >&2
fi

# ---- 3. smoke test ------------------------------------------------------------------------------
if [[ "${SKIP_SMOKE:-0}" != 1 ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cat > "$tmp/h2.inp" <<'INP'
&GLOBAL
  PROJECT H2
  RUN_TYPE ENERGY
&END GLOBAL
&FORCE_EVAL
  &DFT
    BASIS_SET_FILE_NAME BASIS_MOLOPT
    POTENTIAL_FILE_NAME GTH_POTENTIALS
    &MGRID
      CUTOFF 200
    &END MGRID
    &XC
      &XC_FUNCTIONAL PBE
      &END XC_FUNCTIONAL
    &END XC
    &POISSON
      PERIODIC NONE
      PSOLVER MT
    &END POISSON
  &END DFT
  &SUBSYS
    &CELL
      ABC 5 5 5
      PERIODIC NONE
    &END CELL
    &COORD
      H 0 0 0
      H 0 0 0.74
    &END COORD
    &KIND H
      BASIS_SET DZVP-MOLOPT-SR-GTH
      POTENTIAL GTH-PBE-q1
    &END KIND
  &END SUBSYS
&END FORCE_EVAL
INP
  (cd "$tmp" && OMP_NUM_THREADS=1 cp2k.psmp -i h2.inp > h2.out 2>&1) || true
  if grep -q "PROGRAM ENDED" "$tmp/h2.out"; then
    echo ">> smoke test OK: $(grep 'ENERGY| Total FORCE_EVAL' "$tmp/h2.out" | sed 's/^ *//')" >&2
  else
    echo "!! smoke test FAILED:" >&2; tail -20 "$tmp/h2.out" >&2; exit 1
  fi
fi
echo ">> CP2K ready; data dir $PMG_DIR" >&2

#!/usr/bin/env bash
# `make bench`: the default study and the confounding sweep, end to end, with
# reports and figures. Resumes where a previous run stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RESULTS=${RESULTS:-results}
start=$(date +%s)
status=0
$BIN/mlmbias run configs/default.toml --out "$RESULTS/default" || status=$?
$BIN/mlmbias run configs/confounding_sweep.toml --out "$RESULTS/confounding_sweep" || status=$?
$BIN/mlmbias report "$RESULTS/default" --figures figures --strict || status=$?
$BIN/mlmbias report "$RESULTS/confounding_sweep" --figures figures/confounding_sweep \
  --no-pair-plot --strict || status=$?
end=$(date +%s)
echo
echo "make bench finished in $((end - start)) s (exit status $status)"
echo "  results: $RESULTS/default, $RESULTS/confounding_sweep (Parquet parts + manifest.json)"
echo "  reports: $RESULTS/default/report.md, $RESULTS/confounding_sweep/report.md"
echo "  tables:  $RESULTS/default/summary.csv, $RESULTS/confounding_sweep/summary.csv"
echo "  figures: figures/ and figures/confounding_sweep/"
exit $status

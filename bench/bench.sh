#!/usr/bin/env bash
# `make bench`: the default study, the confounding sweep, the contextual
# (several-covariate) study, the few-cluster study, the random-slope study and
# the non-normal group effects study, end to end, with reports and figures. Resumes where a previous run stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RESULTS=${RESULTS:-results}
start=$(date +%s)
status=0
$BIN/mlmbias run configs/default.toml --out "$RESULTS/default" || status=$?
$BIN/mlmbias run configs/confounding_sweep.toml --out "$RESULTS/confounding_sweep" || status=$?
$BIN/mlmbias run configs/contextual.toml --out "$RESULTS/contextual" || status=$?
$BIN/mlmbias run configs/few_clusters.toml --out "$RESULTS/few_clusters" || status=$?
$BIN/mlmbias run configs/random_slopes.toml --out "$RESULTS/random_slopes" || status=$?
$BIN/mlmbias run configs/nonnormal_effects.toml --out "$RESULTS/nonnormal_effects" || status=$?
$BIN/mlmbias report "$RESULTS/default" --figures figures --strict || status=$?
$BIN/mlmbias report "$RESULTS/confounding_sweep" --figures figures/confounding_sweep \
  --no-pair-plot --strict || status=$?
$BIN/mlmbias report "$RESULTS/contextual" --figures figures/contextual --no-pair-plot \
  --strict || status=$?
$BIN/mlmbias report "$RESULTS/few_clusters" --figures figures/few_clusters --no-pair-plot \
  --strict || status=$?
$BIN/mlmbias report "$RESULTS/random_slopes" --figures figures/random_slopes --no-pair-plot \
  --strict || status=$?
$BIN/mlmbias report "$RESULTS/nonnormal_effects" --figures figures/nonnormal_effects \
  --no-pair-plot --strict || status=$?
end=$(date +%s)
echo
echo "make bench finished in $((end - start)) s (exit status $status)"
for study in default confounding_sweep contextual few_clusters random_slopes nonnormal_effects; do
  echo "  $study: $RESULTS/$study (Parquet parts + manifest.json), report.md, summary.csv"
done
echo "  figures: figures/ (default) and figures/<study>/ for the others"
exit $status

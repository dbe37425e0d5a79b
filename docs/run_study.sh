#!/usr/bin/env bash
# The study recorded in docs/results.md: every command, in order, on one shared study folder.
# GRPO baselines and warm-ups are shared between the compare calls (same settings => reused).
set -euo pipefail
OUT=${OUT:-runs/study}
SEEDS=${SEEDS:-8}
ICPO=${ICPO:-.venv/bin/icpo}
icpo() { $ICPO "$@"; }
icpo compare --seeds "$SEEDS" --reward-noise 0   --alpha 0.5 --combine reward --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0.2 --alpha 0.5 --combine reward --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0   --alpha 0.25 --combine reward --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0   --alpha 1.0 --combine reward --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0   --alpha 0.5 --method rank --combine reward --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0   --alpha 0.5 --combine advantage --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0   --alpha 0.5 --direction high --combine reward --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0.2 --alpha 1.0 --combine reward --out "$OUT"
icpo compare --seeds "$SEEDS" --reward-noise 0.2 --alpha 0.5 --combine advantage --out "$OUT"

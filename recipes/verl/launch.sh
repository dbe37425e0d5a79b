#!/usr/bin/env bash
# Launch the ICPO recipe (or its GRPO baseline) on verl 0.9.1, on one node or several.
#
#   recipes/verl/launch.sh check icpo|grpo [overrides]   compose + validate the config (any machine, no GPU)
#   recipes/verl/launch.sh head                          on node 0: start the Ray head
#   recipes/verl/launch.sh worker HEAD_IP                on every other node: join the head's Ray cluster
#   recipes/verl/launch.sh train icpo|grpo [overrides]   on node 0: run training over the whole cluster
#
# One node: `train` alone (verl starts a local Ray). Several: `head` on node 0, `worker <node-0 IP>` on the
# others, then `NNODES=<nodes> ... train` on node 0 (verl's driver joins the running cluster).
# Environment (defaults in brackets): NNODES [1], GPUS_PER_NODE [8], MODEL_PATH [Qwen/Qwen2.5-7B],
# RAY_PORT [6379], PYTHON [python3]. Data is read from ~/data/rlpr (docs/scale.md); anything after the
# recipe name is passed to verl as a Hydra override, e.g. algorithm.icpo.alpha=0.3 or data.train_files=...
set -euo pipefail

RECIPE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
NNODES="${NNODES:-1}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-7B}"
RAY_PORT="${RAY_PORT:-6379}"

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" >&2; exit 2; }

recipe_name() {
    case "${1:-}" in
        icpo | grpo) echo "${1}_qwen2_5_7b_rlpr" ;;
        *) echo "choose the recipe: icpo or grpo (got '${1:-}')" >&2; exit 2 ;;
    esac
}

# The overrides every launch passes: cluster shape, model, and the reward file's absolute path.
SITE_OVERRIDES=(
    "trainer.nnodes=${NNODES}" "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
    "actor_rollout_ref.model.path=${MODEL_PATH}" "reward.custom_reward_function.path=${RECIPE_DIR}/reward.py"
)

command="${1:-}"
shift || true
case "${command}" in
    check)
        name="$(recipe_name "${1:-}")"; shift
        exec "${PYTHON}" -m icpo.verl.recipe "${RECIPE_DIR}" "${name}" "${SITE_OVERRIDES[@]}" "$@"
        ;;
    head)
        exec ray start --head --port="${RAY_PORT}" --num-gpus="${GPUS_PER_NODE}"
        ;;
    worker)
        [ -n "${1:-}" ] || usage
        exec ray start --address="${1}:${RAY_PORT}" --num-gpus="${GPUS_PER_NODE}"
        ;;
    train)
        name="$(recipe_name "${1:-}")"; shift
        exec "${PYTHON}" -m verl.trainer.main_ppo --config-path="${RECIPE_DIR}" --config-name="${name}" \
            "${SITE_OVERRIDES[@]}" "$@"
        ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# The main job: set the machine up (idempotent), then run an RLM over the bundled report.
# With --model M (or a provider key such as OPENAI_API_KEY) it uses that real model;
# otherwise a scripted demo model, offline, labelled as such. Arguments go to
# `rlm-sandbox demo`, e.g. `bash scripts/demo.sh --model gpt-4o-mini`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
export LITELLM_LOCAL_MODEL_COST_MAP="${LITELLM_LOCAL_MODEL_COST_MAP:-True}"
exec .venv/bin/rlm-sandbox demo "$@"

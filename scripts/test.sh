#!/usr/bin/env bash
# Run the test suite the way CI does: set the machine up (idempotent), then pytest.
# Arguments go to pytest, e.g. `bash scripts/test.sh -k image -x`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

export TESTCONTAINERS_RYUK_DISABLED=true  # its reaper image cannot be pulled without a registry
export LITELLM_LOCAL_MODEL_COST_MAP=True  # litellm must not fetch its price list at import

rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that counts as a failure (check the path or -k filter)" >&2
    exit 1
fi
exit "$rc"

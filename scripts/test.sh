#!/usr/bin/env bash
# Run the test suite the way CI does: set the machine up (idempotent), then pytest.
#
#   bash scripts/test.sh                      the full run (CI): every test, Docker tests on Docker;
#                                             deselecting anything (-m, -k, --deselect) is an error
#   bash scripts/test.sh --fast               the fast tier: the tests that need no Docker daemon, plus
#                                             the loop tests on the local sandbox (tests/tiers.py)
#   bash scripts/test.sh tests/test_x.py -k name -x    part of the suite: name the files, filter freely
#
# Other arguments go to pytest.
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

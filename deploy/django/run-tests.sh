#!/usr/bin/env bash
# Runs the vigil-django test suite: creates .venv if missing, installs the
# package with its test extra (skipped when already installed and unchanged),
# runs pytest. Needs python3 (>= 3.9, with venv) and redis-server on PATH.
# Extra arguments go to pytest, e.g. ./run-tests.sh -k lockdown -x
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi

# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.vigil-django-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! .venv/bin/python -c "import vigil_django, pytest_django, requests" 2>/dev/null; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "run-tests.sh: redis-server not found; install it (Debian/Ubuntu: apt-get install redis-server)" >&2
    exit 1
fi

exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Runs the vigil-django test suite: creates .venv if missing, installs the
# package with its test extra (skipped when already installed and unchanged),
# runs pytest. Needs python3 (>= 3.9, with venv) and redis-server on PATH.
# Extra arguments go to pytest, e.g. ./run-tests.sh -k lockdown -x
#
# VIGIL_DJANGO_MIN=1 runs the suite against the oldest Django the package
# supports (4.2) instead, in .venv-min, with the package installed the way
# a user installs it (`pip install ./deploy/django`, not editable) and the
# tests importing that installed copy, not the source tree.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
venv=.venv spec=(-e '.[test]')
if [ "${VIGIL_DJANGO_MIN:-}" = 1 ]; then
    venv=.venv-min spec=('.[test]' 'Django>=4.2,<4.3')
fi
if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
fi

# Reinstall only when the package changed since the last install.
stamp=$venv/.vigil-django-installed
# The import check runs from / so that it finds the installed copy, not
# the source directory.
python=$PWD/$venv/bin/python
if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml vigil_django -newer "$stamp" -print -quit)" ] ||
    ! (cd / && "$python" -c "import vigil_django, pytest_django, requests") 2>/dev/null; then
    rm -rf build # setuptools' leftovers would be installed with a plain install
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${spec[@]}"
    rm -rf build
    touch "$stamp"
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "run-tests.sh: redis-server not found; install it (Debian/Ubuntu: apt-get install redis-server)" >&2
    exit 1
fi

if [ "$venv" = .venv-min ]; then
    # The tests run from a copy without the package's source, so that
    # vigil_django is the installed copy (tests/test_installed.py checks).
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp -r tests example pyproject.toml "$work/"
    venv=$PWD/$venv
    cd "$work"
    VIGIL_DJANGO_EXPECT_INSTALLED=1 "$venv/bin/python" -m pytest "$@"
    exit
fi
exec "$venv/bin/python" -m pytest "$@"

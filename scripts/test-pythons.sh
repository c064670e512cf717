#!/bin/sh
# Run the test suite on every supported Python (setup.cfg's classifiers) this machine has,
# each in its own .venv-3.X, and say which are missing. `make test-pythons`; not part of
# `make test`, which stays one suite on one Python. Downloads no interpreter: a version is
# found on PATH (python3.X) or among pyenv's installed versions.
# Usage: scripts/test-pythons.sh [3.11 3.12 ...] (default: 3.11 3.12 3.13); PYTEST_ARGS
# passes extra pytest arguments, e.g. PYTEST_ARGS='-m "not slow"'.
set -u
versions=${*:-3.11 3.12 3.13}
find_python() {
    if command -v "python$1" >/dev/null 2>&1 && "python$1" -c '' 2>/dev/null; then
        command -v "python$1"; return 0
    fi
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for candidate in "$root"/versions/"$1".*/bin/"python$1"; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}
missing="" failed=""
for v in $versions; do
    if ! python=$(find_python "$v"); then missing="$missing $v"; continue; fi
    echo "== Python $v ($python)"
    venv=".venv-$v"
    if ! { [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"; } \
        || ! "$venv/bin/python" -m pip install --quiet -e '.[test,bench]' \
        || ! eval "\"$venv/bin/python\" -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider ${PYTEST_ARGS:-}"
    then failed="$failed $v"; fi
done
[ -n "$missing" ] && echo "test-pythons: NOT TESTED (no interpreter here):$missing" >&2
[ -n "$failed" ] && { echo "test-pythons: FAILED on:$failed" >&2; exit 1; }
exit 0

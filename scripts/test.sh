#!/usr/bin/env bash
# The whole test suite (sets everything up first). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ruff check .
ruff format --check .
mypy
python -m pytest "$@"

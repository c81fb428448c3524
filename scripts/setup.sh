# Sourced by scripts/build.sh, scripts/test.sh and scripts/bench.sh: installs what the
# project needs (idempotent, fast when nothing changed) and puts it first on PATH.
#   - .venv: Python 3.11+ with requirements-dev.txt (exact pins) and the construct library (editable)
#   - node_modules: the pinned CDK CLI (package-lock.json)
#   - tools/node22: Node 22 from the npm registry, when the machine's Node is older than 22
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p .setup

_stamp_ok() { [ -f ".setup/$1" ] && [ "$(cat ".setup/$1")" = "$2" ]; }
_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- Node: jsii and the CDK CLI need Node >= 22 -----------------------------------------
node_major() { "${1:-node}" --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }
if [ "$(node_major || echo 0)" -lt 22 ]; then
  if ! _stamp_ok node22 "$(_hash tools/node22/package-lock.json)" || [ ! -x tools/node22/node_modules/.bin/node ]; then
    echo "setup: system Node $(node --version 2>/dev/null || echo none) is older than 22; installing Node 22 from npm" >&2
    (cd tools/node22 && npm ci --no-audit --no-fund --loglevel=error >&2)
    _hash tools/node22/package-lock.json > .setup/node22
  fi
  export PATH="$ROOT/tools/node22/node_modules/.bin:$PATH"
fi

# --- CDK CLI ------------------------------------------------------------------------------
if ! _stamp_ok npm "$(_hash package-lock.json)" || [ ! -x node_modules/.bin/cdk ]; then
  echo "setup: installing the pinned CDK CLI" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  _hash package-lock.json > .setup/npm
fi
export PATH="$ROOT/node_modules/.bin:$PATH"

# --- Python -------------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python 3.11 or newer is required, $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
py_hash="$(_hash requirements.txt requirements-dev.txt constructs/pyproject.toml lambda_src/*/requirements.txt)"
if ! _stamp_ok python "$py_hash"; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c 'import aws_cdk, cdk_nag, mlops_constructs, cfnlint, pytest, sklearn' \
    || { echo "setup: Python packages failed to install" >&2; exit 1; }
  echo "$py_hash" > .setup/python
fi
export PATH="$ROOT/.venv/bin:$PATH"
export VIRTUAL_ENV="$ROOT/.venv"

# --- Offline, quiet CDK -------------------------------------------------------------------
export CDK_DISABLE_VERSION_CHECK=1       # no registry look-up for a newer CLI
export CDK_DISABLE_CLI_TELEMETRY=true    # no telemetry calls from the CLI
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1

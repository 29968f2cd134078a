#!/usr/bin/env bash
# A virtual environment with OpenAI's Python SDK (the real client the gateway test runs);
# prints its python. Reused when it already imports openai.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-openai
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openai>=1.40,<4" >&2
fi
echo "$PWD/$venv/bin/python"

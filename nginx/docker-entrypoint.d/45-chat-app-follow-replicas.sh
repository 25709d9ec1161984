#!/bin/sh
# nginx resolves an upstream's name only when it loads its configuration, but
# chat-ui replicas come and go (`docker compose up --scale chat-ui=N`, a restart
# with a new address). Watch the name in the background and reload nginx when its
# addresses change; a reload is graceful, so open reply streams run to their end.
set -eu

host="${CHAT_UI_UPSTREAM%:*}"
interval="${UPSTREAM_RECHECK_SECONDS:-3}"

addresses() {
    getent ahostsv4 "$host" 2>/dev/null | awk '{ print $1 }' | sort -u | tr '\n' ' '
}

(
    known="$(addresses)"
    while sleep "$interval"; do
        current="$(addresses)"
        # No answer at all is a DNS hiccup or every replica restarting: keep the last set.
        if [ -n "$current" ] && [ "$current" != "$known" ]; then
            if nginx -s reload 2>/dev/null; then
                echo "$0: $host is now $current; nginx reloaded" >&2
                known="$current"
            fi
        fi
    done
) &

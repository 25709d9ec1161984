#!/bin/sh
# Compose's one-shot `secrets` service: before anything else starts, make sure the
# `secrets` volume holds one file per secret, which the services read through
# POSTGRES_PASSWORD_FILE, SERVICE_TOKEN_FILE and SESSION_SECRET_FILE (the convention
# of the official images). For each secret, in this order:
#   1. a value given in the environment (.env) is written to its file (so .env wins);
#   2. else a file already in the volume is kept (so sessions and the database
#      password survive `down` and `up`);
#   3. else, in development, a random one is generated;
#      in production (APP_ENV=production), this step fails, naming the variable, and
#      nothing else starts.
# Files belong to uid 10001, the user db-api and chat-ui run as, mode 0400;
# PostgreSQL's entrypoint reads its file as root before dropping privileges.
set -eu

dir="${SECRETS_DIR:-/run/secrets/chat-app}"
owner="${SECRETS_OWNER:-10001:10001}"
app_env="${APP_ENV:-development}"
umask 077

# Values people leave in by mistake, and anything short enough to guess.
not_a_secret() {
    case "$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" in
        "" | changeme | change-me | change_me | secret | password) return 0 ;;
    esac
    [ "${#1}" -lt 32 ]
}

generate() {  # 43 URL-safe characters from 32 random bytes
    head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

failed=0
for name in POSTGRES_PASSWORD SERVICE_TOKEN SESSION_SECRET; do
    eval "value=\${${name}:-}"
    file="$dir/$name"
    if [ -n "$value" ]; then
        if [ "$app_env" = production ] && not_a_secret "$value"; then
            echo "secrets: APP_ENV=production refuses $name: it is a placeholder or shorter than 32 characters." >&2
            failed=1
            continue
        fi
        printf '%s' "$value" > "$file.new"
        mv "$file.new" "$file"
        echo "secrets: $name from the environment"
    elif [ -s "$file" ]; then
        echo "secrets: $name kept from the secrets volume"
    elif [ "$app_env" = production ]; then
        echo "secrets: APP_ENV=production needs $name: set it in .env (see .env.example)." >&2
        failed=1
        continue
    else
        generate > "$file.new"
        mv "$file.new" "$file"
        echo "secrets: $name generated (development; kept in the secrets volume)"
    fi
    chown "$owner" "$file"
    chmod 0400 "$file"
done
exit "$failed"

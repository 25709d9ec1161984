#!/usr/bin/env bash
# Back up a running compose stack into one archive, the same as `make backup` writes:
# database.dump (pg_dump's custom format: one snapshot, consistent while the app
# serves) and secrets.env (SESSION_SECRET, so whoever was signed in stays signed in).
# The archive holds that secret: it is made mode 0600. Run from anywhere; compose's
# own variables (COMPOSE_FILE, COMPOSE_PROJECT_NAME) are honoured.
#
#   deploy/compose/backup.sh [FILE]   default: backups/chat-YYYYmmdd-HHMMSS.tar
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
output="${1:-$repo/backups/chat-$(date +%Y%m%d-%H%M%S).tar}"
[[ $output == /* ]] || output="$PWD/$output"
if [[ -e $output ]]; then
  echo "backup: $output exists already; choose another FILE" >&2
  exit 1
fi
umask 077
mkdir -p "$(dirname "$output")"
work="$(mktemp -d "$(dirname "$output")/.backup-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$repo"

# Inside the container pg_dump signs in over the local socket as the image's superuser.
docker compose exec -T postgres sh -c \
  'exec pg_dump --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --format=custom' \
  > "$work/database.dump"
session_secret="$(docker compose exec -T postgres cat /run/secrets/chat-app/SESSION_SECRET)"
printf 'SESSION_SECRET=%s\n' "$session_secret" > "$work/secrets.env"
tar -C "$work" -cf "$work/archive.tar" database.dump secrets.env
mv "$work/archive.tar" "$output"
echo "Backup written to $output"
echo "It holds SESSION_SECRET, which signs sign-in cookies: keep it private."

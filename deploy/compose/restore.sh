#!/usr/bin/env bash
# Restore a backup (from `make backup` or deploy/compose/backup.sh) into the compose
# stack: the database, then SESSION_SECRET into the `secrets` volume, then everything
# starts again (db-api applies any newer migrations first). chat-ui and db-api are
# stopped meanwhile. A database that already has users is left alone unless --force;
# the dump goes into a scratch database first, swapped in only once complete.
#
#   deploy/compose/restore.sh FILE [--force]
set -euo pipefail

usage="usage: deploy/compose/restore.sh FILE [--force]"
archive="${1:?$usage}"
force="${2:-}"
[[ -z $force || $force == --force ]] || { echo "$usage" >&2; exit 2; }
[[ $archive == /* ]] || archive="$PWD/$archive"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! tar -C "$work" -xf "$archive" database.dump secrets.env; then
  echo "restore: $archive is not a backup made by backup.sh or \`make backup\`" >&2
  exit 1
fi
session_secret="$(sed -n 's/^SESSION_SECRET=//p' "$work/secrets.env")"
if [[ -z $session_secret ]]; then
  echo "restore: $archive lacks SESSION_SECRET in secrets.env" >&2
  exit 1
fi
cd "$(dirname "$0")/../.."

# sql DATABASE STATEMENT: one statement as the image's superuser, the answer unadorned.
sql() {
  docker compose exec -T postgres sh -c \
    'PGOPTIONS="-c client_min_messages=warning" exec psql --no-psqlrc --quiet \
       --tuples-only --no-align -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" \
       --dbname="$1" --command="$2"' sql "$1" "$2"
}

docker compose stop nginx chat-ui db-api
docker compose up --detach --wait postgres
app_db="$(docker compose exec -T postgres sh -c 'printf %s "$POSTGRES_DB"')"
scratch="${app_db}_restoring"
if [[ $(sql "$app_db" "SELECT to_regclass('public.users') IS NOT NULL") == t \
      && $(sql "$app_db" "SELECT EXISTS (SELECT FROM public.users)") == t \
      && -z $force ]]; then
  echo "restore: the database $app_db already has users: nothing was changed." >&2
  echo "To replace it with the backup: deploy/compose/restore.sh $archive --force" >&2
  echo "(chat-ui, db-api and nginx are stopped: docker compose up -d starts them.)" >&2
  exit 1
fi

sql postgres "DROP DATABASE IF EXISTS \"$scratch\""
sql postgres "CREATE DATABASE \"$scratch\""
if ! docker compose exec -T postgres sh -c \
    'exec pg_restore --username="$POSTGRES_USER" --dbname="$1" --no-owner --no-privileges \
       --exit-on-error --single-transaction' restore "$scratch" < "$work/database.dump"; then
  sql postgres "DROP DATABASE \"$scratch\""
  echo "restore: pg_restore failed (above); the database is unchanged" >&2
  exit 1
fi
sql postgres "DROP DATABASE IF EXISTS \"$app_db\" WITH (FORCE)"
sql postgres "ALTER DATABASE \"$scratch\" RENAME TO \"$app_db\""

# The secrets step writes a value from its environment into the volume, keeping the rest.
SESSION_SECRET="$session_secret" docker compose run --rm --no-deps -T secrets
if grep -Eq '^SESSION_SECRET=.+' .env 2>/dev/null; then
  echo "Note: .env sets SESSION_SECRET, which wins at every start: set it to the backup's" \
    "(tar -xOf $archive secrets.env) to keep sign-ins."
fi
docker compose up --detach
echo "Restored $archive into the database $app_db; SESSION_SECRET is in the secrets volume."

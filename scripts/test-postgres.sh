#!/usr/bin/env bash
# Start a throw-away PostgreSQL (Debian's package) for the database test and print the
# RETURNS_TEST_DATABASE_URL to use. Best effort: prints nothing when it cannot, and the
# PostgreSQL test then skips with its reason.
set -u
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || exit 0
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    >&2 || exit 0
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=$(mktemp -d /tmp/returns-pg.XXXXXX)
chown postgres "$data"
port=$((55000 + RANDOM % 2000))  # a fresh port: an earlier run may still hold one
su postgres -s /bin/sh -c "$bin/initdb -D $data -U postgres --auth=trust" >/dev/null 2>&1 || exit 0
su postgres -s /bin/sh -c "$bin/pg_ctl -D $data -o '-p $port -k /tmp -c listen_addresses=127.0.0.1' -l $data/log -w start" \
  >/dev/null 2>&1 || exit 0
su postgres -s /bin/sh -c "$bin/createdb -h 127.0.0.1 -p $port returns_test" >/dev/null 2>&1 || exit 0
echo "postgresql+psycopg://postgres@127.0.0.1:$port/returns_test"

#!/usr/bin/env bash
# A throw-away PostgreSQL 15 server for tests and trials (issue 20): initdb + pg_ctl from
# /usr/lib/postgresql/15/bin in a directory of its own, listening on loopback only, password authentication
# (scram-sha-256) for a role `tripline` that owns a database `tripline`.
#
#   scripts/pg.sh start DIR [PORT] [--watch PID]
#                                    initialise DIR if new, start the server; prints the state URL
#                                    (postgres://tripline@127.0.0.1:PORT/tripline); the password is in DIR/password;
#                                    with --watch, the server is stopped and DIR removed once process PID is gone
#                                    (a test process killed with -9 leaves no server behind)
#   scripts/pg.sh stop DIR           stop it (fast shutdown)
#   scripts/pg.sh url DIR            print the URL again
#   scripts/pg.sh psql DIR [ARGS]    psql as tripline
#
# PostgreSQL refuses to run as root: as root, the server runs as the unprivileged user `postgres` (Debian's
# package creates it; `tripline-pg` is created if it is missing) with `runuser`, and DIR is given to that user.
set -euo pipefail

BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0" >&2; exit 64; }
[ -x "$BIN/initdb" ] || { echo "pg.sh: $BIN/initdb not found (apt-get install postgresql-15)" >&2; exit 69; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}

owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then owner=postgres
    else
        id tripline-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin tripline-pg
        owner=tripline-pg
    fi
fi

case "$cmd" in
start)
    port=${3:-}
    watch=
    if [ "$port" = --watch ]; then port=; watch=${4:-}; elif [ "${4:-}" = --watch ]; then watch=${5:-}; fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        if [ -z "$port" ]; then
            port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        fi
        umask 077
        python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$dir/password"
        echo "$port" > "$dir/port"
        [ "$(id -u)" = 0 ] && chown "$owner" "$dir" "$dir/password" "$dir/port"
        # The password file stays readable by the caller (root or the owner); the server's files are the owner's.
        as_owner "$BIN/initdb" -D "$dir/data" -U tripline --pwfile="$dir/password" --auth=scram-sha-256 \
            -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    port=$(cat "$dir/port")
    # fsync stays on: the durability tests kill -9 the nodes, not the server; the server's own crash is not tested.
    as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=64MB" \
        >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
    PGPASSWORD=$(cat "$dir/password") "$BIN/psql" -h 127.0.0.1 -p "$port" -U tripline -d postgres -Atq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'tripline'" | grep -q 1 \
        || PGPASSWORD=$(cat "$dir/password") "$BIN/psql" -h 127.0.0.1 -p "$port" -U tripline -d postgres -q \
            -c "CREATE DATABASE tripline"
    if [ -n "$watch" ]; then
        ( exec </dev/null >/dev/null 2>&1
          while kill -0 "$watch" 2>/dev/null; do sleep 1; done
          "$0" stop "$dir"; rm -rf "$dir" ) &
        disown
    fi
    echo "postgres://tripline@127.0.0.1:$port/tripline"
    ;;
stop)
    [ -f "$dir/data/PG_VERSION" ] || exit 0
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    ;;
url)
    echo "postgres://tripline@127.0.0.1:$(cat "$dir/port")/tripline"
    ;;
psql)
    shift 2
    PGPASSWORD=$(cat "$dir/password") exec "$BIN/psql" -h 127.0.0.1 -p "$(cat "$dir/port")" -U tripline \
        -d tripline "$@"
    ;;
*)
    sed -n '2,12p' "$0" >&2
    exit 64
    ;;
esac

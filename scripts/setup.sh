#!/usr/bin/env bash
# Installs what the build and the tests need and is missing: Debian packages and the pinned test peers.
# Under CI=true a peer that cannot be installed fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libpcre2-dev libyaml-dev libicu-dev libsqlite3-dev pkg-config make openssl python3 curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${1:-}" = "--bench" ]; then
    # wrk drives the HTTP API benchmark (scripts/bench_api.py).
    dpkg -s wrk >/dev/null 2>&1 || need+=(wrk)
fi
if [ "${1:-}" = "--peers" ]; then
    command -v python3 >/dev/null || need+=(python3)
    python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
    python3 -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
    # Go's golang.org/x/mod verifies the audit log's signed notes and proofs independently.
    dpkg -s golang-go >/dev/null 2>&1 || need+=(golang-go)
    dpkg -s golang-golang-x-mod-dev >/dev/null 2>&1 || need+=(golang-golang-x-mod-dev)
    # A real PostgreSQL for the PostgreSQL store's tests (scripts/pg.sh starts a throw-away server).
    dpkg -s postgresql-15 >/dev/null 2>&1 || need+=(postgresql-15)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "${1:-}" = "--peers" ]; then
    if ! python3 -m pip install -q --disable-pip-version-check -r scripts/requirements-peers.txt 2>/tmp/tripline-pip.log; then
        python3 -m pip install -q --disable-pip-version-check --break-system-packages \
            -r scripts/requirements-peers.txt 2>>/tmp/tripline-pip.log || {
            cat /tmp/tripline-pip.log >&2
            echo "setup: could not install the test peers" >&2
            [ "${CI:-}" = "true" ] && exit 1
        }
    fi
    for mod in phonenumbers aiosmtpd standardwebhooks sigma prometheus_client schemathesis hyperscan rapidfuzz; do
        python3 -c "import $mod" 2>/dev/null || { echo "setup: test peer $mod is missing" >&2; exit 1; }
    done
    # sigma-cli in its own virtual environment (it pins pySigma below 2).
    if ! cmp -s scripts/requirements-sigma-cli.txt .venv-sigma/requirements.txt 2>/dev/null; then
        rm -rf .venv-sigma
        python3 -m venv .venv-sigma
        .venv-sigma/bin/pip install -q --disable-pip-version-check -r scripts/requirements-sigma-cli.txt \
            2>/tmp/tripline-sigma-pip.log || { cat /tmp/tripline-sigma-pip.log >&2; echo "setup: could not install sigma-cli" >&2; exit 1; }
        cp scripts/requirements-sigma-cli.txt .venv-sigma/requirements.txt
    fi
    .venv-sigma/bin/sigma version >/dev/null 2>&1 || { echo "setup: test peer sigma-cli is missing" >&2; exit 1; }
    [ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/note ] && command -v go >/dev/null \
        || { echo "setup: test peer golang.org/x/mod (golang-golang-x-mod-dev) is missing" >&2; exit 1; }
    [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -x /usr/lib/postgresql/15/bin/pg_ctl ] \
        || { echo "setup: test peer PostgreSQL 15 (postgresql-15) is missing" >&2; exit 1; }
fi
export PATH=/opt/swift/usr/bin:$PATH
command -v swift >/dev/null || { echo "setup: swift not found (expected at /opt/swift)" >&2; exit 1; }

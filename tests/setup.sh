#!/usr/bin/env bash
# Everything the test suite needs beyond `pip install -e ".[dev]"`: the pinned
# Stoplight Prism (npm), the PostgreSQL and Redis servers that the tests
# start themselves on 127.0.0.1 (tests/servers.py), and tmux (tests/terminal.py),
# from the system's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v npm >/dev/null || missing+=(nodejs npm)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null \
    || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
# tmux: the `agentkit chat` tests type into a real terminal and read its screen.
command -v tmux >/dev/null || missing+=(tmux)

if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    if command -v apt-get >/dev/null; then
        echo "+ apt-get install ${missing[*]}"
        # The packages' own services are not wanted: the tests start their own servers.
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "notice: install ${missing[*]} with your package manager;" \
            "the tests that need them are skipped until then (and fail under CI=true)" >&2
    fi
fi

npm ci --prefix tests/prism --silent

#!/usr/bin/env bash
# Everything the test suite needs beyond `pip install -e ".[dev]"`: the pinned
# Stoplight Prism (npm), the PostgreSQL and Redis servers that the tests start
# themselves on 127.0.0.1 (tests/servers.py), and tmux (tests/terminal.py), from
# the system's packages; and Arize Phoenix, the OTLP trace viewer of
# tests/test_otel_phoenix.py, in a virtual environment of its own (.cache/phoenix:
# ~860 MB, ~80 s the first time), so that its many pins never meet the dev extra's.
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

# The pinned Prism's packages declare Node.js 20.16 or newer (tests/prism/package-lock.json).
node_needed=20.16.0
if command -v node >/dev/null; then
    node_found=$(node -p 'process.versions.node')
    if [ "$(printf '%s\n%s\n' "$node_needed" "$node_found" | sort -V | head -n1)" != "$node_needed" ]; then
        echo "notice: Node.js $node_found is older than the $node_needed the pinned Prism declares;" \
            "npm warns EBADENGINE and the Prism tests may fail: install Node.js $node_needed or newer" >&2
    fi
fi

npm ci --prefix tests/prism --silent

phoenix_version=$(python3 -c 'import re,sys; print(re.search(r"PHOENIX_VERSION = \"(.+?)\"", open("tests/servers.py").read()).group(1))')
if ! .cache/phoenix/bin/python -c "import phoenix" >/dev/null 2>&1 \
    || [ "$(.cache/phoenix/bin/python -c 'import importlib.metadata as m; print(m.version("arize-phoenix"))')" != "$phoenix_version" ]; then
    echo "+ arize-phoenix==$phoenix_version into .cache/phoenix"
    python3 -m venv .cache/phoenix
    .cache/phoenix/bin/pip install -q "arize-phoenix==$phoenix_version"
fi

#!/usr/bin/env bash
# Property-based test of the HTTP API against its own OpenAPI document, with schemathesis (PyPI):
# starts `baton serve --demo` on a scratch store, then checks that no request gets a 5xx, that
# every response matches its documented schema, status code and content type. Prints
# schemathesis's summary; exit status non-zero on any failure. The latest result is in the README.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null 2>&1; then
    pip install -q 'schemathesis>=4,<5'
fi
cargo build -q -p baton

port="${PORT:-18181}"
scratch="$(mktemp -d)"
./target/debug/baton serve --demo --store "$scratch/st.db" --listen "127.0.0.1:$port" \
    >"$scratch/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$scratch"' EXIT

# Wait until the server answers (bounded: 30 s).
for _ in $(seq 1 150); do
    if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then break; fi
    sleep 0.2
done

schemathesis run "http://127.0.0.1:$port/openapi.json" \
    -H "Authorization: Bearer demo-admin" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "${EXAMPLES:-100}" --workers 1 --seed "${SEED:-1}"

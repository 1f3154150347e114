#!/usr/bin/env bash
# Starts `quorum serve` on a fresh database (sqlite, or postgres with BACKEND=postgres), runs
# `quorum bench` against it with the arguments given, stops the server with SIGTERM and
# prints its peak memory. Examples:
#   bench/server.sh --items 1000000 --raters 0                 # import
#   bench/server.sh --items 20000 --raters 64 --duration 20    # rater loop
#   BACKEND=postgres bench/server.sh --items 20000 --raters 16
# KEEP_DATABASE=1 leaves the PostgreSQL database in place afterwards (for EXPLAIN and the like);
# SERVER_ARGS adds arguments to `quorum serve` (e.g. SERVER_ARGS="--job-slots 0").
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quorum-target}"
cargo build --release -q -p quorum-cli
Q="$CARGO_TARGET_DIR/release/quorum"
WORK="$(mktemp -d)"
# A failed run still stops its server (else the next run would find the port taken).
trap '[ -n "${TIME_PID:-}" ] && pkill -TERM -P "$TIME_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
PORT="${PORT:-18181}"
case "${BACKEND:-sqlite}" in
    sqlite) DATABASE="sqlite://$WORK/bench.sqlite3" ;;
    postgres)
        NAME="quorum_bench_$$"
        psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $NAME" -c "CREATE DATABASE $NAME" postgres
        DATABASE="postgres://postgres@127.0.0.1:5432/$NAME" ;;
    *) echo "BACKEND is sqlite or postgres" >&2; exit 2 ;;
esac
# `--webhook` subscribes a receiver on loopback: the server may post to private addresses.
QUORUM_ALLOW_PRIVATE_MODEL_HOSTS=true QUORUM_LOG=warn /usr/bin/time -f "server peak memory: %M KB" -o "$WORK/time.txt" \
    "$Q" serve --database "$DATABASE" --bind "127.0.0.1:$PORT" --admin-password bench-password ${SERVER_ARGS:-} > "$WORK/out.txt" 2> "$WORK/err.txt" &
TIME_PID=$!
for _ in $(seq 100); do grep -q "listening" "$WORK/out.txt" 2>/dev/null && break; sleep 0.1; done
TOKEN="$(awk '/API token:/ {print $3}' "$WORK/out.txt")"
"$Q" bench --url "http://127.0.0.1:$PORT" --token "$TOKEN" "$@"
pkill -TERM -P "$TIME_PID"
wait "$TIME_PID" || true
cat "$WORK/time.txt"
if [ "${BACKEND:-sqlite}" = postgres ] && [ -z "${KEEP_DATABASE:-}" ]; then
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" postgres
fi

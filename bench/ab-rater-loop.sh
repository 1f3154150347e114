#!/usr/bin/env bash
# Side-by-side rater-loop benchmark of two `quorum` binaries, alternating, each round on a fresh
# SQLite file (or, with BACKEND=postgres, a fresh PostgreSQL database on 127.0.0.1:5432):
# `bench/ab-rater-loop.sh OLD_BINARY NEW_BINARY [ROUNDS]`; RATERS (16) and ITEMS (100000) set
# the load. Build the old one in a worktree with its own target directory, e.g.
#   git worktree add /tmp/base 4480d45 && (cd /tmp/base && CARGO_TARGET_DIR=~/.cache/base cargo build --release -p quorum-cli)
set -euo pipefail
OLD="$1"; NEW="$2"; ROUNDS="${3:-5}"
PORT="${PORT:-18190}"
for round in $(seq "$ROUNDS"); do
    for which in old new; do
        BIN="$OLD"; [ "$which" = new ] && BIN="$NEW"
        WORK="$(mktemp -d)"
        DATABASE="sqlite://$WORK/b.sqlite3"
        if [ "${BACKEND:-sqlite}" = postgres ]; then
            NAME="quorum_ab_$$"
            PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $NAME" -c "CREATE DATABASE $NAME" postgres
            DATABASE="postgres://postgres@127.0.0.1:5432/$NAME"
        fi
        QUORUM_LOG=warn "$BIN" serve --database "$DATABASE" --bind "127.0.0.1:$PORT" \
            --admin-password bench-password > "$WORK/out.txt" 2> "$WORK/err.txt" &
        PID=$!
        for _ in $(seq 100); do grep -q listening "$WORK/out.txt" 2>/dev/null && break; sleep 0.1; done
        TOKEN="$(awk '/API token:/ {print $3}' "$WORK/out.txt")"
        RESULT="$("$NEW" bench --url "http://127.0.0.1:$PORT" --token "$TOKEN" \
            --items "${ITEMS:-100000}" --raters "${RATERS:-16}" --duration 20 2>&1 | grep 'rater loop' || true)"
        echo "$which round $round: $RESULT"
        kill "$PID"; wait "$PID" 2>/dev/null || true
        if [ "${BACKEND:-sqlite}" = postgres ]; then
            psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" postgres
        fi
        rm -rf "$WORK"
    done
done

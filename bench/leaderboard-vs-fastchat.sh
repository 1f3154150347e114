#!/usr/bin/env bash
# Times `quorum leaderboard` and the reference arena method (bench/fastchat_bt.py, SciPy
# L-BFGS as FastChat fits it) side by side: 1,000,000 battles among 200 models, 1,000 bootstrap
# rounds, both on every core. Installs NumPy/SciPy/pandas into ~/.cache/venvs/arena on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quorum-target}"
VENV="$HOME/.cache/venvs/arena"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "numpy<2.3" "scipy<1.16" "pandas<3"
fi
cargo build --release -q -p quorum-cli
Q="$CARGO_TARGET_DIR/release/quorum"
DATA="$HOME/.cache/quorum-bench"
mkdir -p "$DATA"
[ -f "$DATA/battles-1m.csv" ] || "$Q" generate battles --models 200 --battles 1000000 --seed 1 --output "$DATA/battles-1m.csv"
ROUNDS="${ROUNDS:-1000}"
for i in 1 2 3; do
    /usr/bin/time -f "quorum seconds=%e peak_kb=%M" \
        "$Q" leaderboard --input "$DATA/battles-1m.csv" --bootstrap "$ROUNDS" --format csv --output /tmp/quorum-board.csv
done
/usr/bin/time -f "reference seconds=%e peak_kb=%M (main process)" \
    "$VENV/bin/python" bench/fastchat_bt.py "$DATA/battles-1m.csv" "$ROUNDS" /tmp/reference-board.csv
"$VENV/bin/python" - <<'PY'
import pandas as pd
q = pd.read_csv("/tmp/quorum-board.csv").set_index("model")
r = pd.read_csv("/tmp/reference-board.csv").set_index("model")
d = (q["rating"] - r.loc[q.index, "rating"]).abs()
print(f"largest point-rating difference: {d.max():.4f} Elo over {len(d)} models")
for b in ["lower", "upper"]:
    print(f"largest {b} difference: {(q[b] - r.loc[q.index, b]).abs().max():.2f} Elo")
PY

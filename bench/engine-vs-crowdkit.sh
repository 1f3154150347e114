#!/usr/bin/env bash
# Times `quorum aggregate` and crowd-kit 1.4.2 side by side on the same seeded synthetic files.
# Installs crowd-kit into a virtual environment under ~/.cache on first use. Takes ~25 minutes
# (crowd-kit's MACE and GLAD dominate). Usage: bench/engine-vs-crowdkit.sh [methods...]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quorum-target}"
VENV="$HOME/.cache/venvs/ck"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "crowd-kit==1.4.2" "pandas<3" "scikit-learn<1.6" "numpy<2.3" krippendorff
fi
cargo build --release -q -p quorum-cli
Q="$CARGO_TARGET_DIR/release/quorum"
DATA="$HOME/.cache/quorum-bench"
mkdir -p "$DATA"
[ -f "$DATA/big.csv" ] || "$Q" generate labels --tasks 200000 --workers 2000 --classes 5 --seed 1 --output "$DATA/big.csv" --gold "$DATA/big_gold.csv"
[ -f "$DATA/mid.csv" ] || "$Q" generate labels --tasks 20000 --workers 2000 --classes 5 --seed 1 --output "$DATA/mid.csv" --gold "$DATA/mid_gold.csv"
[ -f "$DATA/cmp.csv" ] || "$Q" generate comparisons --items 100 --comparisons 50000 --workers 200 --seed 1 --output "$DATA/cmp.csv"

run() { # method file gold
    local method=$1 file=$2 gold=${3:-}
    local gold_args=() ; [ -n "$gold" ] && gold_args=(--gold "$DATA/$gold")
    for i in 1 2 3; do
        /usr/bin/time -f "quorum $method $file seconds=%e peak_kb=%M" \
            "$Q" aggregate --method "$method" --input "$DATA/$file" --output /tmp/quorum-$method.csv "${gold_args[@]}" 2>&1 | tr '\n' ' '
        echo
    done
    /usr/bin/time -f "crowdkit-process $method $file seconds=%e peak_kb=%M" \
        "$VENV/bin/python" bench/crowdkit_run.py "$method" "$DATA/$file" /tmp/crowdkit-$method.csv ${gold:+"$DATA/$gold"} 2>&1 | tr '\n' ' '
    echo
}

methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(mv ds onecoin glad mace noisybt)
for m in "${methods[@]}"; do
    case $m in
        glad) run glad mid.csv mid_gold.csv ;;
        noisybt|bt) run "$m" cmp.csv ;;
        *) run "$m" big.csv big_gold.csv ;;
    esac
done

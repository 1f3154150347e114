"""Runs one crowd-kit 1.4.2 method on a CSV, end to end (read, fit, write), for side-by-side
timing with `quorum aggregate`. Usage: crowdkit_run.py METHOD INPUT OUTPUT [GOLD]."""
import sys
import time

import pandas as pd
from crowdkit.aggregation import (
    GLAD, MACE, DawidSkene, MajorityVote, NoisyBradleyTerry, OneCoinDawidSkene, Wawa,
    ZeroBasedSkill, BradleyTerry,
)

METHODS = {
    "mv": MajorityVote, "wawa": Wawa, "zbs": ZeroBasedSkill, "ds": DawidSkene,
    "onecoin": OneCoinDawidSkene, "glad": GLAD, "mace": MACE,
    "bt": lambda: BradleyTerry(n_iter=100), "noisybt": NoisyBradleyTerry,
}

method, source, target = sys.argv[1:4]
start = time.perf_counter()
data = pd.read_csv(source, dtype=str)
if method in ("bt", "noisybt"):
    result = METHODS[method]().fit_predict(data)
    result.rename("score").rename_axis("item").to_csv(target)
else:
    result = METHODS[method]().fit_predict(data)
    result.rename("label").rename_axis("task").to_csv(target)
elapsed = time.perf_counter() - start
accuracy = ""
if len(sys.argv) > 4:
    gold = pd.read_csv(sys.argv[4], dtype=str).set_index("task")["label"]
    joined = gold.to_frame("gold").join(result.rename("pred"), how="inner")
    accuracy = f" accuracy={(joined.gold == joined.pred).mean():.4f}"
print(f"crowdkit {method} seconds={elapsed:.2f}{accuracy}")

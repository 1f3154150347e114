"""The reference arena method, written after FastChat's `compute_bootstrap_bt`
(fastchat/serve/monitor/rating_systems.py): unique (model_a, model_b, outcome) rows with
counts, one multinomial draw of bootstrap weights per round, each round fitted by SciPy's
L-BFGS-B on the Bradley-Terry log loss (gtol 1e-6, at most 100 iterations), rounds spread over
a process pool of every core, ratings scaled to 400 * x + 1000. A re-implementation for timing
side by side, not FastChat's code. Usage: fastchat_bt.py battles.csv rounds out.csv"""
import multiprocessing as mp
import os
import sys
from functools import partial

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit


def preprocess(df):
    n = len(df)
    indices, models = pd.factorize(pd.concat([df["model_a"], df["model_b"]]))
    schedule = np.full((n, 3), 1, dtype=np.int32)
    schedule[:, 0] = indices[:n]
    schedule[:, 1] = indices[n:]
    schedule[(df["winner"] == "model_a").to_numpy(), 2] = 2
    schedule[(df["winner"] == "model_b").to_numpy(), 2] = 0
    rows, weights = np.unique(schedule, return_counts=True, axis=0)
    return rows[:, :2], rows[:, 2] / 2.0, list(models), weights.astype(np.float64)


def loss_and_grad(ratings, matchups, outcomes, weights, alpha):
    r = ratings[matchups]
    probs = expit(alpha * (r[:, 0] - r[:, 1]))
    loss = -((np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)) * weights).sum()
    g = -alpha * (outcomes - probs) * weights
    grad = np.zeros_like(ratings)
    np.add.at(grad, matchups, g[:, None] * np.array([1.0, -1.0]))
    return loss, grad


def fit(matchups, outcomes, weights, n_models, alpha):
    result = minimize(loss_and_grad, np.zeros(n_models), args=(matchups, outcomes, weights, alpha),
                      jac=True, method="L-BFGS-B", options={"maxiter": 100, "gtol": 1e-6})
    return result["x"]


def main():
    path, rounds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    df = pd.read_csv(path)
    df = df[df["model_a"] != df["model_b"]]
    matchups, outcomes, models, weights = preprocess(df)
    alpha = np.log(10.0)
    point = fit(matchups, outcomes, weights, len(models), alpha)
    rng = np.random.default_rng(0)
    boot = rng.multinomial(len(df), weights / weights.sum(), size=rounds).astype(np.float64) / len(df)
    fn = partial(fit, matchups, outcomes, n_models=len(models), alpha=alpha)
    with mp.Pool(os.cpu_count()) as pool:
        samples = np.array(pool.map(fn, list(boot)))
    point = 400 * (point - point.mean()) + 1000
    samples = 400 * (samples - samples.mean(axis=1, keepdims=True)) + 1000
    pd.DataFrame({"model": models, "rating": point,
                  "lower": np.percentile(samples, 2.5, axis=0),
                  "upper": np.percentile(samples, 97.5, axis=0)}).to_csv(out, index=False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# How many gold answers the auto-pause rule (95% upper credible bound of accuracy under a
# Beta(1, 1) prior below 0.7) needs to pause a rater who answers at random, and how often it
# pauses a careful one: `python3 bench/pause-simulation.py` (standard library only).
import random, math
def cdf(x, a, b):
    # I_x(a, b) for integer a, b: P(Binomial(a+b-1, x) >= a)
    n = a + b - 1
    return sum(math.comb(n, j) * x**j * (1-x)**(n-j) for j in range(a, n+1))
def upper(k, n):
    a, b = 1 + k, 1 + n - k
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if cdf(mid, a, b) < 0.975: lo = mid
        else: hi = mid
    return lo
cache = {}
def ub(k, n):
    if (k, n) not in cache: cache[(k, n)] = upper(k, n)
    return cache[(k, n)]
for p in (0.5, 0.25):
    random.seed(1)
    counts = []
    for _ in range(5000):
        k = n = 0
        while True:
            n += 1; k += random.random() < p
            if ub(k, n) < 0.7 or n > 500: break
        counts.append(n)
    counts.sort()
    print(f"p={p}: median {counts[len(counts)//2]}, 90th {counts[int(len(counts)*0.9)]}, 99th {counts[int(len(counts)*0.99)]}, max {counts[-1]}")
# a careful rater at 0.9: how often wrongly paused within 200 gold answers?
random.seed(2)
paused = 0
for _ in range(2000):
    k = 0
    for n in range(1, 201):
        k += random.random() < 0.9
        if ub(k, n) < 0.7: paused += 1; break
print("careful 0.9 paused within 200:", paused / 2000)

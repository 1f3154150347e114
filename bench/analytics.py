#!/usr/bin/env python3
"""Times the analytics a manager reads on a running Quorum, one request after another: the
project's statistics, agreement and rater reliability over the API, and the dashboard page
(signed in as the administrator). Prints each one's median, 99th percentile and slowest time.
Usage:

    bench/analytics.py URL TOKEN PROJECT_ID [ROUNDS] [ADMIN_PASSWORD]

ROUNDS defaults to 50; ADMIN_PASSWORD (for the page) to `bench-password`, the one
`bench/server.sh` sets. With RELIABILITY=1 it also times rater reliability (a tenth as many
rounds), which reads every response.
"""

import http.cookiejar
import os
import re
import sys
import time
import urllib.parse
import urllib.request


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def main() -> None:
    url, token, project = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    password = sys.argv[5] if len(sys.argv) > 5 else "bench-password"
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = browser.open(f"{url}/login").read().decode()
    csrf = re.search(r'name="login_csrf" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode({"name": "admin", "password": password, "login_csrf": csrf})
    browser.open(f"{url}/login", data=body.encode()).read()
    api = {"Authorization": f"Bearer {token}"}
    targets = [
        ("stats", f"{url}/api/v1/projects/{project}/stats", api, urllib.request.urlopen),
        ("agreement", f"{url}/api/v1/projects/{project}/agreement", api, urllib.request.urlopen),
        ("dashboard page", f"{url}/projects/{project}", {}, browser.open),
    ]
    if os.environ.get("RELIABILITY"):
        # Reads every response into memory: at tens of millions that is tens of gigabytes.
        targets.append(
            ("rater reliability", f"{url}/api/v1/projects/{project}/raters", api, urllib.request.urlopen)
        )
    for name, target, headers, opener in targets:
        times = []
        for _ in range(rounds if name != "rater reliability" else max(1, rounds // 10)):
            started = time.perf_counter()
            with opener(urllib.request.Request(target, headers=headers), timeout=600) as response:
                response.read()
                status = response.status
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"{name}: n={len(times)} status={status} p50={percentile(times, 0.5):.1f}ms "
            f"p99={percentile(times, 0.99):.1f}ms max={max(times):.1f}ms"
        )


if __name__ == "__main__":
    main()

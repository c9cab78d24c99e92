"""End-to-end latency of the app's text search through its API (gradio_client against a local `python app.py`):
one search at a time, then many at once. Targets on 2 CPU cores: p50 < 100 ms alone, p95 < 5 s for 50 at once.

    python benchmarks/bench_app_latency.py                 # starts app.py with assets/ on a free port
    python benchmarks/bench_app_latency.py --url http://127.0.0.1:7860/
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gradio_client import Client

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="an app already running; default: start app.py with the assets")
    p.add_argument("--sequential", type=int, default=30, help="searches one after another")
    p.add_argument("--concurrent", type=int, default=50, help="searches sent at once, one client each")
    p.add_argument("--k", type=int, default=10, help="results per search")
    p.add_argument("--app_args", default="", help="extra flags for app.py, e.g. '--concurrency 1'")
    return p.parse_args(argv)


def start_app(extra: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_PROFILING": "1",
           "TIPR_CACHE_DIR": tempfile.mkdtemp(prefix="tipr-bench-")}
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), *extra.split()], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"app.py did not answer on {url}")


def timed_search(client: Client, query: str, k: int) -> float:
    start = time.perf_counter()
    client.predict(query, k, "text", api_name="/search")
    return time.perf_counter() - start


def report(name: str, seconds: list[float]) -> None:
    ms = np.array(seconds) * 1000
    print(f"{name}: n={len(ms)}  p50 {np.percentile(ms, 50):.0f} ms  p95 {np.percentile(ms, 95):.0f} ms  "
          f"max {ms.max():.0f} ms")


def server_phases(url: str) -> None:
    """Median milliseconds per phase of the requests so far, as the server measured them (GRADIO_PROFILING=1)."""
    try:
        with urllib.request.urlopen(url + "gradio_api/profiling/summary", timeout=10) as response:
            phases = json.load(response)["phases"]
    except (OSError, ValueError, KeyError):
        print("server phases: unavailable (start the app with GRADIO_PROFILING=1)")
        return
    print("server phases, p50 ms: " + "  ".join(f"{name} {p['p50']:.1f}" for name, p in phases.items()
                                                 if name != "streaming_diff"))


def clear_phases(url: str) -> None:
    try:
        urllib.request.urlopen(urllib.request.Request(url + "gradio_api/profiling/clear", method="POST"), timeout=10)
    except OSError:
        pass


def main(argv=None) -> None:
    args = parse_args(argv)
    proc, url = (None, args.url) if args.url else start_app(args.app_args)
    try:
        client = Client(url, verbose=False, download_files=False)
        client.predict(api_name="/status")  # waits until the model and gallery are loaded
        for i in range(3):  # warm-up
            timed_search(client, f"warm-up query {i}", args.k)
        clear_phases(url)
        seq = [timed_search(client, f"a person in a red coat number {i}", args.k) for i in range(args.sequential)]
        report("one at a time", seq)
        server_phases(url)
        clear_phases(url)

        clients = [Client(url, verbose=False, download_files=False) for _ in range(args.concurrent)]
        with ThreadPoolExecutor(args.concurrent) as pool:
            start = time.perf_counter()
            conc = list(pool.map(lambda ic: timed_search(ic[1], f"a man with a bag number {ic[0]}", args.k),
                                 enumerate(clients)))
            wall = time.perf_counter() - start
        report(f"{args.concurrent} at once", conc)
        print(f"{args.concurrent} at once: all done in {wall:.1f} s")
        server_phases(url)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()

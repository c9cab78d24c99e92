"""What benchmarks/bench_index.py measures: clustered synthetic galleries, and text query -> top-k timings,
recall against exact search, resident memory and start-up time of a loaded index folder."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tipr.index.folder import IndexFolder, open_index
from tipr.index.indexer import assemble
from tipr.index.shards import write_shard
from tipr.index.sources import GalleryList


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def person_centres(people: int, dim: int, *, seed: int = 0, groups: int = 1024, spread: float = 0.8) -> np.ndarray:
    """Unit centre of every person: a group centre (people who look alike) plus ``spread`` of their own."""
    rng = np.random.default_rng([seed, 0])
    group_centres = _unit(rng.standard_normal((groups, dim), np.float32))
    own = _unit(rng.standard_normal((people, dim), np.float32))
    return _unit(group_centres[np.arange(people) % groups] + spread * own)


def clustered_features(rows: np.ndarray, centres: np.ndarray, *, seed: int = 0, noise: float = 1.0) -> np.ndarray:
    """Unit features of gallery ``rows``: image i shows person i % people, seen with ``noise``; the same rows
    give the same features."""
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng([seed, 1, int(rows[0]) if len(rows) else 0])
    return _unit(centres[rows % len(centres)] + noise * _unit(rng.standard_normal((len(rows), centres.shape[1]),
                                                                                   np.float32)))


def clustered_queries(count: int, centres: np.ndarray, *, seed: int = 0, noise: float = 1.5) -> np.ndarray:
    """Text-like queries: a person's centre seen through more noise (the modality gap)."""
    rng = np.random.default_rng([seed, 2])
    persons = rng.choice(len(centres), size=count, replace=count > len(centres))
    return _unit(centres[persons] + noise * _unit(rng.standard_normal((count, centres.shape[1]), np.float32)))


def synthetic_index(out: Path, size: int, dim: int, *, factory: str | None = None, seed: int = 0,
                    shard_size: int = 65_536, model: str = "synthetic", root: Path | None = None,
                    images: Sequence[str] | None = None) -> Path:
    """An index folder over ``size`` clustered synthetic features (about 8 images per person), built the way
    ``python -m tipr.index`` builds one, from shards. Row i shows ``images[i % len(images)]`` under ``root``
    when given (real files for an app to show), else a name that exists nowhere."""
    centres = person_centres(max(1, size // 8), dim, seed=seed)
    names = [f"synthetic/{i:08d}.png" for i in range(size)]
    stamps = np.zeros((size, 2), np.int64)
    for start in range(0, size, shard_size):
        rows = np.arange(start, min(size, start + shard_size))
        write_shard(out / "shards", f"synthetic-{start // shard_size:05d}", names[start:rows[-1] + 1], stamps[rows],
                    clustered_features(rows, centres, seed=seed), np.ones(len(rows), bool))
    listing = GalleryList(root=out / "gallery", kind="synthetic", images=names, pids=list(range(size)))
    assemble(listing, out, stamps, model_fingerprint=model, factory=factory, seed=seed)
    if images:  # the features stay synthetic; what is shown for row i is a real crop
        from tipr.index.folder import read_manifest, write_json

        manifest = read_manifest(out)
        shown = "".join(f"{images[i % len(images)]}\n" for i in range(size))
        (out / manifest["build"] / "images.txt").write_text(shown, encoding="utf-8")
        write_json(out / "manifest.json", {**manifest, "root": str(Path(root).resolve()), "root_relative": None})
    return out


def app_first_answer(folder: str | os.PathLike, model: str, *, queries: Sequence[str], timeout: float = 300) -> dict:
    """Start ``python app.py --gallery folder`` and time its first answered text search from the process's start
    (wall clock, and the server's CPU seconds: on a shared machine the two differ), the end-to-end latency of
    the next queries through the API, and the server's resident memory."""
    import socket
    import subprocess
    import sys
    import tempfile

    from gradio_client import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = Path(__file__).resolve().parents[2] / "app.py"
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TIPR_CACHE_DIR": cache}
        log = open(Path(cache) / "server.log", "w+")  # a file, not a pipe nobody reads while it serves
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(app), "--model", model, "--gallery", str(folder), "--generator",
                                 "none", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            client = None
            while client is None:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"app.py did not serve {folder}: {log.read()[-3000:]}")
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"app.py did not serve {folder} within {timeout} s")
                try:
                    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
                except Exception:  # not up yet
                    time.sleep(0.1)
            client.predict(queries[0], 10, "text", api_name="/search")
            first = time.perf_counter() - started
            with open(f"/proc/{proc.pid}/stat") as f:  # user + system CPU seconds of the server until then
                cpu = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
            times = []
            for text in queries[1:]:
                t = time.perf_counter()
                client.predict(text, 10, "text", api_name="/search")
                times.append(time.perf_counter() - t)
            with open(f"/proc/{proc.pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    return {"first_answer_s": first, "first_answer_cpu_s": cpu, "p50_ms": 1000 * float(np.percentile(times, 50)),
            "p95_ms": 1000 * float(np.percentile(times, 95)), "rss_mb": rss}


def exact_top(features: np.ndarray, queries: np.ndarray, k: int, *, chunk: int = 131_072) -> np.ndarray:
    """Rows of the exact top-k by inner product (brute force over the memory-mapped features, in chunks)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_r = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(features), chunk):
        s = queries @ np.asarray(features[start:start + chunk], np.float32).T
        r = np.broadcast_to(np.arange(start, start + s.shape[1]), s.shape)
        s, r = np.concatenate([best_s, s], 1), np.concatenate([best_r, r], 1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return best_r


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[:k]) & set(e)) / k for f, e in zip(found.tolist(), exact.tolist())]))


def rss_mb() -> tuple[float, float]:
    """(resident now, peak) in MiB."""
    now = 0.0
    try:
        with open("/proc/self/status") as f:
            now = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        pass
    return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(folder: str | os.PathLike, model: str, texts: Sequence[str], vectors: np.ndarray | None, *, k: int = 10,
          started: float | None = None) -> dict:
    """Load the model and the index, answer ``texts`` one at a time (encode + search) and time each; the search
    uses ``vectors[i]`` instead of the text's feature when given (synthetic galleries of another width)."""
    import torch

    from tipr.models.tipr_model import load_model

    started = time.perf_counter() if started is None else started
    net = load_model(model)
    index: IndexFolder = open_index(folder)
    loaded = time.perf_counter() - started

    def answer(i: int) -> np.ndarray:
        with torch.inference_mode():
            feat = net.encode_texts(net.tokenize([texts[i]])).float().numpy()
        return index.search(feat if vectors is None else vectors[i:i + 1], k)[1][0]

    answer(0)
    first = time.perf_counter() - started
    first_cpu = time.process_time()  # the process's CPU seconds so far, imports included
    times, found, queries = [], [], []
    for i in range(len(texts)):
        t = time.perf_counter()
        found.append(answer(i))
        times.append(time.perf_counter() - t)
    rss, peak = rss_mb()
    if vectors is None:
        with torch.inference_mode():
            queries = np.concatenate([net.encode_texts(net.tokenize(list(texts[i:i + 256]))).float().numpy()
                                      for i in range(0, len(texts), 256)])
    else:
        queries = vectors[:len(texts)]
    exact = exact_top(index.features, queries, k)
    return {"images": len(index), "factory": index.manifest["factory"], "nprobe": index.manifest.get("nprobe"),
            "rescore": index.rescore, "load_s": loaded, "first_answer_s": first, "first_answer_cpu_s": first_cpu,
            "p50_ms": 1000 * float(np.percentile(times, 50)), "p95_ms": 1000 * float(np.percentile(times, 95)),
            f"recall@{k}": recall_at_k(np.stack(found), exact), "rss_mb": rss, "peak_rss_mb": peak}


def query_captions(count: int, *, seed: int = 0) -> list[str]:
    """SynthPEDES-style captions of ``count`` people, the text side of the timed queries."""
    from tipr.data.synthetic import sample_identity, visible_groups
    from tipr.data.synthetic_captions import describe

    captions = []
    for pid in range(count):
        person = {**sample_identity(seed + 7, pid), "view": "front"}
        captions.append(describe(person, visible_groups(person, "front"), np.random.default_rng([seed, pid])))
    return captions

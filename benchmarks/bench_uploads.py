"""Time, memory and disk that hostile uploads cost the app's upload path (tipr.app.uploads.import_images).

    python benchmarks/bench_uploads.py
    PYTHONPATH=/path/to/an/older/checkout python benchmarks/bench_uploads.py   # the same inputs, older code

Each case runs in a fresh process: its seconds, its peak resident memory above the level before the call, the
largest size the output folder reached (temporary files included), how it ended, and the length of the
message the user would read. The inputs are written once into --work (by this checkout's tipr.app.testing, so run
it here first when measuring an older checkout).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from PIL import Image

CASES = {
    "zip_bomb": "1 MB zip holding one 1 GB member of zeros",
    "two_zip_bombs": "two such zips at once (two threads)",
    "big_png": "9,400 x 9,400 PNG (a small file, 88 megapixels)",
    "big_jpeg": "50-megapixel JPEG (5,000 x 10,000), a phone photo",
    "junk_zip": "zip of 10,000 entries, none an image",
}


def make_inputs(work: Path, cases: list[str]) -> dict[str, list[Path]]:
    """The hostile files of each case, written once (only those the cases need)."""
    work.mkdir(parents=True, exist_ok=True)
    files = {"zip_bomb": [work / "bomb-a.zip"], "two_zip_bombs": [work / "bomb-a.zip", work / "bomb-b.zip"],
             "big_png": [work / "big.png"], "big_jpeg": [work / "big.jpg"], "junk_zip": [work / "junk.zip"]}
    for path in {p for case in cases for p in files[case]}:
        if path.exists():
            continue
        if path.suffix == ".zip" and path.stem.startswith("bomb"):
            from tipr.app.testing import zip_bomb

            zip_bomb(path, 1 << 30)
        elif path.name == "big.png":
            from tipr.app.testing import flat_png

            flat_png(path, 9400, 9400)
        elif path.name == "big.jpg":
            Image.new("RGB", (5000, 10000), (200, 30, 30)).save(path, quality=70)
        else:
            with zipfile.ZipFile(path, "w") as zf:
                for i in range(10_000):
                    zf.writestr(f"notes/{i:05d}.txt", "not an image")
    return {case: files[case] for case in cases}


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def current_rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def measure(case: str, files: list[Path], out: Path) -> dict:
    """Import ``files`` (one import per file, all at once) into ``out``; what it cost and how it ended."""
    from tipr.app.uploads import UploadError, import_images

    results, peak_disk, done = [], [0], threading.Event()

    def watch():
        while not done.is_set():
            peak_disk[0] = max(peak_disk[0], folder_bytes(out))
            time.sleep(0.005)

    def upload(i: int, path: Path):
        try:
            stored, problems = import_images([path], out / str(i))
            results.append(f"stored {len(stored)} image(s), {len(' '.join(problems)):,}-character note")
        except UploadError as err:
            results.append(f"refused with a {len(str(err)):,}-character message: {str(err)[:90]!r}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rss_before = current_rss_kib()
    start = time.perf_counter()
    workers = [threading.Thread(target=upload, args=(i, p)) for i, p in enumerate(files)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"case": case, "seconds": round(seconds, 2), "extra_peak_rss_mb": round((rss_peak - rss_before) / 1024),
            "peak_disk_mb": round(peak_disk[0] / 2**20, 1), "outcome": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tipr-bench-uploads",
                        help="where the hostile inputs are written (about 4 MB)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one case, in a fresh process
    args = parser.parse_args()
    inputs = make_inputs(args.work, [args.child] if args.child else args.cases)
    if args.child:
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(measure(args.child, inputs[args.child], Path(out))))
        return
    import tipr.app.uploads

    print(f"tipr.app.uploads from {Path(tipr.app.uploads.__file__).resolve()}")
    print(f"{'case':52s} {'seconds':>8s} {'+RSS MB':>8s} {'disk MB':>8s}  outcome")
    for case in args.cases:
        proc = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--child", case],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if proc.returncode:
            print(f"{CASES[case]:52s} failed: {proc.stderr.strip()[-300:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{CASES[case]:52s} {r['seconds']:8.2f} {r['extra_peak_rss_mb']:8d} {r['peak_disk_mb']:8.1f}  "
              + " | ".join(r["outcome"]))


if __name__ == "__main__":
    main()

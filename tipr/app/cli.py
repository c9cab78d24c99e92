"""`python app.py`: flags (each with an environment variable, for Hugging Face Space variables) and launch."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tipr.app.uploads import UploadLimits

NO_GENERATOR = ("", "none", "off", "false", "0")


@dataclass(frozen=True)
class AppConfig:
    """Where the app's model, gallery and generator come from, and where it serves."""

    model: str
    gallery: str
    generator: str | None
    host: str = "127.0.0.1"
    port: int = 7860
    cache_dir: str = str(Path.home() / ".cache" / "tipr" / "app")
    concurrency: int = 2
    device: str = "auto"
    upload_limits: UploadLimits = UploadLimits()


def _cache_default(env: Mapping[str, str]) -> str:
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "tipr" / "app")


def build_parser(app_dir: str | os.PathLike, env: Mapping[str, str]) -> argparse.ArgumentParser:
    assets = Path(app_dir) / "assets"
    p = argparse.ArgumentParser(prog="python app.py", description="tipr: find a person in a gallery by a sentence.")
    p.add_argument("--model", default=env.get("TIPR_MODEL", str(assets / "model")),
                   help="a tipr model folder (save_pretrained) or a Hugging Face Hub id [env TIPR_MODEL; "
                        "default: the tiny model in assets/model]")
    p.add_argument("--gallery", default=env.get("TIPR_GALLERY", str(assets / "gallery")),
                   help="a folder of images (with an optional captions.json), a dataset root in the CUHK-PEDES, "
                        "ICFG-PEDES or RSTPReid layout (its test split), a saved index folder, or an index folder "
                        "written by python -m tipr.index (large galleries) [env TIPR_GALLERY; default: assets/gallery]")
    p.add_argument("--generator", default=env.get("TIPR_GENERATOR", str(assets / "generator")),
                   help="a diffusers text-to-image id or folder for GEA's generated images, or 'none' "
                        "[env TIPR_GENERATOR; default: the tiny pipeline in assets/generator]")
    p.add_argument("--host", default=env.get("TIPR_HOST") or env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                   help="address to serve on; 0.0.0.0 to serve the network [env TIPR_HOST or GRADIO_SERVER_NAME]")
    p.add_argument("--port", type=int, default=int(env.get("TIPR_PORT") or env.get("GRADIO_SERVER_PORT") or 7860),
                   help="port [env TIPR_PORT or GRADIO_SERVER_PORT; default 7860]")
    p.add_argument("--cache_dir", default=env.get("TIPR_CACHE_DIR", _cache_default(env)),
                   help="gallery indexes of read-only galleries, generated images, cached examples, uploads "
                        "[env TIPR_CACHE_DIR; default ~/.cache/tipr/app]")
    p.add_argument("--concurrency", type=int, default=int(env.get("TIPR_CONCURRENCY", 2)),
                   help="requests run at once; the rest wait in the queue [env TIPR_CONCURRENCY; default 2]")
    p.add_argument("--device", default=env.get("TIPR_DEVICE", "auto"),
                   help="cpu, cuda, cuda:1 or auto [env TIPR_DEVICE; default auto]")
    p.add_argument("--upload_limit", action="append", metavar="NAME=VALUE",
                   default=[s for s in env.get("TIPR_UPLOAD_LIMITS", "").split(",") if s.strip()],
                   help="change one limit on users' uploads, e.g. max_pixels=40000000 (repeat the flag for more; "
                        "docs/app.md lists them) [env TIPR_UPLOAD_LIMITS, comma-separated]")
    return p


def parse_args(argv: Sequence[str] | None = None, *, app_dir: str | os.PathLike = ".",
               env: Mapping[str, str] | None = None) -> AppConfig:
    env = os.environ if env is None else env
    parser = build_parser(app_dir, env)
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if args.concurrency < 1:
        parser.error(f"--concurrency must be >= 1, got {args.concurrency}")
    try:
        upload_limits = UploadLimits.parse(args.upload_limit)
    except ValueError as err:
        parser.error(str(err))
    generator = None if str(args.generator).strip().lower() in NO_GENERATOR else args.generator
    return AppConfig(model=args.model, gallery=args.gallery, generator=generator, host=args.host, port=args.port,
                     cache_dir=args.cache_dir, concurrency=args.concurrency, device=args.device,
                     upload_limits=upload_limits)


def launch(config: AppConfig, *, block: bool = True, quiet: bool = False):
    """Build the app, start loading the model in the background and serve; returns the Blocks."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home, unless the user asks for it
    from tipr.app.backend import Backend
    from tipr.app.ui import CSS, build_demo

    backend = Backend(config)  # loads while gradio builds and starts the page
    demo = build_demo(backend, config)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=256)
    demo.launch(server_name=config.host, server_port=config.port, share=False, prevent_thread_lock=not block,
                max_file_size="200mb", footer_links=["api", "gradio"], quiet=quiet, css=CSS)
    return demo


def configure_logging() -> None:
    """The app's log: its own steps at INFO, libraries' chatter left out."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it reports each CPU variant it did not find


def main(argv: Sequence[str] | None = None, *, app_dir: str | os.PathLike = ".") -> None:
    configure_logging()
    launch(parse_args(argv, app_dir=app_dir))

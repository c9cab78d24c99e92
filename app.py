"""tipr demo: `python app.py` (flags: `python app.py --help`; Hugging Face Spaces run this file)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported anywhere

from pathlib import Path  # noqa: E402

from tipr.app.cli import main  # noqa: E402

if __name__ == "__main__":
    main(app_dir=Path(__file__).resolve().parent)

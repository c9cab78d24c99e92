"""Hugging Face Hub access that fails in seconds, never after minutes of retries."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


class HubUnreachableError(ConnectionError):
    """The Hub is needed for something that is not available locally and cannot be reached."""


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE is set, now or when huggingface_hub was imported (it reads it once, then)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true",
                                                                                                      "yes", "on"}


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when HF_HUB_OFFLINE is unset and a TCP connection to the Hub endpoint opens within `timeout`."""
    if hub_offline():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(what: str, *, local_alternative: str, timeout: float = 3.0) -> None:
    """Raise HubUnreachableError, naming `what` and the local alternative, unless the Hub answers."""
    if hub_reachable(timeout):
        return
    reason = "HF_HUB_OFFLINE is set" if hub_offline() else f"the Hub did not answer within {timeout:g} s"
    raise HubUnreachableError(
        f"{what} is not available locally and cannot be downloaded: {reason}. "
        f"Either unset HF_HUB_OFFLINE and check the network, or {local_alternative}."
    )

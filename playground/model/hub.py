"""Whether the Hugging Face hub can be reached, decided once when the app starts.

Without a network, huggingface_hub retries each file five times with back-off (~25 s), so a hub id typed into
the Model or Train tab made the page wait ~25-50 s before saying it is not in the cache. When the hub's host
cannot be reached at start, the app turns on the hub's own offline mode (HF_HUB_OFFLINE, read by
huggingface_hub, transformers and datasets when they are imported, and inherited by training workers): models
and datasets already in the cache still load, anything else is refused at once with the same sentence.
An HF_HUB_OFFLINE the operator set (0 or 1) is left as it is, and so is a machine that reaches the web through a
proxy (HTTPS_PROXY and the like): a direct connection would say nothing about the hub there.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from urllib.parse import urlparse

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_S = 2.0  # a reachable hub answers a TCP connect in well under this (a name lookup is not bounded
# by it: with no DNS server at all it fails at once, a DNS server that does not answer can take a few seconds)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def endpoint(environ: MutableMapping[str, str]) -> tuple[str, int]:
    """(host, port) of the hub the libraries will call (HF_ENDPOINT, as huggingface_hub reads it)."""
    url = urlparse(environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def reachable(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """A TCP connection to host:port opens within `timeout` (no request is sent)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # name not resolved, refused, unreachable, timed out
        return False


def offline_unless_reachable(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Turn on the hub's offline mode when its host cannot be reached and the operator did not choose; the line
    to print when it did, else None. Call before huggingface_hub is imported (it reads the variable then)."""
    if environ.get("HF_HUB_OFFLINE") not in (None, "") or environ.get("TRANSFORMERS_OFFLINE") not in (None, ""):
        return None
    if any(environ.get(v) for v in PROXY_VARIABLES):  # the hub is reached through a proxy: a direct connect
        return None                                    # would say nothing about it, so leave the libraries online
    host, port = endpoint(environ)
    if reachable(host, port):
        return None
    environ["HF_HUB_OFFLINE"] = "1"
    return (f"The Hugging Face hub ({host}) cannot be reached: offline mode, so hub models and datasets load from "
            "the local cache only (set HF_HUB_OFFLINE=0 to make every hub call try the network).")

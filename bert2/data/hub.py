"""Hugging Face hub reachability, checked before anything asks the hub for files.

Offline, `datasets.load_dataset("wikitext", ...)` and `BertTokenizerFast.from_pretrained("bert-base-uncased")`
do not fail: they retry for tens of seconds to minutes (measured: 211 s for the tokenizer), and the tokenizer
then *succeeds* with a useless 5-token vocabulary. So we ask the network first, cheaply (one HTTPS HEAD request
with a short timeout), and when the hub cannot be reached we switch the libraries into offline mode, which
answers at once from the local cache or raises; callers turn that into a message naming the offline
alternatives.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import DataError
from .records import looks_like_file

_TRUE = {"1", "true", "yes", "on"}
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_env() -> bool:
    """True when the user asked for offline mode through the environment (HF_HUB_OFFLINE=1 and friends)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in OFFLINE_ENV_VARS)


def hub_endpoint() -> str:
    """Base URL of the hub: HF_ENDPOINT when set (mirrors), else https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers an HTTPS request within about `timeout` seconds.

    A real HTTPS exchange, not a bare TCP connect: sandboxes and captive portals accept TCP connections to any
    address, so only a TLS handshake with the hub's certificate proves the hub is there. Any HTTP status counts
    as reachable (the hub is answering); name-lookup failures, refused or intercepted connections, TLS errors and
    timeouts count as offline. Proxies from the environment are honoured (urllib reads HTTPS_PROXY). The request
    runs in a daemon thread joined with a deadline, because `timeout` does not bound the DNS lookup.
    """
    if offline_env():
        return False
    import urllib.error
    import urllib.request

    result: list[bool] = []

    def probe() -> None:
        request = urllib.request.Request(
            hub_endpoint() + "/", method="HEAD", headers={"User-Agent": "bert2-connectivity-check"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                result.append(True)
        except urllib.error.HTTPError:  # the server answered, with an error status: it is reachable
            result.append(True)
        except (OSError, ValueError):  # URLError, socket.timeout, ssl.SSLError, bad endpoint URL
            result.append(False)

    worker = threading.Thread(target=probe, name="bert2-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


@contextlib.contextmanager
def hub_offline_mode() -> Iterator[None]:
    """Make `datasets`, `huggingface_hub` and `transformers` behave as under HF_HUB_OFFLINE=1 for a block.

    Those libraries read the variable once at import time, so setting os.environ afterwards does nothing; we
    flip their module-level flags instead and restore them on exit. Cached datasets and tokenizers still load.
    """
    patched: list[tuple[object, str, object]] = []

    def flip(module_name: str, attr: str) -> None:
        import importlib

        try:
            module = importlib.import_module(module_name)
        except Exception:  # library missing or broken: nothing to patch
            return
        if hasattr(module, attr):
            patched.append((module, attr, getattr(module, attr)))
            setattr(module, attr, True)

    flip("huggingface_hub.constants", "HF_HUB_OFFLINE")
    flip("datasets.config", "HF_HUB_OFFLINE")
    flip("datasets.config", "HF_DATASETS_OFFLINE")
    try:
        yield
    finally:
        for module, attr, old in reversed(patched):
            setattr(module, attr, old)


def is_hub_name(name: str, known: tuple[str, ...]) -> bool:
    """Whether a --data value names a hub dataset: one of `known` (with or without a ":config"), or any
    "owner/name" that is not a local file."""
    return (
        name in known
        or name.split(":")[0] in {h.split(":")[0] for h in known}
        or (not looks_like_file(name) and "/" in name)
    )


def load_hub_dataset(name: str, config: str | None, alternative: str) -> Any:
    """A `datasets.DatasetDict` from the hub, or a DataError at once when the hub cannot be reached;
    `alternative` says what to use instead (the task's built-in data, its local formats)."""
    online = hub_reachable()
    why = "HF_HUB_OFFLINE is set" if offline_env() else "no network connection"
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # download bars would scribble over the CLI progress bar and the TUI
    try:
        if online:
            return datasets.load_dataset(name, config)
        with hub_offline_mode():  # from the local cache at once, or an error, instead of ~23 s of retries
            return datasets.load_dataset(name, config)
    except Exception as exc:
        if not online or isinstance(exc, ConnectionError):
            raise DataError(
                f"{name!r} is a Hugging Face hub dataset, but the hub cannot be reached ({why}) and it "
                f"is not in the local cache; {alternative}"
            ) from None
        raise DataError(
            f"hub dataset {name!r} could not be loaded ({type(exc).__name__}: {exc}); {alternative}"
        ) from None
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def hub_split(dd: Any, *names: str) -> Any:
    """The first of the split `names` a DatasetDict has, or None."""
    for n in names:
        if n in dd:
            return dd[n]
    return None

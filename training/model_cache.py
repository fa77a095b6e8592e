"""Loaded models kept per process for the endpoints that run them (span scores, policy samples).

Versions are immutable, so a cached model never goes stale; few are kept, because each holds a backbone in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

CACHED_MODELS = 2

_cache: OrderedDict[str, object] = OrderedDict()
_lock = threading.Lock()


def cached_model(path: Path, load: Callable[[Path], object]) -> object:
    """The model at ``path``, loaded with ``load`` the first time (two requests may both load it once)."""
    key = str(path)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model = load(path)
    with _lock:
        _cache[key] = model
        while len(_cache) > CACHED_MODELS:
            _cache.popitem(last=False)
    return model

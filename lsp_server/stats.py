"""Latency and acceptance figures, kept in memory and (acceptances only) in a local JSON-lines file.

Nothing here leaves the machine: `blockfill/stats` returns the summary to the editor that asks, and the log is
a file the user owns (`acceptance_log` setting; "" keeps none).
"""

import json
import logging
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_WINDOW = 1000  # latest samples kept per figure


def _percentiles(samples: deque[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None, "count": 0}
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered) * 1000, 3), "p95": round(p95 * 1000, 3), "count": len(ordered)}


class Stats:
    def __init__(self, acceptance_log: str) -> None:
        self.acceptance_log = acceptance_log
        self.latency: deque[float] = deque(maxlen=_WINDOW)  # request to answer, model run included, debounce not
        self.latency_by_mode: dict[str, deque[float]] = {}  # the same, per context mode ("line", "block")
        self.outside_model: deque[float] = deque(maxlen=_WINDOW)  # the same, less the denoising itself
        self.outside_engine: deque[float] = deque(maxlen=_WINDOW)  # the same, less all of engine.complete()
        self.cache_hits: deque[float] = deque(maxlen=_WINDOW)  # answers from the typing cache
        self.last_engine_seconds: float | None = None  # engine.complete() wall time of the latest run
        self.shown = 0  # answers with at least one item
        self.accepted = 0
        self.partial = 0
        self.accepted_chars = 0

    def record_answer(self, total: float, model_seconds: float, engine_seconds: float, mode: str) -> None:
        """One answer from the model path: its latency, overall and for its mode, and the time outside."""
        self.latency.append(total)
        self.latency_by_mode.setdefault(mode, deque(maxlen=_WINDOW)).append(total)
        self.outside_model.append(max(0.0, total - model_seconds))
        self.outside_engine.append(max(0.0, total - engine_seconds))

    def record_accept(self, uri: str, language: str | None, text: str, partial: bool) -> None:
        if partial:
            self.partial += 1
        else:
            self.accepted += 1
        self.accepted_chars += len(text)
        if not self.acceptance_log:
            return
        row = {"time": time.time(), "language": language, "chars": len(text), "lines": text.count("\n") + 1}
        try:
            path = Path(self.acceptance_log).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps({**row, "partial": partial}) + "\n")
        except OSError as err:
            log.warning("cannot write the acceptance log %s: %s", self.acceptance_log, err)

    def summary(self, cancel_to_idle: deque[float]) -> dict[str, Any]:
        return {
            "latencyMs": _percentiles(self.latency),
            "latencyByModeMs": {mode: _percentiles(samples) for mode, samples in self.latency_by_mode.items()},
            "outsideModelMs": _percentiles(self.outside_model),
            "outsideEngineMs": _percentiles(self.outside_engine),
            "cacheHitMs": _percentiles(self.cache_hits),
            "cancelToIdleMs": _percentiles(cancel_to_idle),
            "shown": self.shown,
            "accepted": self.accepted,
            "partial": self.partial,
            "acceptedChars": self.accepted_chars,
            "acceptanceRate": round(self.accepted / self.shown, 4) if self.shown else None,
        }

"""The history of a run: every client operation as invoke / ok / fail / info, every
observation and every fault, with its time. The checker reads only this."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path


class History:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[dict] = []
        self.t0 = time.time()

    def add(self, type_: str, f: str, process: str, **fields) -> dict:
        event = {"t": round(time.time() - self.t0, 4), "type": type_, "f": f, "process": process}
        event.update(fields)
        with self._lock:
            self.events.append(event)
        return event

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.events)

    def save(self, path: Path) -> None:
        with open(path, "w") as out:
            for e in self.snapshot():
                out.write(json.dumps(e, separators=(",", ":")) + "\n")

    @staticmethod
    def load(path: Path) -> "History":
        h = History()
        h.t0 = 0.0
        with open(path) as f:
            h.events = [json.loads(line) for line in f if line.strip()]
        return h

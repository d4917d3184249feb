"""The results table of a study: one JSON object per line, appended as each point finishes.

File: ``build/explore/<study>/results.jsonl`` (``docs/explore.md`` §2). Each line is one record
(``key``, ``params``, ``settings``, ``status`` ``"ok"`` or ``"error"``, ``metrics``, ``error``,
and the volatile ``wall_s``, ``worker``, ``finished_utc``). A record is written with one
``write`` of the whole line to a file opened for appending, then flushed and fsynced, so a
study killed at any moment leaves every earlier line whole; at worst the last line is cut
short. Opening the store drops such a torn last line (it is rewritten when the point runs
again) — a broken line anywhere else is corruption and raises.

Resume semantics: a key present in the table is finished — ``"ok"`` or ``"error"`` alike — and
is never run again (``retry_errors=True`` treats error records as not finished: the rerun
appends a new record for the key and the table keeps the last one). :meth:`ResultStore.append`
refuses a key already finished, so the table never holds duplicates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["VOLATILE", "ResultStore", "comparable"]

#: Fields that differ between two runs of the same point (timing, where it ran).
VOLATILE = ("wall_s", "worker", "finished_utc")
REQUIRED = ("key", "status")


def comparable(record: dict) -> dict:
    """The record without its volatile fields (what must be equal between runs)."""
    return {k: v for k, v in record.items() if k not in VOLATILE}


class ResultStore:
    """Append-only JSON-lines table keyed by point key.

    Parameters
    ----------
    path:
        The ``results.jsonl`` file (created with its folder on the first append).
    retry_errors:
        Treat recorded errors as unfinished (they run again).
    """

    def __init__(self, path, retry_errors: bool = False):
        self.path = Path(path)
        self.retry_errors = bool(retry_errors)
        self._records: dict = {}        # key -> last record
        self._lines = 0
        self.dropped_torn_line = False
        self._fix_newline = False
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        # raw ends with "\n" when the last record is whole: the final piece is then empty.
        tail = lines.pop()
        good_bytes = len(raw) - len(tail)
        if tail.strip():
            try:
                rec = json.loads(tail)
                ok = isinstance(rec, dict) and all(k in rec for k in REQUIRED)
            except ValueError:
                ok = False
            if ok:                      # whole record, only its newline missing
                lines.append(tail)
                good_bytes = len(raw)
                self._fix_newline = True
            else:
                self.dropped_torn_line = True
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{self.path}: line {i} is not JSON ({e}); the table is "
                                 f"corrupt (only a torn last line is repaired)") from e
            if not isinstance(rec, dict) or not all(k in rec for k in REQUIRED):
                raise ValueError(f"{self.path}: line {i} is not a result record (needs "
                                 f"{list(REQUIRED)})")
            self._records[rec["key"]] = rec
            self._lines += 1
        if self.dropped_torn_line or self._fix_newline:
            with open(self.path, "r+b") as f:
                f.truncate(good_bytes)
                if self._fix_newline:
                    f.seek(0, os.SEEK_END)
                    f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())

    # -- queries ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key) -> bool:
        return self.finished(key)

    def finished(self, key) -> bool:
        rec = self._records.get(key)
        if rec is None:
            return False
        return not (self.retry_errors and rec.get("status") != "ok")

    def get(self, key) -> dict | None:
        return self._records.get(key)

    @property
    def lines(self) -> int:
        """Records in the file (a retried key counts once per attempt)."""
        return self._lines

    def records(self) -> list:
        """The last record of every key, in the order the keys first appeared."""
        return list(self._records.values())

    def table(self, keys=None) -> list:
        """Comparable records (no volatile fields) sorted by key; only ``keys`` if given."""
        recs = self._records.values() if keys is None else \
            [self._records[k] for k in set(keys) if k in self._records]
        return sorted((comparable(r) for r in recs), key=lambda r: r["key"])

    # -- writing ---------------------------------------------------------------------------------
    def append(self, record: dict) -> None:
        """Append one finished point (one write, flushed and fsynced)."""
        if not isinstance(record, dict) or not all(k in record for k in REQUIRED):
            raise ValueError(f"ResultStore.append: record needs {list(REQUIRED)}")
        key = record["key"]
        if self.finished(key):
            raise ValueError(f"ResultStore.append: key {key!r} is already finished (no "
                             f"duplicates)")
        line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            n = os.write(fd, line)
            if n != len(line):          # a short write on a regular file: out of space
                raise OSError(f"{self.path}: short write ({n} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._records[key] = record
        self._lines += 1

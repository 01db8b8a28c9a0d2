"""Seeded fault decisions that do not depend on thread scheduling.

A shared ``random.Random`` would make injected faults depend on which worker thread reached the server
first. Instead each decision hashes the seed, the kind of fault, a key (the request body's digest, or a
record id) and how many times that key was already decided: the n-th sending of the same batch always
meets the same fate, whatever the interleaving, so a failing test can be replayed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter


class FaultDice:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def roll(self, kind: str, key: str) -> float:
        """A number in [0, 1) for this kind of fault, this key and this repetition of the key."""
        with self._lock:
            occurrence = self._seen[(kind, key)]
            self._seen[(kind, key)] += 1
        digest = hashlib.blake2b(f"{self._seed}|{kind}|{key}|{occurrence}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def hit(self, kind: str, key: str, probability: float) -> bool:
        return probability > 0 and self.roll(kind, key) < probability

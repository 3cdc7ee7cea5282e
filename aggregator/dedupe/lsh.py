"""Locality-sensitive hashing over MinHash signatures: the few earlier entries that could be
near-duplicates of a new one, found without comparing it with every entry of the window."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .data import BUCKET_CAP, NUM_PERM
from .shingles import GOLDEN


def lsh_shape(threshold: float, perms: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows): the most rows a band (fewest false candidates) that still finds a pair
    at Jaccard = threshold with probability >= 0.97."""
    best = (perms, 1)
    for rows in range(1, perms + 1):
        bands = perms // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.97:
            best = (bands, rows)
    return best


class Bands:
    """Banding LSH over MinHash signatures, stored compactly.

    datasketch's MinHashLSH keeps Python dicts of byte-string keys and a list per bucket:
    ~650 MB per 100k entries, so 200k would not fit the 1 GB budget. Here each (band, band
    values) pair is hashed to one uint32 (a chance collision only adds a candidate, which
    verification drops); settled keys live in one sorted array with a parallel int32 row
    array (8 bytes a key, found with searchsorted). The newest CHUNK rows wait in a fixed
    matrix, keyed in batches, then merged into the sorted arrays; batching keeps a start-up
    rebuild of 200k rows to seconds. Queries find pending rows through a dict of their
    (band, key) pairs, built as they are keyed (up to CHUNK x bands entries, ~13 MB).
    """

    CHUNK = 4096  # pending rows: a scan costs ~CHUNK x bands compares, a merge one array pass

    def __init__(self, bands: int, rows: int) -> None:
        self.bands, self.rows = bands, rows
        rng = np.random.RandomState(2)
        self._mult = rng.randint(0, 1 << 62, rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._seeds = np.arange(1, bands + 1, dtype=np.uint64) * GOLDEN
        self._keys = np.zeros(0, dtype=np.uint32)
        self._rows = np.zeros(0, dtype=np.int32)
        self._pending_sigs = np.zeros((self.CHUNK, NUM_PERM), dtype=np.uint32)
        self._pending_keys = np.zeros((self.CHUNK, bands), dtype=np.uint32)
        self._pending_rows = np.zeros(self.CHUNK, dtype=np.int32)
        self._pending = self._keyed = 0
        # (band << 32 | key) -> pending rows with that key in that band, oldest first; the
        # int-or-list layout of index.py's _MultiMap, inlined: calling it costs +17% here
        self._pending_index: dict[int, int | list[int]] = {}
        self._band_bits = np.arange(bands, dtype=np.uint64) << np.uint64(32)

    def keys(self, hashes: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
        """Band keys of a signature (1-d) or of each row of a signature matrix (2-d): per band
        its values mixed together with the band's number, as uint32."""
        shape = (*hashes.shape[:-1], self.bands, self.rows)
        values = hashes[..., : self.bands * self.rows].reshape(shape).astype(np.uint64)
        mixed = np.bitwise_xor.reduce(values * self._mult, axis=-1) ^ self._seeds
        return ((mixed * GOLDEN) >> np.uint64(32)).astype(np.uint32)

    def add(
        self, row: int, hashes: npt.NDArray[np.uint32], keys: npt.NDArray[np.uint32] | None = None
    ) -> None:
        """Add a row; `keys` (its `keys(hashes)`, when the caller has them from a query) are
        indexed at once instead of being computed again."""
        at = self._pending
        self._pending_sigs[at] = hashes
        self._pending_rows[at] = row
        self._pending += 1
        if keys is not None and self._keyed == at:
            self._pending_keys[at] = keys
            self._keyed = self._pending
            self._index_pending(slice(at, at + 1))
        if self._pending == self.CHUNK:
            self.merge()

    def _key_pending(self, index: bool) -> None:
        if self._keyed < self._pending:
            new = slice(self._keyed, self._pending)
            self._pending_keys[new] = self.keys(self._pending_sigs[new])
            self._keyed = self._pending
            if index:
                self._index_pending(new)

    def _index_pending(self, new: slice) -> None:
        table = self._pending_index
        pairs = (self._pending_keys[new].astype(np.uint64) | self._band_bits).tolist()
        for row, row_pairs in zip(self._pending_rows[new].tolist(), pairs, strict=True):
            for pair in row_pairs:
                old = table.get(pair)
                if old is None:
                    table[pair] = row
                elif isinstance(old, list):
                    old.append(row)
                else:
                    table[pair] = [old, row]

    def merge(self) -> None:
        """Move the pending rows into the sorted arrays, newer rows after older in a bucket."""
        self._key_pending(index=False)
        self._pending_index = {}
        count, self._pending, self._keyed = self._pending, 0, 0
        if not count:
            return
        keys = self._pending_keys[:count].ravel()
        rows = np.repeat(self._pending_rows[:count], self.bands)
        order = np.lexsort((rows, keys))
        keys, rows = keys[order], rows[order]
        at = np.searchsorted(self._keys, keys, side="right")
        self._keys, self._rows = np.insert(self._keys, at, keys), np.insert(self._rows, at, rows)

    def query(self, keys: npt.NDArray[np.uint32]) -> set[int]:
        """Rows sharing at least one band, at most BUCKET_CAP newest per bucket."""
        found: set[int] = set()
        settled = self._keys
        if len(settled):
            # One binary search a band (each probe of the big array is a cache miss); most
            # bands hit nothing, and a bucket's far end is looked up only for those that do.
            low = settled.searchsorted(keys)
            hits = np.flatnonzero(settled[np.minimum(low, len(settled) - 1)] == keys)
            for band in hits.tolist():
                lo = int(low[band])
                hi = int(settled.searchsorted(keys[band], side="right"))
                found.update(self._rows[max(lo, hi - BUCKET_CAP) : hi].tolist())
        if self._pending:
            self._key_pending(index=True)
            table = self._pending_index
            for pair in (keys.astype(np.uint64) | self._band_bits).tolist():
                rows = table.get(pair)
                if rows is None:
                    continue
                if isinstance(rows, list):
                    found.update(rows[-BUCKET_CAP:])
                else:
                    found.add(rows)
        return found

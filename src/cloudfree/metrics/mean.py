"""The one NaN-aware mean of per-patch metrics, used by ``evaluate``, its tables and validation.

A per-patch metric can be undefined: a recon metric on a cloud-free patch, a reprod metric on
a fully clouded one (:mod:`cloudfree.metrics.patch` gives NaN there, never 0). The mean over
a set of patches is then the mean over the patches where the metric is defined, key by key,
and a key undefined on every patch stays NaN. :class:`NanMean` keeps, per key, the sum and the
count of the defined values (O(keys) memory however many patches are added), so that running
sums from other processes can be merged before the division (:meth:`NanMean.add_totals`, used
by validation after its ``all_reduce``).

Plain Python floats, no torch: the CLI's tables use it without importing torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence


class NanMean:
    """NaN-aware running means of named values.

    Args:
        keys: the names averaged, in the order :meth:`means` returns them.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys: tuple[str, ...] = tuple(keys)
        #: Number of rows (patches) added, defined values or not.
        self.count = 0
        self._sum = dict.fromkeys(self.keys, 0.0)
        self._n = dict.fromkeys(self.keys, 0)

    def add(self, row: Mapping[str, float]) -> None:
        """Add one row holding every key; a NaN value is skipped for its key only."""
        self.count += 1
        for k in self.keys:
            v = float(row[k])
            if not math.isnan(v):
                self._sum[k] += v
                self._n[k] += 1

    def add_totals(self, sums: Sequence[float], counts: Sequence[float], rows: int) -> None:
        """Merge sums and counts of defined values taken elsewhere (e.g. summed over ranks).

        Args:
            sums: per key (in :attr:`keys` order), the sum of its defined values.
            counts: per key, how many values were defined (a float count is rounded).
            rows: how many rows those totals cover.
        """
        if len(sums) != len(self.keys) or len(counts) != len(self.keys):
            raise ValueError(
                f"add_totals needs one sum and one count per key ({len(self.keys)}), "
                f"got {len(sums)} sums and {len(counts)} counts"
            )
        self.count += int(rows)
        for k, s, n in zip(self.keys, sums, counts, strict=True):
            self._sum[k] += float(s)
            self._n[k] += int(round(float(n)))

    def means(self) -> dict[str, float]:
        """``{key: mean}`` over the defined values; NaN where a key was never defined.

        A +inf value (the PSNR of a perfect patch) makes its key's mean +inf, as a plain mean
        over the patches would.
        """
        return {k: self._sum[k] / self._n[k] if self._n[k] else math.nan for k in self.keys}

    def summary(self) -> dict[str, float]:
        """:meth:`means` plus ``"count"``, the number of rows added."""
        return {**self.means(), "count": self.count}

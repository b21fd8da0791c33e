"""Gate noise keyed by global record index: the same draws however the records are split.

The records are cut into fixed blocks of :data:`BLOCK` global indices. The noise of block ``c``
in epoch ``e`` comes from torch's generator seeded with a hash of ``(seed, e, c)``; a rank draws
the blocks its records touch and keeps its slice. Record ``i`` therefore gets the same uniform
in every epoch whether it sits on rank 0 of 1 or on rank 3 of 4 — the condition for a
distributed calibration to give the same answer for any number of ranks.
"""

from __future__ import annotations

import torch

__all__ = ["BlockNoise", "BLOCK"]

BLOCK = 1 << 12
_MASK = (1 << 64) - 1


def _mix(*parts: int) -> int:
    """SplitMix64 folded over the parts: a 63-bit seed (Python ints, exact)."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = (h ^ (part & _MASK)) & _MASK
        h = (h + 0x9E3779B97F4A7C15) & _MASK
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK
        h ^= h >> 31
    return h >> 1


class BlockNoise:
    """Uniform float32 noise for records ``offset .. offset + n - 1`` of a global numbering."""

    def __init__(self, seed: int, offset: int, n: int, device: torch.device | str = "cpu") -> None:
        self.seed, self.offset, self.n = int(seed), int(offset), int(n)
        self.device = torch.device(device)
        self._generator = torch.Generator(device=self.device)

    def __call__(self, epoch: int) -> torch.Tensor:
        out = torch.empty(self.n, dtype=torch.float32, device=self.device)
        if self.n == 0:
            return out
        first, last = self.offset // BLOCK, (self.offset + self.n - 1) // BLOCK
        for block in range(first, last + 1):
            self._generator.manual_seed(_mix(self.seed, epoch, block))
            start = block * BLOCK
            lo, hi = max(self.offset, start), min(self.offset + self.n, start + BLOCK)
            # always a whole block: a shorter draw need not be a prefix of the longer one
            draws = torch.rand(BLOCK, generator=self._generator, dtype=torch.float32,
                               device=self.device)
            out[lo - self.offset: hi - self.offset] = draws[lo - start: hi - start]
        return out

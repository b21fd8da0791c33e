"""Local random generators: the package never draws from or reseeds torch's global RNG."""

from __future__ import annotations

from typing import Any

import torch

from ._validation import check_int


def local_generator(
    seed: Any, *, name: str = "seed", device: torch.device | str | None = None
) -> torch.Generator:
    """A new generator seeded with ``seed`` (an int >= 0), or from fresh OS entropy when None."""
    gen = torch.Generator(device=device) if device is not None else torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(check_int(name, seed, low=0))
    return gen


def generator_or_global(
    seed: Any, *, name: str = "seed", device: torch.device | str | None = None
) -> torch.Generator | None:
    """The 0.6.x convention of the drop-in estimators: a seeded local generator, or ``None`` —
    torch's global generator, so that ``torch.manual_seed`` makes them reproducible (as it does
    ``torch.nn.init``) — when ``seed`` is None. The global generator is never reseeded."""
    return None if seed is None else local_generator(seed, name=name, device=device)

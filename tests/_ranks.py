"""Spawning a few ``torch.distributed`` ranks from a test, with a timeout that never hangs CI."""

from __future__ import annotations

import socket
from collections.abc import Callable

import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on localhost nobody listens on (for the rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(target: Callable, world: int, *args: object, timeout: float = 120) -> None:
    """Run ``target(rank, world, port, *args)`` in ``world`` spawned processes; kill any that
    outlives ``timeout`` and fail unless every rank exits cleanly."""
    context = mp.get_context("spawn")
    port = free_port()
    procs = [context.Process(target=target, args=(r, world, port, *args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank did not finish in time"
    assert [p.exitcode for p in procs] == [0] * world

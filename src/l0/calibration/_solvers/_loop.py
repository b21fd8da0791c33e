"""The training loop around the engine: stopping rule, budget controller, history, checkpoints.

Every ``eval_every`` epochs the loop records one history row (mean training objective of the
window, the deterministic weights' loss, mean and max relative error, open gates, expected open
gates, L0 multiplier) and decides whether to stop:

* every target is within its tolerance band in every sampled epoch of the last window (only
  when some tolerance is positive), or
* the windowed objective has not improved by a relative ``rtol`` for ``patience`` windows
  (and, with a record budget, the open gates are within 5 % of it), or
* ``max_epochs`` is reached.

The loop's own state is saved with the engine's, so a checkpointed and resumed run is bit for
bit the uninterrupted one.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ...nn.schedules import BudgetController
from ._engine import GradientEngine
from ._progress import LOG, is_terminal

__all__ = ["StoppingRule", "TrainingLoop", "check_checkpoint_path"]

_CHECKPOINT_KEYS = {"engine", "loop", "controller", "fingerprint"}


def check_checkpoint_path(path: str | os.PathLike) -> None:
    """Fail before training, not after it, when a checkpoint could not be written."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ValueError(f"`checkpoint` must be a path in an existing folder; got {str(path)!r} "
                         f"(no folder {folder!r}).")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"`checkpoint` must be a path in a writable folder; got {str(path)!r}.")


@dataclass(frozen=True)
class StoppingRule:
    max_epochs: int = 2000
    eval_every: int = 10
    rtol: float = 1e-3
    patience: int = 20
    ramp_epochs: int = 500  # a record budget is approached over these epochs (BudgetController)


@dataclass
class _LoopState:
    best: float = math.inf
    since_best: int = 0
    window_sum: float = 0.0
    window_len: int = 0
    window_data: float = 0.0
    converged: bool = False
    reason: str = "not started"
    history: list[dict[str, float]] = field(default_factory=list)


class TrainingLoop:
    """Runs an engine to convergence, optionally under a record budget."""

    def __init__(
        self,
        engine: GradientEngine,
        rule: StoppingRule,
        *,
        controller: BudgetController | None = None,
        n_scale: float = 1.0,
        fingerprint: Any = None,
    ) -> None:
        self.engine = engine
        self.rule = rule
        self.controller = controller
        self.budget = None if controller is None else controller.budget
        self.n_scale = n_scale  # the engine's L0 weight is multiplier / n_scale
        self.fingerprint = fingerprint
        self.state = _LoopState()
        self._log_every: int | None = None  # epochs between log lines (set by run)
        self._banded = bool((engine.problem.tolerance > 0).any())

    # ------------------------------------------------------------------ running
    def run(
        self,
        epochs: int | None = None,
        *,
        progress: bool | None = False,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
    ) -> None:
        """Train until the stopping rule fires, or for ``epochs`` more epochs if given.

        ``progress``: True shows a tqdm bar, False nothing, None a bar only when stderr is a
        terminal and otherwise a few plain lines on the ``"l0"`` logger (INFO): a quarter of
        the way, half, three quarters, and the end.
        """
        engine, rule, st = self.engine, self.rule, self.state
        stop_at = rule.max_epochs if epochs is None else engine.epoch + epochs
        self._log_every = None
        if progress is None:
            progress = is_terminal()
            if not progress:
                self._log_every = max(1, (stop_at - engine.epoch) // 4)
        start_epoch = engine.epoch
        bar = None
        if progress and stop_at > engine.epoch:
            from tqdm.auto import tqdm

            bar = tqdm(total=stop_at - engine.epoch, desc="l0 calibration", unit="epoch",
                       delay=2.0, leave=False)
        st.reason = "max_epochs reached" if epochs is None else f"ran {epochs} epochs"
        try:
            while engine.epoch < stop_at:
                if self.controller is not None:
                    engine.l0_weight = self.controller.multiplier / self.n_scale
                loss, expected = engine.step()
                if self.controller is not None:  # feedback on the count the user asked for
                    self.controller.step(engine.count_open())
                # Under a budget the multiplier moves, so only the data loss is comparable.
                st.window_sum += loss if self.controller else loss + engine.l0_weight * expected
                st.window_len += 1
                st.window_data += loss
                if bar is not None:
                    bar.update(1)
                if engine.epoch % rule.eval_every == 0 and self._evaluate(bar):
                    if epochs is None:
                        break
                if checkpoint is not None and checkpoint_every and engine.epoch % checkpoint_every == 0:
                    self.save(checkpoint)
                if self._log_every and (engine.epoch - start_epoch) % self._log_every == 0 \
                        and st.history:
                    self._log_line(stop_at)
        finally:
            if bar is not None:
                bar.close()
            if self._log_every and st.history:
                LOG.info("l0 gate training stopped at epoch %d: %s", engine.epoch, st.reason)

    def _log_line(self, stop_at: int) -> None:
        row = self.state.history[-1]
        LOG.info("l0 gate training: epoch %d of at most %d, max error %.3g, %d records open",
                  self.engine.epoch, stop_at, row["max_error"], row["n_open"])

    def _evaluate(self, bar: Any) -> bool:
        engine, rule, st = self.engine, self.rule, self.state
        row = {"epoch": engine.epoch, "objective": st.window_sum / st.window_len}
        row.update(engine.evaluate())
        row["l0_multiplier"] = engine.l0_weight * self.n_scale
        st.history.append(row)
        within = st.window_data == 0.0  # every sampled epoch of the window met every band
        st.window_sum, st.window_len, st.window_data = 0.0, 0, 0.0
        if bar is not None:
            bar.set_postfix(max_error=f"{row['max_error']:.2e}", open=row["n_open"])
        on_budget = self.controller is None or abs(row["n_open"] - self.budget) <= max(
            0.05 * self.budget, 1.0
        )
        if row["objective"] < st.best * (1.0 - rule.rtol) or not on_budget:
            st.best, st.since_best = row["objective"], 0  # patience counts only on budget
        else:
            st.since_best += 1
        if self._banded and within and on_budget:
            st.converged, st.reason = True, "all targets within tolerance"
        elif st.since_best >= rule.patience and on_budget:
            st.converged = True
            st.reason = f"objective improved by less than rtol={rule.rtol} in {rule.patience} checks"
        return st.converged

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        st = asdict(self.state)
        return {
            "engine": self.engine.state_dict(),
            "loop": st,
            "controller": None if self.controller is None else self.controller.state_dict(),
            "fingerprint": self.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(
                "`resume` must be a checkpoint of this problem and these settings; got one saved "
                f"for {state.get('fingerprint')!r}, expected {self.fingerprint!r}."
            )
        self.engine.load_state_dict(state["engine"])
        self.state = _LoopState(**state["loop"])
        if self.controller is not None:
            self.controller.load_state_dict(state["controller"])

    def save(self, path: str | os.PathLike) -> None:
        tmp = f"{os.fspath(path)}.tmp"
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)  # never leave a half-written checkpoint behind

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save`. Only tensors and plain containers are
        read (``weights_only=True``: a crafted file cannot run code); anything that is not a
        checkpoint of this problem and these settings is a ``ValueError`` naming ``resume``."""
        if not os.path.isfile(path):
            raise ValueError(f"`resume` must be an existing checkpoint file; got {str(path)!r}.")
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # truncated, corrupted, foreign or unsafe pickles alike
            raise ValueError(
                f"`resume` must be a checkpoint written by calibrate(checkpoint=...); "
                f"{str(path)!r} could not be read as one ({type(exc).__name__})."
            ) from exc
        if not isinstance(state, dict) or not _CHECKPOINT_KEYS <= set(state):
            raise ValueError(
                f"`resume` must be a checkpoint written by calibrate(checkpoint=...); "
                f"{str(path)!r} holds something else."
            )
        self.load_state_dict(state)

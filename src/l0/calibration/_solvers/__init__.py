"""The solvers behind :func:`~l0.calibration.calibrate`, one module per method.

* :mod:`.methods` — THE method table: ``method=`` name → settings type, solver, checks.
* :mod:`.distances` — the calibration distances (linear, raking, logit), registered once.
* ``l0`` (select, then refit: :mod:`.candidates` hold the contest), ``exact`` (HiGHS vertex),
  ``classical`` (linear, raking, logit); ``refit`` and ``capped_vertex`` are shared by ``l0``
  and ``exact``; ``_newton`` is the minimum-distance Newton solver the refit and the classical
  methods share; ``_engine``, ``_loop`` and ``_adam`` train the gates.

This file imports nothing, so that a module below the table (the distances, read by the
options) can be imported without the solvers.
"""

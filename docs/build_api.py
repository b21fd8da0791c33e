"""Write the API reference (HTML, from the numpydoc docstrings) with pdoc.

    python docs/build_api.py [OUT]      # default: docs/api

Every public module is listed explicitly, so modules that a package's ``__all__`` does not name
(``l0.nn.layers``, ``l0.calibration.margins``, ...) get their own page; private modules do not.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

MODULES = [
    "l0", "l0.functional", "l0.distributions", "l0.selection", "l0.diagnostics", "l0.datasets",
    "l0.cli",
    "l0.nn", "l0.nn.gates", "l0.nn.sites", "l0.nn.layers", "l0.nn.conv", "l0.nn.parametrize",
    "l0.nn.sparse",
    "l0.nn.fused", "l0.nn.export", "l0.nn.costs", "l0.nn.compute", "l0.nn.penalties",
    "l0.nn.schedules",
    "l0.calibration", "l0.calibration.options", "l0.calibration.result",
    "l0.calibration.frontier", "l0.calibration.targets", "l0.calibration.margins",
    "l0.calibration.geography", "l0.calibration.estimator", "l0.calibration.plots",
    "l0.calibration.report",
]


def main() -> None:
    import pdoc
    import pdoc.render

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "api"
    pdoc.render.configure(docformat="numpy", footer_text="l0 API reference")
    # `l0` itself pulls in the submodules its __all__ names; listing them again is harmless
    warnings.filterwarnings("ignore", message="The module specification")
    pdoc.pdoc(*MODULES, output_directory=out)
    print(f"API reference: {out / 'index.html'}")


if __name__ == "__main__":
    main()

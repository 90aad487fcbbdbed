"""Evaluation mode: run graphs as solvers over an MCQ benchmark and compare their accuracy.

``medloom.eval.evaluate`` (or ``await medloom.eval.aevaluate`` inside an event loop) runs the
solvers; ``medloom.eval.outputs.write_results`` writes predictions and the results table. This
package import stays light (no datasets).
"""

from typing import TYPE_CHECKING, Any

from medloom.eval.records import EvalResult, Prediction, SolverResult
from medloom.eval.stats import wilson_interval

if TYPE_CHECKING:
    from medloom.eval.runner import aevaluate, evaluate

__all__ = ["EvalResult", "Prediction", "SolverResult", "aevaluate", "evaluate", "wilson_interval"]


def __getattr__(name: str) -> Any:
    """``evaluate`` and ``aevaluate``, imported when first used (they pull in the run machinery)."""
    if name in ("evaluate", "aevaluate"):
        from medloom.eval import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'medloom.eval' has no attribute '{name}'")

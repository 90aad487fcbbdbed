"""Evaluation mode: run graphs as solvers over an MCQ benchmark and compare their accuracy.

``medloom.eval.runner.aevaluate`` runs the solvers; ``medloom.eval.outputs.write_results``
writes predictions and the results table. This package import stays light (no datasets).
"""

from medloom.eval.records import EvalResult, Prediction, SolverResult
from medloom.eval.stats import wilson_interval

__all__ = ["EvalResult", "Prediction", "SolverResult", "wilson_interval"]

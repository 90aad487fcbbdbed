"""Medprompt's building blocks: the few-shot bank and nearest-neighbour search over it.

The recipe's ops live in ``medloom.steps.knn_fewshot`` and ``medloom.steps.choice_shuffle``.
"""

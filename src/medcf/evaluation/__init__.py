"""Evaluation: a model judged on its held-out patients (FID/KID, diversity, effectiveness, memorisation,
counterfactual soundness, attribution against ground truth), and the benchmark suites built on it."""

from medcf.evaluation.run import Evaluation, EvaluationSettings, evaluate_model, evaluate_to_folder

__all__ = ["Evaluation", "EvaluationSettings", "evaluate_model", "evaluate_to_folder"]

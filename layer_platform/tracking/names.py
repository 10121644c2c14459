"""Registered model names: what the training stages register and every reader loads by alias."""

#: The segmenter's registered model (and its MLflow experiment).
SEGMENTER = "layer-segmenter"
#: The classifiers' MLflow experiment (one parent run per input mode).
CLASSIFIER_EXPERIMENT = "layer-classifier"


def registered_name(mode: str) -> str:
    """The registered classifier of input ``mode``."""
    return f"layer-classifier-{mode}"

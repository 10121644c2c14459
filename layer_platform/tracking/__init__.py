"""Experiment tracking and the model registry (MLflow): where trained models live."""

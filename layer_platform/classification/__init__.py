"""Pain classifiers (MP vs control) on B-mode, SWE and B-mode+SWE volumes.

Pure domain code: no orchestration or tracking imports. Progress leaves through callbacks so the
orchestration layer can log it (to MLflow) without this package knowing how.
"""

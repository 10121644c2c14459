"""LAYER platform: which tissue layer drives a model's prediction of myofascial pain?

Domain code (``io``, ``ingestion``, ``simulation``, ``imaging``, ``warehouse``, ``quality``)
imports nothing from Dagster; the Dagster wiring lives in ``layer_platform.defs``.
"""

__version__ = "0.1.0"

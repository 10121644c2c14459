"""Driving Dagster from the CLI, tests and the bench: the stage plan, runs on a local instance.

Nothing here is a Dagster definition (those live in ``layer_platform.defs``); every private
Dagster import of the project sits in ``dagster_internals``.
"""

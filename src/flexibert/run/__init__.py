"""The main job, ``flexibert run``: one config, every stage from the space to the confirmed answer and its report."""

from flexibert.run.config import RunConfig
from flexibert.run.job import run_job

__all__ = ["RunConfig", "run_job"]

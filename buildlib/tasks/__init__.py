"""The only package that knows doit: every build step as a content-keyed doit task.

`families` makes the task dicts, `keys` decides what is up to date, `run` drives doit's runner,
`explain` says why a task will run. dodo.py and the CLI both go through here.
"""

from .families import BuildOptions, ErrorSink, Plan, record_path
from .keys import InputKeys, XXHashChecker
from .run import (
    BuildReport,
    RecordingReporter,
    build_spec,
    doit_config,
    ensure_images,
    jobs_args,
    plan_build,
    project_plan,
    run_plan,
)

__all__ = [
    "BuildOptions",
    "BuildReport",
    "ErrorSink",
    "InputKeys",
    "Plan",
    "RecordingReporter",
    "XXHashChecker",
    "build_spec",
    "doit_config",
    "ensure_images",
    "jobs_args",
    "plan_build",
    "project_plan",
    "record_path",
    "run_plan",
]

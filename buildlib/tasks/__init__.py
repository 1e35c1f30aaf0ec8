"""The only package that knows doit: every build step as a content-keyed doit task.

`families` makes the task dicts, `keys` decides what is up to date, `run` drives doit's runner,
`explain` says why a task will run. dodo.py and the CLI both go through here.
"""

from .families import BuildOptions, ErrorSink, record_path, state_dir
from .identity import public_task_name, spec_state_id
from .keys import InputKeys, XXHashChecker
from .plan import Plan
from .report import HandledFailure, RecordingReporter, TaskEvent, TaskEventKind, TaskListener
from .run import (
    FAMILY_DOCS,
    BuildReport,
    build_spec,
    doit_config,
    ensure_images,
    family_groups,
    jobs_args,
    plan_build,
    project_plan,
    run_plan,
)

__all__ = [
    "BuildOptions",
    "BuildReport",
    "ErrorSink",
    "HandledFailure",
    "InputKeys",
    "Plan",
    "RecordingReporter",
    "XXHashChecker",
    "build_spec",
    "doit_config",
    "ensure_images",
    "FAMILY_DOCS",
    "family_groups",
    "jobs_args",
    "plan_build",
    "project_plan",
    "public_task_name",
    "record_path",
    "spec_state_id",
    "state_dir",
    "run_plan",
    "TaskEvent",
    "TaskEventKind",
    "TaskListener",
]

"""`python run.py --config=configs/tasks/recall.py`: a comparison task (docs/tasks.md);
the code is rnnbench/configs/tasks/recall.py."""

from rnnbench.configs.tasks.recall import get_config  # noqa: F401

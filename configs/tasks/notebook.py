"""`python run.py --config=configs/tasks/notebook.py`: a comparison task (docs/tasks.md);
the code is rnnbench/configs/tasks/notebook.py."""

from rnnbench.configs.tasks.notebook import get_config  # noqa: F401

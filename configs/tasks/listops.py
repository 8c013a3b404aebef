"""`python run.py --config=configs/tasks/listops.py`: a comparison task (docs/tasks.md);
the code is rnnbench/configs/tasks/listops.py."""

from rnnbench.configs.tasks.listops import get_config  # noqa: F401

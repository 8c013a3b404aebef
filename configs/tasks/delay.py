"""`python run.py --config=configs/tasks/delay.py`: a comparison task (docs/tasks.md);
the code is rnnbench/configs/tasks/delay.py."""

from rnnbench.configs.tasks.delay import get_config  # noqa: F401

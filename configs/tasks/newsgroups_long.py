"""`python run.py --config=configs/tasks/newsgroups_long.py`: a comparison task (docs/tasks.md);
the code is rnnbench/configs/tasks/newsgroups_long.py."""

from rnnbench.configs.tasks.newsgroups_long import get_config  # noqa: F401

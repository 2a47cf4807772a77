"""``python -m rollwatch.agents``: the worker command on its own (see :mod:`rollwatch.agents.cli`)."""

from rollwatch.agents.cli import main

main()

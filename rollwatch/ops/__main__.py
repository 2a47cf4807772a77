"""``python -m rollwatch.ops``: tail, status and traffic without the main CLI."""

from rollwatch.ops.cli import main

main()

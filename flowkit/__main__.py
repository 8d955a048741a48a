"""``python -m flowkit``: the same as the ``flowkit`` command."""
from flowkit._console import run

run()

"""``python -m flowkit``: the same as the ``flowkit`` command."""
import sys

from flowkit.cli import main

sys.exit(main())

"""``python -m icpo``: the ``icpo`` command (``icpo.cli``), for environments without the console script."""

import sys

from icpo.cli import main

sys.exit(main())

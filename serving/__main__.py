"""python -m serving query|serve ... (see serving/cli.py)."""

import sys

from serving import cli

sys.exit(cli.main())

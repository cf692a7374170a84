"""`python -m ssimrecon.cli ...`: the same as the `ssimrecon` command."""

import sys

from ssimrecon.cli import main

sys.exit(main())

"""`python -m mixma` is the `mixma` command."""

import sys

from mixma.cli import main

sys.exit(main())

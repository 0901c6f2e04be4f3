"""`python -m notifier` is the `notifier` command."""

import sys

from notifier.cli.app import main

sys.exit(main())

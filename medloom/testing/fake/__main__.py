"""``python -m medloom.testing.fake``: see :mod:`medloom.testing.fake.cli`."""

import sys

from medloom.testing.fake.cli import main

sys.exit(main())

"""``python -m fcam`` is the ``fcam`` command."""

import sys

from fcam.cli import main

sys.exit(main())

"""``python -m lm_api`` runs the server, like ``python -m lm_api.server``."""

import sys

from lm_api.server import main

sys.exit(main())

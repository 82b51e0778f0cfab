"""``python -m scoremix_ds`` (also what ``accelerate launch -m scoremix_ds`` runs)."""

import sys

from .cli import main

sys.exit(main())

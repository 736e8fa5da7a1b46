"""``python -m cf_iap_training`` = ``cf-iap-train``."""

import sys

from .cli import main

sys.exit(main())

"""``python -m jwarp.pretrained``: see ``jwarp.pretrained``."""

import sys

from jwarp.pretrained import main

sys.exit(main())

"""``python3 -m verifier …`` (from a checkout) runs the same command line as ``python3 masker-verify.pyz …``."""

import sys

from verifier.cli import main

sys.exit(main())

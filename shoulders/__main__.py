"""``python -m shoulders``: the same CLI, launchable by torchrun / accelerate."""

import sys

from shoulders.cli import main

if __name__ == "__main__":
    sys.exit(main())

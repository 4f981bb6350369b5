"""`python -m monitor`: the provmon command line."""

import sys

from monitor.cli import main

if __name__ == "__main__":  # worker processes re-import this module under another name
    sys.exit(main())

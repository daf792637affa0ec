import sys

from jetx.cli import main

sys.exit(main())

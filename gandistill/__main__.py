import sys

from gandistill.cli import main

sys.exit(main())

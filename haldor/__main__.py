import sys

from haldor.cli import main

sys.exit(main())

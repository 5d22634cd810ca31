import sys

from haldor.cli import main

# guarded: the schedule worker's child process (multiprocessing, spawn) imports this module again
if __name__ == "__main__":
    sys.exit(main())

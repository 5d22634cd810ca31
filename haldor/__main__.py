"""`haldor` and `python -m haldor`: the command line (:mod:`haldor.cli`), imported with
Python's cyclic garbage collector held off. A start allocates much and frees almost nothing:
its collections cost `haldor run` 5 to 10 ms before its first decision (a Pi 3 to 5 times
that). Each command turns the collector on as it runs; `haldor run` once its doors are idle
(:mod:`haldor.agent.door_first`)."""

import gc
import sys


def main() -> int:
    gc.disable()
    from haldor.cli import main as command

    return command()


# guarded: the schedule worker's child process (multiprocessing, spawn) imports this module again
if __name__ == "__main__":
    sys.exit(main())

"""`haldor fleet user ...`: the fleet's operators from the command line. Apart from
`run`, so that adding a user does not import the page, the consumer and the alerting."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from haldor.errors import EXIT_BAD_INPUT, EXIT_FAILURE
from haldor.sql import Database

from .operators import OperatorError, Operators


def manage_users(args: Any) -> int:
    """haldor fleet user add NAME [--role R] [--password-stdin] | user remove NAME | user unlock NAME | user list"""
    words = args.manage
    if (
        words[0] != "user"
        or len(words) < 2
        or words[1] not in ("add", "remove", "unlock", "list")
        or len(words) != (2 if words[1] == "list" else 3)
    ):
        print("haldor fleet: expected: user add NAME | user remove NAME | user unlock NAME | user list", file=sys.stderr)
        return EXIT_BAD_INPUT
    users = Operators(Database.open(args.db))
    if words[1] == "list":
        for name, role, locked in users.list():
            print("\t".join([name, role, *(["locked"] if locked else [])]))
        return 0
    name = words[2]
    if words[1] in ("unlock", "remove"):
        if not (users.unlock(name) if words[1] == "unlock" else users.remove(name)):
            print(f"haldor fleet: no user {name!r}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"unlocked {name}" if words[1] == "unlock" else f"removed {name}: its sessions end now")
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            print("haldor fleet: the two passwords differ", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        users.add(name, password, args.role)
    except OperatorError as exc:
        print(f"haldor fleet: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"added {name} ({args.role})")
    return 0

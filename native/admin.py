"""`make admin ARGS="..."`: db-api's operator commands on native mode's database.

The same commands as `python -m db_api.admin` (create-admin, make-admin,
reset-password, list-users), with native mode's configuration and generated secrets.
PostgreSQL must be running: `make run` in another terminal.
"""

from __future__ import annotations

import os
import sys

from native.stack import VENV_PYTHON, load_environment


def main() -> None:
    env = load_environment()
    env["POSTGRES_HOST"] = "127.0.0.1"
    command = [str(VENV_PYTHON), "-m", "db_api.admin", *sys.argv[1:]]
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()

"""Print the hub database's schema revision and the one the installed JupyterHub needs.

Run with the hub venv's Python: `python db_revision.py DB_FILE`. Prints JSON
{"database": REV, "head": REV, "known": BOOL}; reads the database without writing to it.
The role upgrades the schema whenever the two differ, so a run that died between
installing a new JupyterHub and migrating its database is finished by the next run.
"""

import json
import os
import sqlite3
import sys

import jupyterhub
from alembic.script import ScriptDirectory


def main(db_file):
    scripts = ScriptDirectory(os.path.join(os.path.dirname(jupyterhub.__file__), "alembic"))
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as db:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    current = row[0] if row else None
    known = {script.revision for script in scripts.walk_revisions()}
    print(json.dumps({"database": current, "head": scripts.get_current_head(), "known": current in known}))


if __name__ == "__main__":
    main(sys.argv[1])

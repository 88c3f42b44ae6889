"""Make the push endpoint's htpasswd hold the login in LOGIN_FILE (USER:PASSWORD).

    registry_htpasswd.py LOGIN_FILE HTPASSWD_FILE

bcrypt is the only hash Debian's docker-registry reads. The file is rewritten only when it
does not already verify the login (a fresh bcrypt salt each time would otherwise make every
run a change); then "written" is printed, for the task's changed_when.
"""

import os
import shutil
import sys

import bcrypt

login_file, htpasswd = sys.argv[1:]
user, _, password = open(login_file).read().strip().partition(":")
try:
    name, _, hashed = open(htpasswd).read().strip().partition(":")
    if name == user and bcrypt.checkpw(password.encode(), hashed.encode()):
        sys.exit(0)
except (OSError, ValueError):
    pass  # missing or unreadable as a hash: write it
new = htpasswd + ".new"
descriptor = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
with os.fdopen(descriptor, "w") as out:
    out.write(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n")
shutil.chown(new, "root", "docker-registry")
os.replace(new, htpasswd)
print("written")

"""A real campus directory for the login tests: Debian's slapd on loopback, with its own
configuration and database in a temporary folder (no system service, nothing outside it),
filled with users and course groups; ldapmodify changes memberships as a directory admin
would. The packages come from tests/env/testenv.sh (slapd, ldap-utils)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

SUFFIX = "dc=campus,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "directory-admin-secret"

CONFIG = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {work}/slapd.pid
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {work}/db
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
"""


def user_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{SUFFIX}"


def group_dn(cn: str) -> str:
    return f"cn={cn},ou=groups,{SUFFIX}"


class Slapd:
    """slapd on 127.0.0.1:PORT. `users`: {uid: password}; `groups`: {cn: [uid, ...]}."""

    def __init__(self, workdir: Path, users: dict[str, str], groups: dict[str, list[str]]):
        if not shutil.which("slapd", path="/usr/sbin:/usr/bin") or not shutil.which("ldapadd"):
            raise RuntimeError("slapd and ldap-utils are missing: run `make testenv` (tests/env/testenv.sh)")
        self.work = workdir
        (workdir / "db").mkdir(parents=True)
        conf = workdir / "slapd.conf"
        conf.write_text(CONFIG.format(work=workdir, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.log = open(workdir / "slapd.log", "wb")
        # -d 0: in the foreground (no fork), so that the test owns the process.
        self.process = subprocess.Popen(
            ["/usr/sbin/slapd", "-d", "0", "-h", f"{self.url}/", "-f", str(conf)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while subprocess.run(self._tool("ldapwhoami"), capture_output=True).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"slapd did not start: {(workdir / 'slapd.log').read_text()[-2000:]}")
            time.sleep(0.2)
        entries = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Campus\ndc: campus",
                   f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people",
                   f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups"]  # fmt: skip
        for uid, password in users.items():
            entries.append(
                f"dn: {user_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
                f"userPassword: {password}"
            )
        for cn, members in groups.items():
            entries.append(
                f"dn: {group_dn(cn)}\nobjectClass: groupOfNames\ncn: {cn}\n"
                + "\n".join(f"member: {user_dn(uid)}" for uid in members)
            )
        self.ldif("ldapadd", "\n\n".join(entries) + "\n")

    def _tool(self, name: str) -> list[str]:
        return [name, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD]

    def ldif(self, tool: str, text: str) -> None:
        done = subprocess.run(self._tool(tool), input=text, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr or done.stdout}")

    def remove_member(self, cn: str, uid: str) -> None:
        self.ldif("ldapmodify", f"dn: {group_dn(cn)}\nchangetype: modify\ndelete: member\nmember: {user_dn(uid)}\n")

    def add_member(self, cn: str, uid: str) -> None:
        self.ldif("ldapmodify", f"dn: {group_dn(cn)}\nchangetype: modify\nadd: member\nmember: {user_dn(uid)}\n")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

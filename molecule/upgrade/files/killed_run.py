"""Run a playbook and kill it mid-way, as a crash of the admin's machine or a lost connection would.

Usage: python3 killed_run.py --hosts A,B --wait-for GLOB --log LOG -- ansible-playbook ARGS...
The command runs in this process's directory and environment. It is killed (SIGKILL, its
whole process group) once GLOB exists on every host, and so are the module processes it
left on the hosts (what a dropped SSH session does to them). Fails if the run ends before
that point, or if it got as far as the database backup (then the kill came too late to
test anything). Prints JSON about the kill.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

DEADLINE = 900


def on_host(host, *argv):
    return subprocess.run(["docker", "exec", host, *argv], capture_output=True, text=True, timeout=60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--wait-for", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    hosts = args.hosts.split(",")
    started = time.monotonic()
    with open(args.log, "w") as log:
        run = subprocess.Popen(
            args.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    reached = set()
    while reached != set(hosts):
        if run.poll() is not None or time.monotonic() - started > DEADLINE:
            run.kill()
            tail = open(args.log).read()[-3000:]
            sys.exit(f"the run ended (rc {run.returncode}) before {args.wait_for} existed on {hosts}:\n{tail}")
        for host in set(hosts) - reached:
            if on_host(host, "sh", "-c", f"ls -d {args.wait_for}").returncode == 0:
                reached.add(host)
        time.sleep(0.3)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    report = {"killed_after_s": round(time.monotonic() - started, 1), "hosts": {}}
    for host in hosts:
        busy = on_host(host, "pgrep", "-af", "AnsiballZ|pip install").stdout.splitlines()
        # argv, not a shell: pkill never matches itself, a shell running it would match.
        on_host(host, "pkill", "-KILL", "-f", "AnsiballZ|pip install")
        backups = on_host(host, "sh", "-c", "ls /var/lib/jupyterhub/jupyterhub.sqlite.*.bak").stdout.split()
        if backups:
            sys.exit(f"{host} had already started the database upgrade ({backups}): the kill came too late")
        report["hosts"][host] = {"killed": [line[:160] for line in busy]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/python
"""Ansible module: is a running systemd service older than the files it runs from?

A handler notified by a changed file is lost when a run dies before handlers run (killed,
connection lost, a later task failed without --force-handlers); the rerun then finds the
file unchanged and the service keeps running the old code or configuration. This module
derives the answer from the server itself instead: a service is stale when one of the
given paths changed after the service last became active.
"""

import glob
import os
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: service_stale
short_description: Tell whether a running systemd service started before its files last changed
description:
  - Compares the modification time of each path (a file, or a directory whose entries were
    added, removed or replaced) with the moment the unit last became active.
  - Read-only; reports stale, never changed.
options:
  name:
    description: The systemd unit.
    type: str
    required: true
  paths:
    description: Files or directories the service runs from; shell globs allowed, missing ones skipped.
    type: list
    elements: str
    required: true
"""

RETURN = r"""
active:
  description: Whether the unit is active.
  type: bool
stale:
  description: Whether the unit is active and one of the paths changed after it became active.
  type: bool
newer:
  description: The paths that changed after the unit became active.
  type: list
"""


def started_at(props):
    """Wall-clock time the unit became active, from systemd's monotonic timestamp."""
    entered = int(props.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
    return time.time() - (time.clock_gettime(time.CLOCK_MONOTONIC) - entered)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "paths": {"type": "list", "elements": "str", "required": True},
        },
        supports_check_mode=True,
    )
    rc, out, err = module.run_command(
        ["systemctl", "show", "--property=ActiveState,ActiveEnterTimestampMonotonic", "--", module.params["name"]]
    )
    if rc != 0:
        module.fail_json(msg=f"systemctl show {module.params['name']} failed: {err.strip()}")
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    active = props.get("ActiveState") == "active"
    newer = []
    if active:
        since = started_at(props)
        for pattern in module.params["paths"]:
            for path in sorted(glob.glob(pattern)):
                if os.stat(path).st_mtime > since:
                    newer.append(path)
    module.exit_json(changed=False, active=active, stale=bool(newer), newer=newer)


if __name__ == "__main__":
    main()

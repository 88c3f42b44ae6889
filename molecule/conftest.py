"""Shared by every scenario's verifier: a scenario's targets are checked side by side.

The verifier runs under pytest-xdist (`-n 2 --dist loadscope`, .config/molecule/config.yml),
with the "scope" redefined here as the target: each target's tests go to one worker, in
the order they were collected (a verifier may rely on it: the jupyterhub scenario's ACME
tests run before its reboot), while the other worker checks the other Debian release's
target at the same time. A scenario with one target leaves the second worker idle.
(xdist's own `loadgroup` cannot do this under pytest 9: it renames items by assigning
`item._nodeid`, which pytest 9 no longer reads, so its groups are silently ignored.)"""

import pytest
import testinfra


def target_ids(config):
    """The ids testinfra's plugin gives its `host` parameter, found the same way."""
    option = config.option
    hosts = [None] if option.hosts is None else option.hosts.split(",")
    return [
        target.backend.get_pytest_id()
        for target in testinfra.get_hosts(
            hosts,
            connection=option.connection,
            ssh_config=option.ssh_config,
            ssh_identity_file=option.ssh_identity_file,
            sudo=option.sudo,
            sudo_user=option.sudo_user,
            ansible_inventory=option.ansible_inventory,
            force_ansible=option.force_ansible,
        )
    ]


def target_of(nodeid, ids):
    """The target among `ids` whose test `nodeid` is ("" for a test without one): the id
    pytest gives a test joins its parameters' ids with "-", the target's among them."""
    params = nodeid.partition("[")[2]
    # Longest first: jhswarm-worker10 is not jhswarm-worker1's.
    return next((i for i in sorted(ids, key=len, reverse=True) if f"{i}-" in params or f"{i}]" in params), "")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    ids = target_ids(config)

    class ByTarget(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return target_of(nodeid, ids)

    return ByTarget(config, log)

"""What the benchmarks share: the JSON output, and the hub with repository launches."""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def process_tree(root: int) -> list[int]:
    """A process and its descendants (the hub and its proxy), from /proc's parent links."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue  # gone meanwhile
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return tree


def emit(results: dict, out: str | None) -> None:
    """Print the results as JSON, and write them to `out` too when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def ratios_over(results: dict, base: str, names: tuple[str, ...]) -> None:
    """Each of `names`' median over `base`'s, as `ratio_median_over_<base>`."""
    median = results[base]["median_s"]
    for name in names:
        mine = results[name]["median_s"]
        results[name][f"ratio_median_over_{base}"] = round(mine / median, 3) if median and mine else None


@contextmanager
def repo_hub(
    name: str,
    spawner: dict | None = None,
    settings: dict | None = None,
    *,
    policy: dict | None = None,
    prefix: str = "fstest-bench",
    extra: str = "",
    env: dict | None = None,
):
    """A hub with the repository option (servers named PREFIX-USER) and the integration
    tests' Git server on loopback, yielded as (docker client, Git server, hub); `spawner`,
    `settings` and `policy` add to FormDockerSpawner's, DockerSpawner's and repo_policy's
    settings, `extra` to the hub's config, `env` to its environment. Afterwards both are
    stopped, and every server and every image built from this Git server are removed."""
    import docker

    from tests.integration.gitserver import GitServer
    from tests.integration.hubharness import (
        DOCKER_SETTINGS,
        ENV_POLICY,
        IMAGES,
        Hub,
        network_gateway,
        remove_user_containers,
    )

    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    git = GitServer(workdir / "git")
    hub = Hub(workdir, network_gateway(client))
    try:
        hub.start(
            "formspawner.FormDockerSpawner",
            {
                "images": IMAGES,
                "env_policy": ENV_POLICY,
                "form_options": ["image", "env", "repo"],
                "repo_policy": {
                    "allowed_hosts": [git.host],
                    "allow_private_hosts": True,
                    "build_timeout": 300,
                    **(policy or {}),
                },
                **(spawner or {}),
            },
            {**DOCKER_SETTINGS, "prefix": prefix, **(settings or {})},
            extra=extra,
            env={"GIT_SSL_CAINFO": str(git.cert), **(env or {})},
        )
        yield client, git, hub
    finally:
        hub.stop()
        git.close()
        remove_user_containers(client)
        for image in client.images.list(filters={"label": "org.formspawner.repo=1"}):
            # A repository image's name starts with its Git server's host: localhost-PORT-.
            if any(f"/localhost-{git.port}-" in tag for tag in image.tags):
                client.images.remove(image.id, force=True)
        shutil.rmtree(workdir, ignore_errors=True)

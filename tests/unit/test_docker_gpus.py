"""The docker role's daemon.json part for GPU workers of a swarm (docker_nvidia_swarm_gpus),
evaluated by Ansible itself from the role's vars; the tasks are planned by the docker
scenario's check-mode run (no GPU or NVIDIA repository is reachable here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def evaluate(expression: str, **variables) -> object:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local", "-m", "debug",
         "-a", f"msg={{{{ {expression} | to_json }}}}",
         "-e", f"@{ROOT / 'roles/docker/defaults/main.yml'}", "-e", f"@{ROOT / 'roles/docker/vars/main.yml'}",
         "-e", json.dumps({"ansible_python_interpreter": sys.executable, **variables})],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(json.loads(result.stdout.split("=>", 1)[1])["msg"])


def test_a_gpu_worker_declares_its_gpus_as_the_generic_resource_the_spawner_asks_for():
    from formspawner import FormSwarmSpawner

    config = evaluate("_docker_nvidia_swarm_config", docker_nvidia_swarm_gpus=["GPU-aaa", "GPU-bbb"])
    kind = FormSwarmSpawner.class_traits()["gpu_resource"].default()
    assert evaluate("_docker_nvidia_swarm_kind") == kind  # the runtime's swarm-resource names it too
    assert config == {"node-generic-resources": [f"{kind}=GPU-aaa", f"{kind}=GPU-bbb"], "default-runtime": "nvidia"}

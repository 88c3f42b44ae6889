"""The molecule verifiers' scheduling (molecule/conftest.py): under pytest-xdist each
target's tests run on one worker, in their collected order, the targets side by side.
Run for real: pytest with two workers over two local targets whose names share a prefix,
so a change in xdist or pytest that silently drops the grouping (as pytest 9 did to
xdist's own loadgroup) fails here, not as a flaky verifier."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("molecule_conftest", ROOT / "molecule/conftest.py")
verifier = importlib.util.module_from_spec(spec)
spec.loader.exec_module(verifier)

IDS = ["ansible://jhswarm-worker1", "ansible://jhswarm-worker10", "ansible://jhswarm-manager"]


def test_a_test_belongs_to_the_target_in_its_id():
    assert verifier.target_of("t.py::test_a[ansible://jhswarm-worker1]", IDS) == "ansible://jhswarm-worker1"
    assert verifier.target_of("t.py::test_a[ansible://jhswarm-worker10]", IDS) == "ansible://jhswarm-worker10"
    assert verifier.target_of("t.py::test_b[ansible://jhswarm-worker10-body0-x]", IDS) == "ansible://jhswarm-worker10"
    assert verifier.target_of("t.py::test_b[x-ansible://jhswarm-manager-1]", IDS) == "ansible://jhswarm-manager"
    assert verifier.target_of("t.py::test_c", IDS) == ""


TESTS = '''
import os
import pytest

def record(host, step):
    with open(os.environ["ORDER_LOG"], "a") as log:
        log.write(f"{host.backend.get_hostname()} {os.environ['PYTEST_XDIST_WORKER']} {step}\\n")

def test_first(host):
    record(host, "first")

@pytest.mark.parametrize("n", [1, 2])
def test_second(host, n):
    record(host, f"second {n}")

def test_third(host):
    record(host, "third")
'''


def test_each_targets_tests_run_on_one_worker_in_order_beside_the_others(tmp_path):
    # Under molecule/, so the verifiers' conftest applies as in a scenario; removed after.
    folder = ROOT / "molecule" / f".verifier-check-{os.getpid()}"
    folder.mkdir()
    try:
        (folder / "test_targets.py").write_text(TESTS)
        inventory = tmp_path / "inventory"
        inventory.write_text("[all]\nt-a ansible_connection=local\nt-a1 ansible_connection=local\n")
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadscope", "-p", "no:cacheprovider",
             "--connection", "ansible", "--ansible-inventory", str(inventory), str(folder)],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                 "ORDER_LOG": str(tmp_path / "order")},
        )
    finally:
        shutil.rmtree(folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = re.findall(r"^(t-a1?) (gw\d) (\w+(?: \d)?)$", (tmp_path / "order").read_text(), re.M)
    for target in ("t-a", "t-a1"):
        mine = [(worker, step) for name, worker, step in runs if name == target]
        assert [step for _, step in mine] == ["first", "second 1", "second 2", "third"], runs
        assert len({worker for worker, _ in mine}) == 1, runs
    assert {worker for _, worker, _ in runs} == {"gw0", "gw1"}, runs  # side by side

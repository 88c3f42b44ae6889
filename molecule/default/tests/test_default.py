"""The harness itself: each target boots systemd and looks like a server Ansible can manage."""


def test_systemd_is_pid_1_and_running(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


def test_target_is_the_expected_debian_release(host):
    # jhtest-bookworm-default, jhtest-trixie-default (.config/molecule/config.yml)
    release = {"bookworm": "12", "trixie": "13"}[host.backend.get_hostname().split("-")[1]]
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.split(".")[0] == release


def test_ansible_prerequisites_are_present(host):
    assert host.package("python3-apt").is_installed
    assert host.exists("sudo")

"""Curated image choice (formspawner.images)."""

import pytest

from formspawner.errors import OptionError, PolicyError
from formspawner.images import Gpus, ImageCatalog, Resources, _human, _size

ENTRIES = [
    {"name": "minimal", "display_name": "Minimal", "image": "quay.io/jupyter/minimal-notebook:2026-11-01"},
    {"name": "scipy", "image": "quay.io/jupyter/scipy-notebook:2026-11-01", "default": True},
    {"name": "gpu", "image": "registry.example.edu:5000/gpu:1", "groups": ["gpu-users"]},
]
CATALOG = ImageCatalog.from_config(ENTRIES)


def test_default_is_the_marked_entry_and_absent_choice_gets_it():
    assert CATALOG.choose(None, []).name == "scipy"


def test_first_entry_without_groups_is_the_default_when_none_is_marked():
    catalog = ImageCatalog.from_config([{**e, "default": False} for e in reversed(ENTRIES)])
    assert catalog.default.name == "scipy"


def test_users_choose_by_name_and_get_the_configured_reference():
    assert CATALOG.choose("minimal", []).image == "quay.io/jupyter/minimal-notebook:2026-11-01"


@pytest.mark.parametrize(
    "requested",
    ["quay.io/jupyter/minimal-notebook:2026-11-01", "MINIMAL", " minimal", "minimal ", "evil/image", "", "ünï"],
)
def test_raw_references_and_near_misses_are_refused(requested):
    with pytest.raises(OptionError, match="Unknown image"):
        CATALOG.choose(requested, [])


@pytest.mark.parametrize("requested", [["minimal"], {"name": "minimal"}, 1, True])
def test_non_string_choices_are_refused_cleanly(requested):
    with pytest.raises(OptionError, match="must be the name of an image"):
        CATALOG.choose(requested, [])


def test_group_limited_images_are_hidden_and_refused_outside_the_group():
    assert [c.name for c in CATALOG.visible_to([])] == ["minimal", "scipy"]
    assert CATALOG.choose("gpu", ["gpu-users"]).name == "gpu"
    with pytest.raises(OptionError) as caught:
        CATALOG.choose("gpu", ["students"])
    # The refusal lists only what this user may choose.
    assert "gpu" not in str(caught.value).split("Choose one of:")[1]


def test_empty_catalog_offers_no_choice_at_all():
    empty = ImageCatalog.from_config([])
    assert empty.choose(None, []) is None
    with pytest.raises(OptionError, match="does not offer a choice"):
        empty.choose("anything:latest", [])


@pytest.mark.parametrize(
    "entries, message",
    [
        ([ENTRIES[0], {**ENTRIES[0], "image": "other"}], "'minimal' is used by more than one entry"),
        ([{**ENTRIES[0], "default": True}, ENTRIES[1]], "more than one entry is marked default"),
        ([ENTRIES[2]], "no default image"),
        ([{**ENTRIES[2], "default": True}], "default image 'gpu' is limited to groups"),
        ([{"name": "Bad Name", "image": "x"}], r"images\[0\].name must be a short slug"),
        ([{"name": "ok"}], r"images\[0\] \(ok\).image must be an image reference"),
        ([{"name": "ok", "image": "a b"}], "must be an image reference"),
        ([{"name": "ok", "image": "x", "grups": ["a"]}], "unknown key.*'grups'"),
        ([{"name": "ok", "image": "x", "groups": "a"}], "groups must be a list"),
        ([{"name": "ok", "image": "x", "default": "yes"}], "default must be true or false"),
        ("minimal", "images must be a list"),
        (["minimal"], r"images\[0\] must be a mapping"),
    ],
)
def test_admin_mistakes_fail_with_the_setting_named(entries, message):
    with pytest.raises(PolicyError, match=message):
        ImageCatalog.from_config(entries)


# -- resources per choice -------------------------------------------------------------

ML = {
    "name": "ml",
    "image": "quay.io/jupyter/pytorch-notebook:cuda12-2026-11-02",
    "groups": ["ml-course"],
    "resources": {"mem_limit": "8G", "mem_guarantee": "4G", "cpu_limit": 4, "pids_limit": 2048,
                  "shm_size": "1G", "gpus": 1},
}  # fmt: skip


def test_a_choice_carries_its_resources_and_says_them_in_words():
    catalog = ImageCatalog.from_config([ENTRIES[0], ML])
    plain, ml = catalog.choices
    assert not plain.resources
    assert (ml.resources.mem_limit, ml.resources.mem_guarantee) == (8 * 1024**3, 4 * 1024**3)
    assert (ml.resources.cpu_limit, ml.resources.pids_limit, ml.resources.shm_size) == (4.0, 2048, 1024**3)
    assert ml.resources.summary() == "8 GB memory (4 GB guaranteed), 4 CPUs, 1 GPU, 1 GB shared memory, 2048 processes"
    assert ml.resources.gpus.device_request() == {"Driver": "", "Count": 1, "Capabilities": [["gpu"]]}


@pytest.mark.parametrize(
    ("gpus", "wanted"),
    [
        ("all", {"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}),
        (
            {"count": 2, "capabilities": ["gpu", "compute"]},
            {"Driver": "", "Count": 2, "Capabilities": [["gpu", "compute"]]},
        ),
        ({"device_ids": ["0", "GPU-3f2a"]}, {"Driver": "", "DeviceIDs": ["0", "GPU-3f2a"], "Capabilities": [["gpu"]]}),
    ],
)
def test_gpus_become_dockers_device_request(gpus, wanted):
    catalog = ImageCatalog.from_config([{**ML, "groups": [], "resources": {"gpus": gpus}}])
    assert catalog.choices[0].resources.gpus.device_request() == wanted


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": "1G"}, r"images\[0\] \(ml\).resources: unknown key\(s\) 'memory'"),
        ({"mem_limit": "8 GB"}, r"\(ml\).resources.mem_limit must be a size such as 512M or 8G, not '8 GB'"),
        ({"mem_limit": "about 8G"}, r"mem_limit must be a size such as 512M or 8G, not 'about 8G'"),
        ({"mem_limit": "8Gb"}, r"mem_limit must be a size such as 512M or 8G, not '8Gb'"),
        ({"mem_limit": -1}, r"mem_limit must be a size"),
        ({"mem_limit": "1G", "mem_guarantee": "2G"}, r"mem_guarantee is more than its mem_limit"),
        ({"cpu_limit": 0}, r"cpu_limit must be a number of CPUs"),
        ({"cpu_limit": "2"}, r"cpu_limit must be a number of CPUs"),
        ({"cpu_limit": True}, r"cpu_limit must be a number of CPUs"),
        ({"pids_limit": 8}, r"pids_limit must be a whole number of at least 16"),
        ({"shm_size": "lots"}, r"shm_size must be a size"),
        ({"gpus": {"count": 1, "device_ids": ["0"]}}, r"gpus: give either count or device_ids"),
        ({"gpus": 0}, r"gpus: give either count or device_ids"),
        ({"gpus": {"count": 1, "capabilities": ["gpu;rm"]}}, r"gpus.capabilities must be a list"),
        ({"gpus": {"device_ids": ["0 1"]}}, r"gpus.device_ids must be a list of GPU indexes"),
        ({"gpus": {"cuda": 1}}, r"gpus: unknown key\(s\) 'cuda'"),
        ("8G", r"\(ml\).resources must be a mapping"),
    ],
)
def test_bad_resources_are_refused_naming_the_entry_and_key(resources, message):
    with pytest.raises(PolicyError, match=message):
        ImageCatalog.from_config([{**ML, "resources": resources}])


def test_the_host_fit_check_names_the_numbers():
    catalog = ImageCatalog.from_config([{**ML, "groups": [], "resources": {"cpu_limit": 8, "mem_limit": "16G"}}])
    with pytest.raises(PolicyError, match=r"'ml' asks for cpu_limit 8 but this host has 2 CPUs"):
        catalog.check_fits(64 * 1024**3, 2)
    with pytest.raises(PolicyError, match=r"'ml' asks for mem_limit 16 GB but this host has 7.5 GB of memory"):
        catalog.check_fits(int(7.5 * 1024**3), 16)
    catalog.check_fits(16 * 1024**3, 8)  # exactly the host: allowed
    catalog.check_fits(None, None)  # no facts: nothing to check


def test_a_guarantee_above_every_servers_limit_is_refused_unless_the_choice_sets_its_own():
    guaranteed = ImageCatalog.from_config([{**ML, "groups": [], "resources": {"mem_guarantee": "4G"}}])
    with pytest.raises(PolicyError, match=r"mem_guarantee 4 GB, more than the mem_limit every server gets \(2 GB\)"):
        guaranteed.check_fits(None, None, "2G")
    guaranteed.check_fits(None, None, "4G")
    own = ImageCatalog.from_config([{**ML, "groups": [], "resources": {"mem_guarantee": "4G", "mem_limit": "8G"}}])
    own.check_fits(None, None, "2G")


def test_the_guarantees_of_the_most_servers_at_once_must_fit_the_host():
    catalog = ImageCatalog.from_config([
        {"name": "intro", "image": "x", "resources": {"mem_guarantee": "1G", "mem_limit": "2G"}},
        {**ML, "groups": [], "resources": {"mem_guarantee": "4G", "mem_limit": "8G"}},
    ])  # fmt: skip
    message = (r"images: 20 servers at once \(active_server_limit\) of 'ml', which guarantees 4 GB each, "
               r"need 80 GB but this host has 64 GB of memory")  # fmt: skip
    with pytest.raises(PolicyError, match=message):
        catalog.check_total(64 * 1024**3, 20)
    catalog.check_total(64 * 1024**3, 16)  # exactly the host: allowed
    catalog.check_total(64 * 1024**3, 0)  # no limit on servers: no total
    catalog.check_total(None, 20)  # no facts
    ImageCatalog.from_config([{"name": "plain", "image": "x"}]).check_total(1, 1000)  # no guarantees


def test_the_host_fit_check_names_the_setting_and_a_bad_limit():
    catalog = ImageCatalog.from_config([{**ML, "groups": [], "resources": {"cpu_limit": 8}}])
    with pytest.raises(PolicyError, match=r"^images: 'ml' asks for cpu_limit 8"):
        catalog.check_fits(None, 2)
    guaranteed = ImageCatalog.from_config([{**ML, "groups": [], "resources": {"mem_guarantee": "1G"}}])
    with pytest.raises(PolicyError, match=r"^mem_limit must be a size such as 512M or 8G, not 'lots'"):
        guaranteed.check_fits(None, None, "lots")


@pytest.mark.parametrize(
    ("value", "size"),
    [(1, 1), (1024, 1024), ("512", 512), ("512M", 512 * 1024**2), ("0.5G", 512 * 1024**2), ("2K", 2048)],
)
def test_sizes_are_bytes_or_a_number_with_a_unit(value, size):
    assert _size(value, "x") == size


@pytest.mark.parametrize("value", [0, -1, True, "0G", "0", "lots", 1.5, None])
def test_sizes_that_are_no_size_are_refused_naming_the_setting(value):
    with pytest.raises(PolicyError, match=r"^where\.it must be a size such as 512M or 8G"):
        _size(value, "where.it")


@pytest.mark.parametrize(
    ("size", "text"),
    [(2 * 1024**4, "2 TB"), (3 * 1024**3, "3 GB"), (512 * 1024**2, "512 MB"), (2048, "2 KB"), (100, "100 bytes")],
)
def test_sizes_read_as_people_write_them(size, text):
    assert _human(size) == text


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        ("some", r"^r\.gpus must be a number of GPUs, 'all', or a mapping with count or device_ids$"),
        ({"count": -2}, r"^r\.gpus\.count must be a number of GPUs or 'all', not -2$"),
        ({"count": True}, r"^r\.gpus\.count must be a number of GPUs or 'all', not True$"),
        ({"count": 1, "capabilities": []}, r"^r\.gpus\.capabilities must be a list"),
    ],
)
def test_gpus_that_are_no_gpus_are_refused_with_what_is_wrong(gpus, message):
    with pytest.raises(PolicyError, match=message):
        Gpus.from_config(gpus, "r.gpus")


def test_the_form_says_which_gpus_cpus_and_guarantees_a_choice_has():
    assert Gpus.from_config({"device_ids": ["0", "1"]}, "g").summary() == "GPU 0, 1"
    assert Gpus.from_config("all", "g").summary() == "all GPUs"
    assert (Gpus(count=1).summary(), Gpus(count=2).summary()) == ("1 GPU", "2 GPUs")
    assert Resources(mem_guarantee=4 * 1024**3).summary() == "4 GB memory guaranteed"
    assert (Resources(cpu_limit=1.0).summary(), Resources(cpu_limit=2.0).summary()) == ("1 CPU", "2 CPUs")

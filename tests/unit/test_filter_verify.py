"""The health report filters: what the host shows now decides, not what was recorded once.

- an instance is ready only when it serves its model;
- the model store counts as mounted only when its mount point is itself an NFS mount of
  the store server's export;
- the GPU driver is healthy only when it is bound to the cards now (gpu_facts), a module
  installed but not in use is a pending reboot, and both that and a missing one are
  problems;
- a host whose serving plan is refused stays in the report, with the reasons.
"""

import os

import pytest
from ansible.module_utils import gpu_detect
from gpu_fakes import NVIDIA_PROC_VERSION, add_pci, write
from verify import (
    parse_mountinfo,
    verify_bar_percent,
    verify_gateway,
    verify_gpu_driver,
    verify_instance,
    verify_lines,
    verify_problems,
    verify_refused,
    verify_store_mount,
)

LLAMACPP = {
    "name": "tiny",
    "backend": "llamacpp",
    "loader": "llama_cpp.server",
    "model": "/media/data/models/tiny-llama-F32.gguf",
    "bind": "10.0.0.5",
    "port": 8081,
    "device": "cpu",
    "estimated_vram_mib": 0,
}
OLLAMA = {
    "name": "chat",
    "backend": "ollama",
    "loader": "ollama",
    "model": "/media/data/models/tiny-llama-F32.gguf",
    "ollama_model": "chat",
    "bind": "0.0.0.0",
    "port": 11435,
}


def test_llamacpp_serving_its_model_is_ready():
    probe = {"item": LLAMACPP, "status": 200, "json": {"data": [{"id": LLAMACPP["model"]}]}}
    inst = verify_instance(probe)
    assert inst["ready"] is True
    assert inst["url"] == "http://10.0.0.5:8081/"


def test_instance_answering_with_another_model_is_not_ready():
    probe = {"item": LLAMACPP, "status": 200, "json": {"data": [{"id": "other.gguf"}]}}
    inst = verify_instance(probe)
    assert inst["ready"] is False
    assert "does not serve its model" in inst["detail"]


def test_unreachable_instance_is_not_ready_with_the_probe_message():
    probe = {"item": LLAMACPP, "status": -1, "msg": "Connection refused"}
    inst = verify_instance(probe)
    assert inst["ready"] is False
    assert inst["detail"] == "Connection refused"


def test_ollama_model_with_latest_tag_is_ready():
    probe = {"item": OLLAMA, "status": 200, "json": {"models": [{"name": "chat:latest"}]}}
    assert verify_instance(probe)["ready"] is True


# ---------------------------------------------------------------------------------------
# The model store mount, from /proc/self/mountinfo.
#
# Format: proc(5), "/proc/pid/mountinfo" (the kernel's Documentation/filesystems/proc.rst,
# "3.5 /proc/<pid>/mountinfo"): mount ID, parent ID, major:minor, root, mount point,
# mount options, optional fields (shared:N, master:N), "-", filesystem type, mount source,
# super options; spaces in paths are written \040.
# ROOT_AND_PROC are lines read from a Debian 12 host's /proc/self/mountinfo. The NFS lines
# follow the kernel NFS client's own output for a mount the nfs_client role makes
# (source server:/export, nfs4 with vers=4.2,hard,timeo=150,retrans=3 and the addr= and
# clientaddr= it adds), and the autofs line is the direct automount systemd sets up for an
# fstab entry with x-systemd.automount (source systemd-1).
ROOT_AND_PROC = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334096k,nr_inodes=3083524,mode=755
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
45 27 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
"""
AUTOFS = (
    "61 27 0:52 / /media/data/models rw,relatime shared:30 - autofs systemd-1 "
    "rw,fd=61,pgrp=1,timeout=0,minproto=5,maxproto=5,direct,pipe_ino=20731\n"
)
NFS_OPTIONS = (
    "ro,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=150,retrans=3,"
    "sec=sys,clientaddr=192.168.122.11,local_lock=none,addr=192.168.122.10"
)
NFS_ON_AUTOFS = f"88 61 0:57 / /media/data/models ro,noatime shared:41 - nfs4 localcloud:/media/data/models {NFS_OPTIONS}\n"
# A Docker named volume as a container sees it: a bind of the volume's directory.
DOCKER_VOLUME = (
    "1240 1213 254:0 /var/lib/docker/volumes/ailab-lab-models/_data /media/data/models "
    "rw,relatime master:1 - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534\n"
)
STORE = "/media/data/models"
SERVERS = ["localcloud", "ailab-lab-localcloud", "192.168.122.10"]


def store(mountinfo, **kwargs):
    kwargs.setdefault("servers", SERVERS)
    kwargs.setdefault("export", STORE)
    return verify_store_mount(mountinfo, STORE, **kwargs)


def test_mountinfo_lines_are_parsed_with_and_without_optional_fields():
    entries = parse_mountinfo(ROOT_AND_PROC + NFS_ON_AUTOFS)
    assert entries[0]["mount_point"] == "/proc" and entries[0]["fstype"] == "proc"
    docker = entries[4]
    assert (
        docker["root"] == "/var/lib/docker" and docker["source"] == "/dev/vda" and docker["fstype"] == "ext4"
    )
    nfs = entries[-1]
    assert nfs["mount_id"] == "88" and nfs["parent_id"] == "61"
    assert nfs["fstype"] == "nfs4" and nfs["source"] == "localcloud:/media/data/models"
    assert "vers=4.2" in nfs["super_options"]


def test_mountinfo_octal_escapes_are_decoded():
    line = r"90 27 0:60 / /srv/model\040store rw - nfs4 srv:/exports/model\040store rw,vers=4.2" + "\n"
    (entry,) = parse_mountinfo(line)
    assert entry["mount_point"] == "/srv/model store"
    assert entry["source"] == "srv:/exports/model store"


def test_store_nfs_mount_of_the_server_export_is_mounted():
    state = store(ROOT_AND_PROC + NFS_ON_AUTOFS.replace(" 61 ", " 27 "))
    assert state["mounted"] is True
    assert state["fstype"] == "nfs4" and state["source"] == "localcloud:/media/data/models"


def test_store_automount_that_came_up_is_the_nfs_mount_on_top():
    state = store(ROOT_AND_PROC + AUTOFS + NFS_ON_AUTOFS)
    assert state["mounted"] is True and state["fstype"] == "nfs4"


def test_store_directory_with_nothing_mounted_is_not_mounted():
    # `findmnt --target` answers for this path with the root filesystem: not a mount of the store.
    state = store(ROOT_AND_PROC)
    assert state["mounted"] is False
    assert state["detail"] == f"nothing is mounted on {STORE}: it is a directory of the ext4 filesystem on /"


def test_store_below_an_nfs_mount_of_its_parent_is_not_mounted():
    parent = f"70 27 0:50 / /media/data rw - nfs4 localcloud:/media/data {NFS_OPTIONS}\n"
    state = store(ROOT_AND_PROC + parent)
    assert state["mounted"] is False
    assert "directory of the nfs4 filesystem on /media/data" in state["detail"]


def test_store_automount_with_nothing_behind_it_is_not_mounted():
    state = store(ROOT_AND_PROC + AUTOFS)
    assert state["mounted"] is False
    assert "automount point" in state["detail"]


def test_store_local_filesystem_on_the_mount_point_is_not_mounted():
    state = store(ROOT_AND_PROC + DOCKER_VOLUME)
    assert state["mounted"] is False
    assert state["detail"] == f"{STORE} is a ext4 mount of /dev/vda, not NFS"


def test_store_nfs_mount_from_another_server_is_not_mounted():
    other = NFS_ON_AUTOFS.replace("localcloud:/media/data/models", "oldnas:/media/data/models")
    state = store(ROOT_AND_PROC + AUTOFS + other)
    assert state["mounted"] is False
    assert (
        state["detail"] == f"{STORE} is mounted from oldnas:/media/data/models, not from localcloud:{STORE}"
    )


def test_store_nfs_mount_of_another_export_is_not_mounted():
    other = NFS_ON_AUTOFS.replace("localcloud:/media/data/models", "localcloud:/srv/old-models")
    assert store(ROOT_AND_PROC + other)["mounted"] is False


def test_store_nfs_mount_by_the_server_address_is_mounted():
    by_address = NFS_ON_AUTOFS.replace("localcloud:", "192.168.122.10:").replace(" 61 ", " 27 ")
    assert store(ROOT_AND_PROC + by_address)["mounted"] is True


def test_store_nfs_mount_from_an_ipv6_server_is_mounted():
    v6 = NFS_ON_AUTOFS.replace("localcloud:", "[fd00::10]:").replace(" 61 ", " 27 ")
    assert store(ROOT_AND_PROC + v6, servers=["localcloud", "fd00::10"])["mounted"] is True
    assert store(ROOT_AND_PROC + v6)["mounted"] is False


def test_store_export_with_a_trailing_slash_matches():
    slash = NFS_ON_AUTOFS.replace("localcloud:/media/data/models", "localcloud:/media/data/models/")
    assert store(ROOT_AND_PROC + slash.replace(" 61 ", " 27 "))["mounted"] is True


def test_store_volume_counts_when_nfs_is_not_required_but_an_empty_directory_does_not():
    volume = store(ROOT_AND_PROC + DOCKER_VOLUME, require_nfs=False)
    assert volume["mounted"] is True and volume["source"] == "/dev/vda"
    assert store(ROOT_AND_PROC, require_nfs=False)["mounted"] is False
    assert store(ROOT_AND_PROC + AUTOFS, require_nfs=False)["mounted"] is False


def test_store_empty_mount_table_is_not_mounted():
    assert store("")["mounted"] is False


def test_problems_and_lines_carry_the_store_detail():
    detail = store(ROOT_AND_PROC)
    report = {"host": "ws", "store": dict(detail, path=STORE, readable=True, files=0), "instances": []}
    assert verify_problems([report]) == [f"ws: the model store {STORE} is not mounted: {detail['detail']}"]
    assert "NOT MOUNTED (nothing is mounted on" in verify_lines(report)[0]


# ---------------------------------------------------------------------------------------
# The GPU driver, from gpu_facts at verify time. The facts come from gpu_detect on a fake
# sysfs tree (what gpu_facts reads), modinfo results are shaped like registered command
# results, and `recorded` is the fact gpu_driver writes (kernel_module_status is one of
# built, in-kernel, headers-missing, not-built, missing: tasks/module_status.yml).
KERNEL = "6.1.0-18-amd64"


def nvidia_facts(tmp_path, driver, loaded_version=True):
    root = str(tmp_path)
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684", driver=driver)
    if loaded_version:
        write(os.path.join(root, "proc", "driver", "nvidia", "version"), NVIDIA_PROC_VERSION)
    return gpu_detect.gpu_facts(root)


def amd_facts(tmp_path, driver):
    add_pci(str(tmp_path), "0000:03:00.0", "0x1002", "0x744c", driver=driver, vram_bytes=16 * 1024**3)
    return gpu_detect.gpu_facts(str(tmp_path))


def modinfo(version="580.173.02", rc=0):
    return [
        {"item": "nvidia-current", "rc": rc, "stdout": version if rc == 0 else ""},
        {"item": "nvidia", "rc": 1, "stdout": ""},
    ]


MODINFO_NOT_FOUND = [
    {
        "item": "nvidia-current",
        "rc": 1,
        "stdout": "",
        "stderr": "modinfo: ERROR: Module nvidia-current not found.",
    },
    {"item": "nvidia", "rc": 1, "stdout": "", "stderr": "modinfo: ERROR: Module nvidia not found."},
]


def recorded(status, kernel=KERNEL):
    return {
        "vendor": "nvidia",
        "kernel": kernel,
        "kernel_module": "nvidia",
        "kernel_module_status": status,
        "gpu_present": True,
        "reboot_required": False,
        "reboot_reasons": [],
    }


def gpu_report(driver, host="ws"):
    return {"host": host, "gpu": {"vendor": "nvidia", "vram_mib": 24564, "planned_mib": 0, "driver": driver}}


@pytest.mark.parametrize("status", ["built", "in-kernel"])
def test_gpu_driver_bound_to_the_card_now_is_healthy(tmp_path, status):
    driver = verify_gpu_driver(nvidia_facts(tmp_path, "nvidia"), modinfo(), recorded(status), KERNEL)
    assert driver["state"] == "loaded" and driver["healthy"] is True
    assert driver["loaded_version"] == "580.173.02"
    assert verify_problems([gpu_report(driver)]) == []
    assert "driver loaded: nvidia 580.173.02 loaded" in verify_lines(gpu_report(driver))[0]


def test_gpu_driver_loaded_is_healthy_whatever_the_last_run_recorded(tmp_path):
    # The fact is from before the reboot that loaded the module: the live state wins.
    stale = dict(recorded("built"), reboot_required=True, reboot_reasons=["a GPU is present ..."])
    driver = verify_gpu_driver(nvidia_facts(tmp_path, "nvidia"), modinfo(), stale, KERNEL)
    assert driver["healthy"] is True


def test_amd_in_kernel_amdgpu_bound_is_healthy(tmp_path):
    amdgpu = [{"item": "amdgpu", "rc": 0, "stdout": ""}]
    driver = verify_gpu_driver(
        amd_facts(tmp_path, "amdgpu"), amdgpu, {"kernel_module_status": "in-kernel"}, KERNEL
    )
    assert driver["state"] == "loaded" and driver["healthy"] is True and driver["module"] == "amdgpu"


def test_gpu_driver_installed_but_card_on_nouveau_is_a_pending_reboot_and_a_problem(tmp_path):
    facts = nvidia_facts(tmp_path, "nouveau", loaded_version=False)
    driver = verify_gpu_driver(facts, modinfo(), recorded("built"), KERNEL)
    assert driver["state"] == "reboot-pending" and driver["healthy"] is False
    assert "0000:01:00.0 bound to nouveau" in driver["detail"]
    (problem,) = verify_problems([gpu_report(driver)])
    assert problem.startswith(
        "ws: GPU driver reboot-pending: the nvidia 580.173.02 module is installed for kernel"
    )
    assert "reboot the host" in problem


def test_gpu_driver_installed_but_no_driver_bound_is_a_pending_reboot(tmp_path):
    facts = amd_facts(tmp_path, None)
    driver = verify_gpu_driver(facts, [{"item": "amdgpu", "rc": 0, "stdout": ""}], {}, KERNEL)
    assert driver["state"] == "reboot-pending" and "bound to no driver" in driver["detail"]


def test_gpu_driver_loaded_at_another_version_than_installed_is_a_pending_reboot(tmp_path):
    driver = verify_gpu_driver(
        nvidia_facts(tmp_path, "nvidia"), modinfo("560.35.03"), recorded("built"), KERNEL
    )
    assert driver["state"] == "reboot-pending" and driver["healthy"] is False
    assert "version 580.173.02, the installed one is 560.35.03" in driver["detail"]


@pytest.mark.parametrize(
    "status, why",
    [
        ("headers-missing", "the running kernel's headers are not installable"),
        ("not-built", "/var/lib/dkms/*/build/make.log"),
        ("missing", "the running kernel has no such module"),
    ],
)
def test_gpu_driver_missing_is_a_problem_with_the_recorded_reason(tmp_path, status, why):
    facts = nvidia_facts(tmp_path, "nouveau", loaded_version=False)
    driver = verify_gpu_driver(facts, MODINFO_NOT_FOUND, recorded(status), KERNEL)
    assert driver["state"] == "missing" and driver["healthy"] is False
    assert f"no nvidia module for the running kernel {KERNEL}" in driver["detail"]
    assert why in driver["detail"]
    assert verify_problems([gpu_report(driver)])[0].startswith("ws: GPU driver missing: ")


def test_gpu_driver_recorded_built_for_an_older_kernel_is_missing_now(tmp_path):
    facts = nvidia_facts(tmp_path, None, loaded_version=False)
    driver = verify_gpu_driver(facts, MODINFO_NOT_FOUND, recorded("built", kernel="6.1.0-17-amd64"), KERNEL)
    assert driver["state"] == "missing"
    assert "built for kernel 6.1.0-17-amd64, not for this one" in driver["detail"]


def test_gpu_driver_never_installed_is_missing(tmp_path):
    driver = verify_gpu_driver(
        nvidia_facts(tmp_path, None, loaded_version=False), MODINFO_NOT_FOUND, {}, KERNEL
    )
    assert driver["state"] == "missing" and "gpu_driver has not run on this host" in driver["detail"]


def test_gpu_declared_in_inventory_without_a_card_is_not_checked(tmp_path):
    facts = gpu_detect.gpu_facts(str(tmp_path), vendor="nvidia", vram_mib=24576)
    driver = verify_gpu_driver(facts, MODINFO_NOT_FOUND, recorded("not-built"), KERNEL)
    assert driver["state"] == "no-device" and driver["healthy"] is True
    assert "no NVIDIA GPU present (the vendor comes from the inventory)" in driver["detail"]


def test_host_without_gpu_has_no_driver_problem(tmp_path):
    driver = verify_gpu_driver(gpu_detect.gpu_facts(str(tmp_path)), [], {}, KERNEL)
    assert driver["state"] == "none" and driver["healthy"] is True


# ---------------------------------------------------------------------------------------
# A refused serving plan: the planner's assert message (model_instances/tasks/validate.yml)
# is a heading line followed by one line per error.
REFUSAL = [
    "model_instances on ws refused, nothing was changed:",
    "ws/coder: flags: --use_flash_attention_2 is not a flag of text-generation-webui v4.7.3",
    "port 5015 is used by both ws/coder and ws/chat",
]
INSTANCES = [
    {"name": "coder", "backend": "textgen", "model": "m.gguf", "port": 7861, "api_port": 5010},
    {"name": "chat", "backend": "ollama", "model": "m.gguf", "port": 5015},
]


def test_refused_plan_keeps_every_declared_instance_as_not_ready():
    refused = verify_refused(INSTANCES, REFUSAL, "ws")
    assert refused["reasons"] == REFUSAL[1:]
    coder, chat = refused["instances"]
    assert coder["name"] == "coder" and coder["ready"] is False and coder["refused"] is True
    assert coder["detail"] == "plan refused: " + REFUSAL[1]
    assert chat["detail"] == "plan refused: " + "; ".join(REFUSAL[1:])


def test_refused_host_is_in_the_problems_with_each_reason():
    refused = verify_refused(INSTANCES, REFUSAL, "ws")
    report = {"host": "ws", "refused": refused["reasons"], "instances": refused["instances"], "gpu": {}}
    assert verify_problems([report]) == [f"ws: serving plan refused: {reason}" for reason in REFUSAL[1:]]
    lines = verify_lines(report)
    assert f"PLAN REFUSED: {REFUSAL[1]}" in lines
    assert any(line.startswith("coder") and "NOT READY: plan refused" in line for line in lines)


def test_refusal_of_a_malformed_instance_list_keeps_the_message():
    msg = "ws: model_instances must be a list of mappings, one per instance (name, backend, model, port, ...)"
    refused = verify_refused("coder", msg, "ws")
    assert refused == {"reasons": [msg], "instances": []}


def test_refusal_without_a_message_still_says_the_plan_failed():
    assert verify_refused(INSTANCES, "", "ws")["reasons"] == ["the serving plan failed"]


def test_checked_host_without_a_report_is_a_problem():
    reports = [{"host": "ws", "instances": []}]
    assert verify_problems(reports, ["ws", "amdbox"]) == [
        "amdbox: no report: the host was unreachable or failed before its checks ended"
    ]


# ---------------------------------------------------------------------------------------


def test_problems_name_host_and_instance(tmp_path):
    reports = [
        {
            "host": "ws",
            "store": {"path": "/m", "mounted": False, "readable": False},
            "gpu": {
                "vendor": "nvidia",
                "driver": verify_gpu_driver(
                    nvidia_facts(tmp_path, None, loaded_version=False),
                    MODINFO_NOT_FOUND,
                    recorded("not-built"),
                    KERNEL,
                ),
            },
            "instances": [{"name": "chat", "ready": False, "detail": "HTTP status 500"}],
        }
    ]
    problems = verify_problems(reports)
    assert "ws: the model store /m is not mounted" in problems
    assert "ws/chat: not ready: HTTP status 500" in problems
    assert any(p.startswith("ws: GPU driver missing: no nvidia module") for p in problems)


def test_healthy_report_has_no_problems(tmp_path):
    reports = [
        {
            "host": "ws",
            "store": dict(store(ROOT_AND_PROC + AUTOFS + NFS_ON_AUTOFS), path=STORE, readable=True, files=2),
            "gpu": {
                "vendor": "nvidia",
                "driver": verify_gpu_driver(
                    nvidia_facts(tmp_path, "nvidia"), modinfo(), recorded("built"), KERNEL
                ),
            },
            "refused": [],
            "instances": [{"name": "chat", "ready": True}],
        }
    ]
    assert verify_problems(reports, ["ws"]) == []
    assert any("mounted from localcloud:/media/data/models" in line for line in verify_lines(reports[0]))


def test_bar_percent_is_clamped():
    assert verify_bar_percent(6144, 24576) == 25
    assert verify_bar_percent(50000, 24576) == 100
    assert verify_bar_percent(1, 0) == 0


# The gateway (roles/gateway/tasks/probe.yml): ansible.builtin.uri results for LiteLLM's
# /health/readiness/details and one chat completion per route. LiteLLM answers errors as
# {"error": {"message", "type", "param", "code"}} (litellm/proxy/_types.py, ProxyException).
HEALTHY = {"status": 200, "json": {"status": "healthy", "db": "Not connected", "litellm_version": "1.108.7"}}


def route(name, status, body=None, msg=""):
    return {"item": name, "status": status, "json": body or {}, "msg": msg}


def test_gateway_whose_routes_all_answer_is_healthy():
    probes = {"results": [route("tiny", 200, {"choices": [{"message": {"content": "Paris"}}]})]}
    gw = verify_gateway(HEALTHY, probes, "https://10.0.0.2:4000")
    assert gw == {
        "url": "https://10.0.0.2:4000",
        "status": "healthy",
        "version": "1.108.7",
        "healthy": True,
        "routes": [{"name": "tiny", "ok": True, "detail": ""}],
    }
    report = {"host": "localcloud", "instances": [], "gateway": gw}
    assert verify_problems([report]) == []
    assert "gateway https://10.0.0.2:4000 (LiteLLM 1.108.7): healthy" in verify_lines(report)


def test_gateway_route_that_fails_is_a_problem_naming_the_route():
    body = {
        "error": {
            "message": "litellm.APIConnectionError: Connection refused",
            "type": None,
            "param": None,
            "code": "500",
        }
    }
    probes = {"results": [route("chat", 500, body, "Status code was 500 and not [200]: HTTP Error 500")]}
    gw = verify_gateway(HEALTHY, probes, "https://10.0.0.2:4000")
    assert gw["routes"] == [
        {"name": "chat", "ok": False, "detail": "HTTP 500: litellm.APIConnectionError: Connection refused"}
    ]
    problems = verify_problems([{"host": "localcloud", "instances": [], "gateway": gw}])
    assert problems == [
        "localcloud: gateway route chat: HTTP 500: litellm.APIConnectionError: Connection refused"
    ]


def test_gateway_that_does_not_answer_is_a_problem():
    down = {
        "status": -1,
        "msg": "Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111] Connection refused>",
    }
    gw = verify_gateway(down, {"results": []}, "https://10.0.0.2:4000")
    assert not gw["healthy"] and gw["status"].startswith("unreachable: Status code was -1")
    problems = verify_problems([{"host": "localcloud", "instances": [], "gateway": gw}])
    assert problems == [f"localcloud: gateway https://10.0.0.2:4000 {gw['status']}"]


def test_a_route_answer_without_a_choice_is_not_taken_for_an_answer():
    gw = verify_gateway(HEALTHY, {"results": [route("coder", 200, {"choices": []})]}, "u")
    assert gw["routes"][0] == {"name": "coder", "ok": False, "detail": "answered without a choice"}

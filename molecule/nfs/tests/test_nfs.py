"""The nfs scenario's outcomes: Ganesha serves the model store over NFS, the model
files are in place and verified, the kernel exports are rendered and accepted by
exportfs, the client's mount is configured boot-safe.

NFS traffic here is real (NFSv4 through libnfs from the client and the outsider
containers); kernel mounts are the VM scenario's.
"""

import pytest
import testinfra

TINY_SHA256 = "026794c28ac489093d2ae877a44cf90c78de061291194e66008bd59809e06c98"
LOCAL_SHA256 = "68b651d95695110638e8ca0a22eab5f6bf29f4b2f065bb90300bf75f00500893"
STORE = "/srv/nfs/models"
NFS = "nfs://ailab-nfs-store"


@pytest.fixture(scope="module")
def hosts(request):
    inventory = request.config.getoption("ansible_inventory")
    return {
        name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        for name in ("ailab-nfs-store", "ailab-nfs-client", "ailab-nfs-kernel")
    }


# --- the Ganesha server and the NFS protocol --------------------------------------


def test_ganesha_runs_and_listens_on_2049(hosts):
    store = hosts["ailab-nfs-store"]
    assert store.service("nfs-ganesha").is_running
    assert store.service("nfs-ganesha").is_enabled
    assert store.socket("tcp://0.0.0.0:2049").is_listening or store.socket("tcp://:::2049").is_listening


def test_ganesha_config_exports_model_store_read_only_and_scratch_writable(hosts):
    conf = hosts["ailab-nfs-store"].file("/etc/ganesha/ganesha.conf").content_string
    assert conf.startswith("#")
    assert 'Path = "/srv/nfs/models";' in conf
    assert "Clients = ailab-nfs-client;\n        Access_Type = RO;" in conf
    assert 'Path = "/srv/nfs/scratch";' in conf
    assert "Access_Type = RW;" in conf
    assert "Squash = root_squash;" in conf
    assert "Protocols = 4;" in conf


def test_client_reads_model_written_on_server_over_nfs(hosts):
    client = hosts["ailab-nfs-client"]
    out = client.run(f"nfs-cat '{NFS}{STORE}/tiny-model.gguf?version=4' | sha256sum")
    assert out.rc == 0, out.stderr
    assert out.stdout.split()[0] == TINY_SHA256


def test_client_lists_the_store_over_nfs(hosts):
    out = hosts["ailab-nfs-client"].run(f"nfs-ls '{NFS}{STORE}?version=4'")
    assert out.rc == 0, out.stderr
    assert "tiny-model.gguf" in out.stdout
    assert "local" in out.stdout
    assert "retired-model.gguf" not in out.stdout


def test_read_only_export_refuses_a_write(hosts):
    out = hosts["ailab-nfs-client"].run(f"nfs-cp /etc/hostname '{NFS}{STORE}/should-not-exist?version=4'")
    assert out.rc != 0
    assert "ROFS" in out.stdout + out.stderr
    assert not hosts["ailab-nfs-store"].file(f"{STORE}/should-not-exist").exists


def test_writer_wrote_to_scratch_squashed_to_nobody(hosts):
    written = hosts["ailab-nfs-store"].file("/srv/nfs/scratch/from-client.txt")
    assert written.exists
    assert written.content_string.strip() == "ailab-nfs-client"
    assert written.user == "nobody"  # root on the client is squashed


def test_host_not_in_client_list_is_refused(hosts):
    out = hosts["ailab-nfs-kernel"].run(f"nfs-ls '{NFS}{STORE}?version=4'")
    assert out.rc != 0
    assert "tiny-model.gguf" not in out.stdout


# --- the model store ----------------------------------------------------------------


def test_model_from_url_is_in_place_verified(hosts):
    store = hosts["ailab-nfs-store"]
    model = store.file(f"{STORE}/tiny-model.gguf")
    assert model.is_file
    assert model.mode == 0o644
    assert model.user == "root"
    assert model.sha256sum == TINY_SHA256
    assert not store.file(f"{STORE}/.tiny-model.gguf.part").exists


def test_interrupted_download_was_resumed_with_a_range_request(hosts):
    log = hosts["ailab-nfs-store"].file("/var/log/ailab-nfs-site.log").content_string
    assert "GET /tiny-model.gguf range=bytes=1048576-" in log


def test_model_from_local_path_is_in_place(hosts):
    model = hosts["ailab-nfs-store"].file(f"{STORE}/local/local-model.gguf")
    assert model.sha256sum == LOCAL_SHA256
    assert model.mode == 0o644


def test_verified_models_carry_a_stamp_with_size_and_mtime(hosts):
    store = hosts["ailab-nfs-store"]
    stamp = store.file(f"{STORE}/.model_store/tiny-model.gguf.json").content_string
    assert f'"digest": "{TINY_SHA256}"' in stamp
    assert '"size": 3145728' in stamp
    assert (
        '"algo": "sha512"' in store.file(f"{STORE}/.model_store/local/local-model.gguf.json").content_string
    )


REPO_Q4_SHA256 = "51f1d8484c46dae31316fe1a607246b05592b2877c55ed68e2947d8723eab023"
REPO_COMMIT = "33296f379fb5989c455b870605396a0262895fa1"


def test_repository_files_are_in_its_directory_verified(hosts):
    store = hosts["ailab-nfs-store"]
    repo = f"{STORE}/tiny-model-GGUF"
    assert sorted(store.file(repo).listdir()) == ["README.md", "tiny-Q4_K_M.gguf"]
    assert store.file(f"{repo}/tiny-Q4_K_M.gguf").sha256sum == REPO_Q4_SHA256
    assert store.file(f"{repo}/tiny-Q4_K_M.gguf").mode == 0o644
    assert store.file(repo).mode == 0o755
    readme = store.file(f"{STORE}/.model_store/tiny-model-GGUF/files/README.md.json").content_string
    assert '"algo": "git-sha1"' in readme
    record = store.file(f"{STORE}/.model_store/tiny-model-GGUF/repo.json").content_string
    assert f'"commit": "{REPO_COMMIT}"' in record


def test_repository_fetch_resumed_its_partial_file_and_asked_the_hub_once(hosts):
    """Converge asked the Hub once; the idempotence and check runs asked nothing (record and stamps)."""
    log = hosts["ailab-nfs-store"].file("/var/log/ailab-nfs-hub.log").content_string.splitlines()
    assert len([line for line in log if line.startswith("hub GET /api/models/")]) == 1
    assert any(line.startswith("cdn GET /lfs/") and "range=bytes=524288-" in line for line in log)
    assert not any(
        "c2b09cfe7f173ca73f839ca42ea2f1265f3cdd577378a8a8684cbab15bf13e91" in line for line in log
    )  # tiny-Q8_0.gguf, not included


def test_absent_model_was_removed(hosts):
    assert not hosts["ailab-nfs-store"].file(f"{STORE}/retired-model.gguf").exists


def test_layout_has_the_ollama_directory(hosts):
    ollama = hosts["ailab-nfs-store"].file(f"{STORE}/ollama")
    assert ollama.is_directory
    assert ollama.mode == 0o755


def test_wrong_checksum_left_nothing_under_the_final_name(hosts):
    store = hosts["ailab-nfs-store"]
    assert not store.file(f"{STORE}/wrong-checksum.gguf").exists
    assert not store.file(f"{STORE}/.wrong-checksum.gguf.part").exists


# --- the kernel server path (rendered and checked; nfsd is the VM scenario's) -------


def test_kernel_exports_file_is_rendered(hosts):
    exports = hosts["ailab-nfs-kernel"].file("/etc/exports.d/ailab.exports")
    assert exports.mode == 0o644
    line = [x for x in exports.content_string.splitlines() if x.startswith("/")]
    assert line == [
        "/srv/kernel-export"
        " ailab-nfs-client(ro,sync,root_squash,no_subtree_check,sec=sys,all_squash,anonuid=1000,anongid=1000)"
        " 10.89.0.0/24(ro,sync,root_squash,no_subtree_check,sec=sys,all_squash,anonuid=1000,anongid=1000)"
        " ailab-nfs-store(rw,sync,root_squash,no_subtree_check,sec=sys,all_squash,anonuid=1000,anongid=1000)"
    ]


def test_exportfs_accepted_the_exports(hosts):
    etab = hosts["ailab-nfs-kernel"].file("/var/lib/nfs/etab").content_string
    assert "/srv/kernel-export\tailab-nfs-client(ro," in etab
    assert "/srv/kernel-export\tailab-nfs-store(rw," in etab
    assert "all_squash" in etab


def test_kernel_server_serves_v3_and_v4(hosts):
    conf = hosts["ailab-nfs-kernel"].file("/etc/nfs.conf.d/ailab.conf").content_string
    assert "vers3=y" in conf
    assert "vers4.2=y" in conf


def test_kernel_service_left_alone_when_not_managed(hosts):
    assert not hosts["ailab-nfs-kernel"].service("nfs-server").is_running


def test_nftables_rules_allow_only_clients(hosts):
    rules = hosts["ailab-nfs-kernel"].file("/etc/nftables.d/ailab-nfs.nft").content_string
    assert "ip saddr { 10.89.0.0/24 } tcp dport { 2049, 111, 20048 } accept" in rules
    assert "ip saddr ailab-nfs-client tcp dport" in rules
    assert "tcp dport { 2049, 111, 20048 } drop" in rules


# --- the client's mount configuration -------------------------------------------------


def test_fstab_has_the_boot_safe_read_only_mount(hosts):
    fstab = hosts["ailab-nfs-client"].file("/etc/fstab").content_string
    entries = [x.split() for x in fstab.splitlines() if "/media/data/models" in x]
    assert len(entries) == 1
    src, path, fstype, opts, dump, passno = entries[0]
    assert (src, path, fstype, dump, passno) == (
        "ailab-nfs-store:/srv/nfs/models",
        "/media/data/models",
        "nfs",
        "0",
        "0",
    )
    options = opts.split(",")
    assert options[0] == "ro"
    for wanted in ("_netdev", "nofail", "x-systemd.automount", "x-systemd.mount-timeout=30", "vers=4.2"):
        assert wanted in options


def test_systemd_made_automount_unit_from_fstab(hosts):
    unit = hosts["ailab-nfs-client"].run("systemctl cat media-data-models.automount")
    assert unit.rc == 0, unit.stderr
    assert "Where=/media/data/models" in unit.stdout


def test_client_configured_but_not_mounted(hosts):
    client = hosts["ailab-nfs-client"]
    assert client.file("/media/data/models").is_directory
    assert not client.mount_point("/media/data/models").exists
    assert client.package("nfs-common").is_installed


def test_nftables_rules_are_loaded_at_boot(hosts):
    """nftables.service loads /etc/nftables.conf at boot: the rules must be included there,
    the unit enabled, and what boot loads must contain the NFS table."""
    host = hosts["ailab-nfs-kernel"]
    conf = host.file("/etc/nftables.conf").content_string
    assert 'include "/etc/nftables.d/ailab-nfs.nft"' in conf.splitlines()
    assert host.service("nftables").is_enabled
    # What nftables.service runs at boot (ExecStart=/usr/sbin/nft -f /etc/nftables.conf).
    host.run_expect([0], "nft -f /etc/nftables.conf")
    table = host.check_output("nft list table inet ailab_nfs")
    # nft lists a set sorted.
    assert "tcp dport { 111, 2049, 20048 } drop" in table


def test_nfsv3_mountd_has_a_fixed_port(hosts):
    conf = hosts["ailab-nfs-kernel"].file("/etc/nfs.conf.d/ailab.conf").content_string
    assert "[mountd]\nport=20048" in conf

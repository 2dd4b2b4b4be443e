"""plugins/filter/nfs.py: export, mount and model-list checks and renderings."""

import pytest
from nfs import (
    FilterModule,
    model_store_checksum,
    model_store_models_check,
    nfs_export_check,
    nfs_ganesha_client_block,
    nfs_kernel_export_line,
    nfs_mount_check,
    nfs_mount_options,
    nfs_server_exports_of,
)

HOSTS = ["localcloud", "workstation", "amdbox"]
SHA = "a" * 64


def check(exports, **kw):
    kw.setdefault("known_hosts", HOSTS)
    kw.setdefault("default_options", ["sync", "root_squash", "no_subtree_check", "sec=sys"])
    return nfs_export_check(exports, **kw)


def test_model_store_export_is_read_only_for_clients_and_rw_for_writers():
    result = check(
        [{"path": "/media/data/models/", "clients": ["workstation", "amdbox"], "writers": ["localcloud"]}]
    )
    assert result["errors"] == []
    export = result["exports"][0]
    assert export["path"] == "/media/data/models"
    assert [(c["name"], c["access"]) for c in export["clients"]] == [
        ("workstation", "ro"),
        ("amdbox", "ro"),
        ("localcloud", "rw"),
    ]


def test_writer_listed_as_client_too_gets_rw_once():
    export = check([{"path": "/x", "clients": ["workstation"], "writers": ["workstation"]}])["exports"][0]
    assert [(c["name"], c["access"]) for c in export["clients"]] == [("workstation", "rw")]


def test_inventory_host_is_exported_by_its_address():
    result = check([{"path": "/x", "clients": ["workstation"]}], addresses={"workstation": "10.0.0.5"})
    assert result["exports"][0]["clients"][0]["spec"] == "10.0.0.5"


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ({"path": "", "clients": ["workstation"]}, "path is empty"),
        ({"path": "srv/models", "clients": ["workstation"]}, "is relative"),
        ({"path": "/", "clients": ["workstation"]}, "root filesystem"),
        ({"path": "/x", "clients": []}, "has no clients"),
        ({"path": "/x", "clients": ["nosuchhost"]}, "neither an inventory host nor an IP address/network"),
        ({"path": "/x", "clients": ["*"]}, "nfs_server_allow_world: true"),
        ({"path": "/x", "writers": ["0.0.0.0/0"]}, "opens the export to the world"),
        ({"path": "/x", "clients": ["workstation"], "options": ["rw"]}, "must not hold ['rw']"),
    ],
)
def test_bad_exports_are_refused_with_the_reason(export, message):
    result = check([export])
    assert result["exports"] == []
    assert len(result["errors"]) == 1
    assert message in result["errors"][0]
    assert result["errors"][0].startswith("nfs_server_exports[0]")


def test_world_allowed_explicitly():
    assert check([{"path": "/x", "clients": ["*"]}], allow_world=True)["errors"] == []


def test_networks_and_netgroups_are_valid_clients():
    result = check([{"path": "/x", "clients": ["192.168.1.0/24", "10.0.0.7", "fd00::/64", "@lab"]}])
    assert result["errors"] == []


def test_same_path_twice_is_refused():
    result = check([{"path": "/x", "clients": ["amdbox"]}, {"path": "/x/", "clients": ["workstation"]}])
    assert "exported twice" in result["errors"][0]


def test_kernel_line_lists_each_client_with_its_options():
    export = check(
        [{"path": "/m", "clients": ["workstation"], "writers": ["10.1.0.0/16"], "options": ["root_squash"]}]
    )
    line = nfs_kernel_export_line(export["exports"][0])
    assert line == (
        "/m workstation(ro,sync,no_subtree_check,sec=sys,root_squash)"
        " 10.1.0.0/16(rw,sync,no_subtree_check,sec=sys,root_squash)"
    )


def test_later_option_replaces_an_earlier_one_with_the_same_key():
    export = check([{"path": "/m", "clients": ["amdbox"], "options": ["sec=krb5"]}])["exports"][0]
    assert export["clients"][0]["options"] == ["sync", "root_squash", "no_subtree_check", "sec=krb5"]


def test_ganesha_block_maps_squash_and_anon_ids():
    client = {"spec": "workstation", "access": "rw", "options": ["all_squash", "anonuid=1000", "anongid=100"]}
    assert nfs_ganesha_client_block(client) == {
        "Clients": "workstation",
        "Access_Type": "RW",
        "Squash": "all_squash",
        "SecType": "sys",
        "Anonymous_Uid": "1000",
        "Anonymous_Gid": "100",
    }


def test_server_exports_of_follows_model_store_and_extra_exports():
    store = {"server": "localcloud", "path": "/media/data/models"}
    assert nfs_server_exports_of("localcloud", {}, store) == ["/media/data/models"]
    assert nfs_server_exports_of("localcloud", {"nfs_server_extra_exports": [{"path": "/d"}]}, store) == [
        "/media/data/models",
        "/d",
    ]
    assert nfs_server_exports_of("amdbox", {}, store) == []


def test_mount_without_matching_export_is_refused():
    hostvars = {"localcloud": {}, "workstation": {}}
    store = {"server": "localcloud", "path": "/media/data/models"}
    mounts = [{"server": "localcloud", "export": "/media/data/other", "path": "/mnt/x"}]
    result = nfs_mount_check(mounts, hostvars=hostvars, model_store=store)
    assert "no export '/media/data/other' on localcloud" in result["errors"][0]


def test_mount_of_the_model_store_passes():
    store = {"server": "localcloud", "path": "/media/data/models"}
    mounts = [{"server": "localcloud", "export": "/media/data/models/", "path": "/media/data/models"}]
    result = nfs_mount_check(mounts, hostvars={"localcloud": {}}, model_store=store)
    assert result["errors"] == []
    assert result["mounts"][0]["export"] == "/media/data/models"


def test_mount_of_a_server_outside_the_inventory_is_not_checked():
    mounts = [{"server": "nas.example.org", "export": "/anything", "path": "/mnt/nas"}]
    assert nfs_mount_check(mounts, hostvars={})["errors"] == []


def test_mount_options_put_ro_first_and_let_the_mount_override():
    base = ["_netdev", "nofail", "vers=4.2", "rw"]
    assert nfs_mount_options({"readonly": True}, base) == "ro,_netdev,nofail,vers=4.2"
    assert nfs_mount_options({"readonly": False, "options": ["vers=3"]}, base) == "rw,_netdev,nofail,vers=3"


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_accepted_checksums(algo):
    digest = "b" * (64 if algo == "sha256" else 128)
    assert model_store_checksum(f"{algo.upper()}:{digest}") == (algo, digest)


@pytest.mark.parametrize(
    ("checksum", "message"),
    [
        ("md5:" + "a" * 32, "algorithm 'md5' is not accepted"),
        ("sha1:" + "a" * 40, "algorithm 'sha1' is not accepted"),
        ("a" * 64, "must look like 'sha256:<hex>'"),
        ("sha256:abc", "is 64 hex digits"),
        ("sha256:" + "z" * 64, "is 64 hex digits"),
    ],
)
def test_refused_checksums(checksum, message):
    with pytest.raises(ValueError) as err:
        model_store_checksum(checksum)
    assert message in str(err.value)


def test_models_normalised():
    result = model_store_models_check(
        [
            {"name": "a.gguf", "url": "https://x/a.gguf", "checksum": f"sha256:{SHA}"},
            {"name": "sub/b.gguf", "src": "/mnt/usb/b.gguf"},
            {"name": "old.gguf", "state": "absent"},
        ]
    )
    assert result["errors"] == []
    assert [(m["name"], m["source"], m["algo"]) for m in result["models"]] == [
        ("a.gguf", "https://x/a.gguf", "sha256"),
        ("sub/b.gguf", "file:///mnt/usb/b.gguf", ""),
        ("old.gguf", "", ""),
    ]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"name": "a.gguf", "url": "https://x/a.gguf"}, "has a url but no checksum"),
        ({"name": "a.gguf", "url": "https://x/a", "checksum": "md5:" + "a" * 32}, "'md5' is not accepted"),
        ({"name": "../a.gguf", "src": "/x"}, "inside it"),
        ({"name": "/etc/passwd", "src": "/x"}, "inside it"),
        ({"name": "a.gguf"}, "exactly one of url or src"),
        ({"name": "a.gguf", "src": "rel/a.gguf"}, "absolute path on the store server"),
        ({"name": "a.gguf", "url": "ssh://x/a", "checksum": f"sha256:{SHA}"}, "http(s), ftp or file URL"),
        ({"name": "a.gguf", "state": "gone"}, "must be present or absent"),
    ],
)
def test_bad_models_are_refused_naming_the_entry(model, message):
    result = model_store_models_check([model])
    assert result["models"] == []
    assert message in result["errors"][0]
    assert result["errors"][0].startswith("model_store_models[0]")


def test_filters_are_registered():
    assert set(FilterModule().filters()) >= {
        "nfs_export_check",
        "nfs_mount_check",
        "model_store_models_check",
    }


# --- Hugging Face repository entries ---------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_repo_entry_is_normalised_without_its_token():
    result = model_store_models_check(
        [
            {"name": "a.gguf", "src": "/x/a.gguf"},
            {
                "name": "Qwen-GGUF",
                "repo": "Qwen/Qwen2.5-7B-Instruct-GGUF",
                "revision": COMMIT,
                "include": "*q4_k_m*.gguf",
                "token": "hf_secret",
            },
        ]
    )
    assert result["errors"] == []
    repo = result["models"][1]
    assert repo == {
        "name": "Qwen-GGUF",
        "state": "present",
        "kind": "repo",
        "source": "",
        "algo": "",
        "digest": "",
        "repo": "Qwen/Qwen2.5-7B-Instruct-GGUF",
        "revision": COMMIT,
        "include": ["*q4_k_m*.gguf"],
        "exclude": [],
        "allow_moving_revision": False,
        "index": 1,
    }
    assert "hf_secret" not in str(result)
    assert result["models"][0]["kind"] == "file"


def test_a_branch_is_accepted_with_the_allowance():
    result = model_store_models_check(
        [{"name": "m", "repo": "gpt2", "revision": "main", "allow_moving_revision": True}]
    )
    assert result["errors"] == []
    assert result["models"][0]["allow_moving_revision"] is True


def test_an_absent_repo_entry_needs_no_revision():
    result = model_store_models_check([{"name": "m", "repo": "org/m", "state": "absent"}])
    assert result["errors"] == [] and result["models"][0]["kind"] == "repo"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"repo": "org/m"}, ".revision is required"),
        ({"repo": "org/m", "revision": "main"}, "revision 'main' is a branch, a tag or a short id"),
        ({"repo": "org/m", "revision": COMMIT[:12]}, "is a branch, a tag or a short id"),
        ({"repo": "org/m", "revision": COMMIT.upper()}, "(lowercase)"),
        ({"repo": "org/m", "revision": "main", "allow_moving_revision": "yes"}, "must be true or false"),
        ({"repo": "org/m/x", "revision": COMMIT}, "must be a Hugging Face repository id"),
        ({"repo": "org/-m", "revision": COMMIT}, "must be a Hugging Face repository id"),
        ({"repo": "org/m..x", "revision": COMMIT}, "must be a Hugging Face repository id"),
        ({"repo": "org/m.git", "revision": COMMIT}, "must be a Hugging Face repository id"),
        ({"repo": "org/m", "revision": COMMIT, "url": "https://x/a"}, "a repo entry takes no url"),
        ({"repo": "org/m", "revision": COMMIT, "checksum": f"sha256:{SHA}"}, "takes no checksum"),
        ({"repo": "org/m", "revision": COMMIT, "include": [""]}, ".include must be a list of globs"),
        ({"repo": "org/m", "revision": COMMIT, "exclude": {"a": 1}}, ".exclude must be a list of globs"),
        ({"repo": "org/m", "revision": COMMIT, "token": 5}, ".token must be a string"),
        ({"url": "https://x/a", "checksum": f"sha256:{SHA}", "revision": COMMIT}, "belong to a repo entry"),
    ],
)
def test_bad_repo_entries_are_refused_naming_the_entry(model, message):
    result = model_store_models_check([dict(model, name="m")])
    assert result["models"] == []
    assert result["errors"][0].startswith("model_store_models[0] (m)")
    assert message in result["errors"][0]


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"name": "m/extra.gguf", "src": "/x/a.gguf"}, "model_store_models[m/extra.gguf]: lies inside"),
        ({"name": "m/sub", "repo": "org/n", "revision": COMMIT}, "model_store_models[m/sub]: lies inside"),
    ],
)
def test_a_repository_owns_its_directory(other, message):
    result = model_store_models_check([{"name": "m", "repo": "org/m", "revision": COMMIT}, other])
    assert any(message in e for e in result["errors"]), result["errors"]


def test_a_file_entry_cannot_hold_a_repository():
    result = model_store_models_check(
        [{"name": "m", "src": "/x/m"}, {"name": "m/r", "repo": "org/m", "revision": COMMIT}]
    )
    assert "model_store_models[m]: would hold the directory of the repo entry m/r" in result["errors"][0]

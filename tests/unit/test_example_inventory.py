"""The documented production inventory passes the checks users' inventories go through."""

import os

import yaml
from ansible.module_utils.serving_plan import check_instance
from nfs import model_store_models_check, nfs_export_check

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(ROOT, "inventory", "example")


def load(rel):
    with open(os.path.join(EXAMPLE, rel)) as fh:
        return yaml.safe_load(fh)


def test_example_instances_are_valid():
    for host in ("localcloud", "workstation"):
        for inst in load(f"host_vars/{host}.yml")["model_instances"]:
            _norm, errors = check_instance(inst, host, bind="192.0.2.20")
            assert errors == [], errors


def test_example_store_export_and_models_are_valid():
    store = load("group_vars/all.yml")["model_store"]
    export = {"path": store["path"], "clients": store["clients"], "writers": store["writers"]}
    hosts = ["localcloud", "workstation"]
    result = nfs_export_check([export], known_hosts=hosts, addresses={h: h for h in hosts})
    assert result["errors"] == []
    assert model_store_models_check(load("group_vars/all.yml")["model_store_models"])["errors"] == []


def test_example_store_server_is_in_the_inventory():
    hosts = load("hosts.yml")["all"]["children"]
    store = load("group_vars/all.yml")["model_store"]
    assert store["server"] in hosts["store_servers"]["hosts"]
    assert set(store["clients"]) <= set(hosts["model_hosts"]["hosts"])

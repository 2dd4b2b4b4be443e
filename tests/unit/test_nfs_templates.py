"""nfs_server's daemon configuration, rendered with Ansible's templating from the role's defaults."""

import os

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "roles", "nfs_server"))


def render(template, **overrides):
    loader = DataLoader()
    variables = {
        k: trust_as_template(v) if isinstance(v, str) else v
        for k, v in loader.load_from_file(os.path.join(ROLE, "defaults", "main.yml")).items()
    }
    variables.update(ansible_managed="Ansible managed", __nfs_server_exports=[], model_store={})
    variables.update(overrides)
    with open(os.path.join(ROLE, "templates", template), encoding="utf-8") as fh:
        return Templar(loader=loader, variables=variables).template(trust_as_template(fh.read()))


@pytest.mark.parametrize("versions", [[4], [3, 4]])
def test_kernel_mountd_port_is_fixed(versions):
    # nfs.conf(5): [mountd] port=; without it rpc.mountd takes a port rpcbind hands out.
    conf = render("etc/nfs.conf.d/ailab.conf.j2", nfs_server_versions=versions)
    assert "\n[mountd]\nport=20048\n" in conf
    assert ("vers3=y" in conf) == (3 in versions)


def test_ganesha_mount_port_is_fixed_when_it_serves_nfsv3():
    # ganesha-core-config(8): MNT_Port, default 0 (any port).
    assert "MNT_Port = 20048;" in render("etc/ganesha/ganesha.conf.j2", nfs_server_versions=[3, 4])
    v4 = render("etc/ganesha/ganesha.conf.j2", nfs_server_versions=[4])
    assert "MNT_Port" not in v4 and "Enable_NLM = false;" in v4


def test_the_mountd_port_is_a_variable():
    conf = render("etc/nfs.conf.d/ailab.conf.j2", nfs_server_versions=[3, 4], nfs_server_mountd_port=4002)
    assert "port=4002" in conf

"""The gateway's lab CA and certificate (roles/gateway/tasks/tls_issue.yml), run for real on
the controller with community.crypto: issued once, left alone while valid, issued again
when it expires within the renewal window or when the names it must carry change; the CA
stays the same throughout and signs every certificate."""

import json
import os
import re
import subprocess
import sys

import pytest
from cryptography import x509

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

PLAY = """
- hosts: gwhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: gateway
        tasks_from: tls_issue.yml
"""


@pytest.fixture
def pki(tmp_path):
    (tmp_path / "play.yml").write_text(PLAY)
    inventory = {
        "all": {
            "hosts": {
                "gwhost": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "ansible_host": "10.1.2.3",
                    "gateway_tls_ca_dir": str(tmp_path / "pki"),
                }
            }
        }
    }
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    return tmp_path


def converge(pki, **extra):
    proc = subprocess.run(
        [PLAYBOOK_BIN, "-i", str(pki / "hosts.yml"), str(pki / "play.yml"), "-e", json.dumps(extra)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = re.search(r"gwhost\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout)
    assert recap, proc.stdout
    return int(recap.group(1))


def cert(pki, name="gwhost"):
    return x509.load_pem_x509_certificate((pki / "pki" / f"{name}.crt").read_bytes())


def names(certificate):
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {f"DNS:{n}" for n in sans.get_values_for_type(x509.DNSName)} | {
        f"IP:{ip}" for ip in sans.get_values_for_type(x509.IPAddress)
    }


def test_lab_ca_issues_a_certificate_for_the_host_and_leaves_it_alone_while_valid(pki):
    assert converge(pki) > 0
    ca, server = cert(pki, "ca"), cert(pki)
    server.verify_directly_issued_by(ca)
    assert {"DNS:gwhost", "DNS:localhost", "IP:127.0.0.1", "IP:10.1.2.3"} <= names(server)
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days in (396, 397)
    assert oct((pki / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct((pki / "pki" / "gwhost.key").stat().st_mode & 0o777) == "0o600"
    assert converge(pki) == 0
    assert cert(pki).serial_number == server.serial_number


def test_certificate_is_issued_again_within_the_renewal_window_by_the_same_ca(pki):
    converge(pki, gateway_tls_days=60)
    ca, first = cert(pki, "ca"), cert(pki)
    # Still 60 days valid: outside a 30-day window, inside a 61-day one.
    assert converge(pki, gateway_tls_days=60) == 0
    assert converge(pki, gateway_tls_renew_days=61) > 0
    renewed = cert(pki)
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc > first.not_valid_after_utc
    assert cert(pki, "ca").serial_number == ca.serial_number
    renewed.verify_directly_issued_by(ca)


def test_certificate_is_issued_again_when_its_names_change(pki):
    converge(pki)
    first = cert(pki)
    assert converge(pki, gateway_tls_names=["gw.lab.internal", "10.9.9.9"]) > 0
    second = cert(pki)
    assert {"DNS:gw.lab.internal", "IP:10.9.9.9", "DNS:gwhost"} <= names(second)
    assert second.serial_number != first.serial_number

"""The gateway in front of the instances: LiteLLM's proxy, driven with the official
``openai`` client (the one LiteLLM itself depends on, in the gateway's venv on the host)."""

import json
import shlex

import pytest

MASTER = "gw-master-test-key"
ALICE = "gw-alice-test-key"
CLIENT = "/opt/ailab-gateway/venv/bin/python"
# The lab CA's certificate the role installs beside the gateway's own (and keeps on the controller).
CA = "/etc/ailab-gateway/tls/ca.crt"
# A CA bundle that did not sign the gateway's certificate: Debian's public roots.
WRONG_CA = "/etc/ssl/certs/ca-certificates.crt"


def addr(host):
    return host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]


def openai(host, key, code, ca=CA):
    """Run ``code`` with ``client`` = openai.OpenAI(gateway URL, key), trusting only ``ca``;
    returns its JSON output."""
    script = (
        "import json, ssl, openai\n"
        f"tls = ssl.create_default_context(cafile={ca!r})\n"
        f"client = openai.OpenAI(base_url='https://{addr(host)}:4000/v1', api_key={key!r}, max_retries=0,\n"
        "                       http_client=openai.DefaultHttpxClient(verify=tls))\n"
        "out = {}\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "except openai.APIStatusError as e:\n"
        "    out = {'status': e.status_code}\n"
        "except openai.APIConnectionError as e:\n"
        "    out = {'connection_error': repr(e.__cause__)}\n"
        "print(json.dumps(out))\n"
    )
    cmd = host.run(f"{CLIENT} -c {shlex.quote(script)}")
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout.strip().splitlines()[-1])


def test_gateway_unit_is_hardened_and_running(host):
    assert host.service("ailab-gateway").is_running and host.service("ailab-gateway").is_enabled
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show ailab-gateway -p User -p NoNewPrivileges -p ProtectSystem -p PrivateTmp"
        ).splitlines()
    )
    assert props == {
        "User": "ailab-gateway",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
    }


def test_secrets_are_private_and_not_on_the_command_line(host):
    env = host.file("/etc/ailab-gateway/master-key.env")
    assert (env.mode, env.user) == (0o600, "root")
    for name in ("config.yaml", "client-keys.json"):
        f = host.file(f"/etc/ailab-gateway/{name}")
        assert (f.mode, f.user, f.group) == (0o640, "root", "ailab-gateway")
    args = host.check_output("ps -eo args")
    assert MASTER not in args and ALICE not in args and "gw-llm-backend-key" not in args


def test_route_list_names_every_instance(host):
    out = openai(host, ALICE, "out = sorted(m.id for m in client.models.list())")
    assert out == ["coder", "llm"]


@pytest.mark.parametrize("route", ["llm", "coder"])
def test_chat_by_route_name_returns_text_generated_by_llama_server(host, route):
    # llm: the real llama-server, reached with its own key (the gateway's route carries it);
    # coder: the textgen stand-in, whose GGUF the real llama-server serves (api_port+5).
    out = openai(
        host,
        ALICE,
        f"r = client.chat.completions.create(model={route!r}, max_tokens=8, temperature=0, "
        "messages=[{'role': 'user', 'content': 'Once upon a time'}])\n"
        "out = {'text': r.choices[0].message.content, 'tokens': r.usage.completion_tokens}",
    )
    print(route, "through the gateway:", repr(out["text"]))
    assert out["tokens"] > 0 and out["text"]
    assert "stand-in" not in out["text"]


@pytest.mark.parametrize("key", ["", "wrong-key-123", "gw-llm-backend-key"])
def test_requests_without_a_valid_key_get_401(host, key):
    out = openai(host, key or "x", "out = [m.id for m in client.models.list()]") if key else None
    if key:
        assert out == {"status": 401}
    header = f"-H {shlex.quote('Authorization: Bearer ' + key)}" if key else ""
    status = host.check_output(
        f"curl -s --cacert {CA} -o /dev/null -w '%{{http_code}}' {header} https://{addr(host)}:4000/v1/models"
    )
    assert status == "401"


def test_master_key_is_accepted(host):
    assert openai(host, MASTER, "out = sorted(m.id for m in client.models.list())") == ["coder", "llm"]


def test_tls_certificate_verifies_against_the_lab_ca_only(host):
    ok = openai(host, ALICE, "out = sorted(m.id for m in client.models.list())")
    assert ok == ["coder", "llm"]
    wrong = openai(host, ALICE, "out = sorted(m.id for m in client.models.list())", ca=WRONG_CA)
    assert "CERTIFICATE_VERIFY_FAILED" in wrong["connection_error"], wrong
    # Plain http on the TLS port is not served, even with the master key.
    plain = host.run(
        f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Authorization: Bearer {MASTER}' http://{addr(host)}:4000/v1/models"
    )
    assert plain.stdout != "200"


def test_certificate_names_the_host_and_its_key_is_private(host):
    key = host.file("/etc/ailab-gateway/tls/server.key")
    assert (key.mode, key.user, key.group) == (0o640, "root", "ailab-gateway")
    text = host.check_output(
        "openssl x509 -in /etc/ailab-gateway/tls/server.crt -noout -ext subjectAltName -issuer"
    )
    assert f"IP Address:{addr(host)}" in text and "IP Address:127.0.0.1" in text
    assert "DNS:ailab-gw-host" in text and "AI lab CA" in text
    assert host.run(f"openssl verify -CAfile {CA} /etc/ailab-gateway/tls/server.crt").rc == 0

"""plugins/filter/gateway.py: the gateway's routes from the serving plans of every host."""

import hashlib
import hmac

from ansible.module_utils.serving_plan import API_KEY_RE
from gateway import (
    gateway_route_lines,
    gateway_routes,
    gateway_routes_from_hostvars,
    instance_api_key,
    instance_api_keys,
)


def inst(name, backend="llamacpp", port=8081, **kw):
    base = {
        "name": name,
        "backend": backend,
        "model": "/media/data/models/m.gguf",
        "port": port,
        "bind": "10.0.0.5",
    }
    base.update(kw)
    return base


def plans(**hosts):
    return {host: {"instances": list(items)} for host, items in hosts.items()}


ADDR = {"a": "10.0.0.5", "b": "10.0.0.6"}


def test_one_route_per_instance_at_its_openai_endpoint():
    out = gateway_routes(
        plans(
            a=[
                inst("tiny"),
                inst("coder", "textgen", port=7861, api_port=5010),
                inst("chat", "ollama", port=11435, ollama_model="chat"),
            ]
        ),
        ADDR,
        {"a": {"tiny": "k1"}},
        "a",
    )
    assert out["errors"] == []
    by = {r["name"]: r for r in out["routes"]}
    # llama-server serves its --alias, the model's file name; textgen its API port.
    assert by["tiny"]["api_base"] == "http://10.0.0.5:8081/v1" and by["tiny"]["model"] == "m.gguf"
    assert by["tiny"]["api_key"] == "k1"
    assert by["coder"]["api_base"] == "http://10.0.0.5:5010/v1" and "api_key" not in by["coder"]
    assert by["chat"]["api_base"] == "http://10.0.0.5:11435/v1" and by["chat"]["model"] == "chat"


def test_a_model_served_once_gets_an_alias_route_and_a_shared_one_does_not():
    out = gateway_routes(
        plans(a=[inst("x", model="/s/solo.gguf"), inst("y", port=2), inst("z", port=3)]), ADDR, {}, "a"
    )
    names = [r["name"] for r in out["routes"]]
    assert "solo.gguf" in names and "m.gguf" not in names
    assert next(r for r in out["routes"] if r["name"] == "solo.gguf")["alias_of"] == "x"


def test_two_instances_with_one_name_are_refused_naming_both():
    out = gateway_routes(plans(a=[inst("llm")], b=[inst("llm", bind="10.0.0.6")]), ADDR, {}, "a")
    assert out["errors"] == [
        "gateway: two instances would get the route 'llm': a/llm and b/llm; rename one of them"
    ]


def test_an_instance_on_loopback_of_another_host_cannot_be_reached():
    out = gateway_routes(plans(b=[inst("llm", bind="127.0.0.1")]), ADDR, {}, "a")
    assert "b/llm: bind: it listens on 127.0.0.1 only, so the gateway on a cannot reach it" in out["errors"]
    # On the gateway host itself, loopback is fine.
    assert gateway_routes(plans(a=[inst("llm", bind="127.0.0.1")]), ADDR, {}, "a")["errors"] == []


def test_all_addresses_bind_uses_the_host_address_and_absent_instances_have_no_route():
    out = gateway_routes(plans(b=[inst("llm", bind="0.0.0.0"), inst("old", state="absent")]), ADDR, {}, "a")
    assert [r["api_base"] for r in out["routes"] if r["name"] == "llm"] == ["http://10.0.0.6:8081/v1"]
    assert "old" not in [r["name"] for r in out["routes"]]


def test_hosts_without_a_plan_in_this_run_are_reported():
    hostvars = {
        "a": {
            "__model_instances_plan": {"instances": [inst("llm")]},
            "ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}},
            "model_instances": [{"name": "llm", "api_key": "k"}, {"name": "other"}],
        },
        "b": {"ansible_facts": {}},
    }
    out = gateway_routes_from_hostvars(["a", "b", "c"], hostvars, "a")
    assert out["unplanned"] == ["b", "c"]
    assert [(r["name"], r.get("api_key")) for r in out["routes"] if "alias_of" not in r] == [("llm", "k")]


def test_route_preview_lines_name_the_endpoint_and_never_show_a_key():

    routes = [
        {
            "name": "tiny",
            "host": "lc",
            "backend": "llamacpp",
            "model": "t.gguf",
            "api_base": "http://127.0.0.1:8081/v1",
            "api_key": "sekret-key",
        },
        {
            "name": "t.gguf",
            "host": "lc",
            "backend": "llamacpp",
            "model": "t.gguf",
            "api_base": "http://127.0.0.1:8081/v1",
            "alias_of": "tiny",
        },
    ]
    lines = gateway_route_lines(routes)
    assert lines == [
        "tiny -> http://127.0.0.1:8081/v1 (lc/tiny, llamacpp, model t.gguf, with the instance's key)",
        "t.gguf -> http://127.0.0.1:8081/v1 (alias of tiny, llamacpp, model t.gguf)",
    ]
    assert not any("sekret" in line for line in lines)


GATEWAY = {"host": "a", "master_key": "master-test-key"}
ITEMS = [
    {"name": "llm", "backend": "llamacpp", "api_key": "own-key"},
    {"name": "tiny", "backend": "llamacpp"},
    {"name": "coder", "backend": "textgen"},
    {"name": "chat", "backend": "ollama"},
]


def test_behind_a_gateway_every_keyed_backend_gets_a_key_and_an_own_key_wins():
    keys = instance_api_keys(ITEMS, GATEWAY)
    assert set(keys) == {"llm", "tiny", "coder"}  # Ollama takes no key
    assert keys["llm"] == "own-key"
    expected = hmac.new(b"master-test-key", b"ailab-instance:tiny", hashlib.sha256).hexdigest()[:48]
    assert keys["tiny"] == "ailab-instance-" + expected
    # One instance's key opens no other; the key does not carry the master key; the planner's
    # key check (the shape textgen's --api-key and llama-server's key file take) accepts it.
    assert keys["tiny"] != keys["coder"] and "master-test-key" not in keys["tiny"]
    assert all(API_KEY_RE.fullmatch(k) for k in keys.values())


def test_derived_keys_are_stable_and_change_with_the_master_key():
    assert instance_api_keys(ITEMS, GATEWAY) == instance_api_keys(list(reversed(ITEMS)), dict(GATEWAY))
    other = instance_api_keys(ITEMS, dict(GATEWAY, master_key="another-master"))
    assert other["tiny"] != instance_api_keys(ITEMS, GATEWAY)["tiny"] and other["llm"] == "own-key"
    assert instance_api_key("m", "tiny") == instance_api_key("m", "tiny") != instance_api_key("m", "tiny2")


def test_without_a_gateway_or_its_master_key_only_own_keys_are_used():
    assert instance_api_keys(ITEMS, {}) == {"llm": "own-key"}
    assert instance_api_keys(ITEMS, None) == {"llm": "own-key"}
    assert instance_api_keys(ITEMS, {"host": "a", "master_key": ""}) == {"llm": "own-key"}
    assert instance_api_keys(None, GATEWAY) == {}


def test_routes_carry_the_keys_the_instances_get():
    hostvars = {
        "a": {
            "__model_instances_plan": {
                "instances": [inst("tiny"), inst("coder", "textgen", 7861, api_port=5010)]
            },
            "ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}},
            "model_instances": ITEMS[1:3],
            "gateway": GATEWAY,
        },
    }
    out = gateway_routes_from_hostvars(["a"], hostvars, "a")
    keys = instance_api_keys(ITEMS[1:3], GATEWAY)
    assert {r["name"]: r["api_key"] for r in out["routes"] if "alias_of" not in r} == keys

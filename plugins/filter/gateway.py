"""Filters for the gateway role: the gateway's routes from the serving plans of every host.

Pure functions, importable by tests:
- ``gateway_routes(plans, addresses, api_keys, gateway_host)``: one route per present
  instance of every host, ``{"routes": [...], "errors": [...]}``. A route is named by its
  instance and points at the instance's OpenAI-compatible endpoint (textgen's API port,
  Ollama's and llama-server's ``/v1`` on the instance's port), with the model name that
  endpoint serves (llama-server's ``--alias``, the file name; textgen's loaded model;
  the instance's Ollama model) and the instance's own key, if any. A model served by one
  instance only also gets its own name as an alias route.
- ``gateway_routes_from_hostvars(hosts, hostvars, gateway_host)``: the same from Ansible's
  ``hostvars`` (each host's ``__model_instances_plan``, its instances' keys as
  ``instance_api_keys`` gives them and its default IPv4 address), plus ``unplanned``: the hosts without a plan in this run.
- ``gateway_route_lines(routes)``: the routes as preview lines, without their keys.
- ``instance_api_keys(instances, gateway)``: instance name -> the key its backend requires:
  the item's own ``api_key``, or, where the inventory has a gateway with a master key, one
  derived from that key for every backend that takes a key (llama-server
  ``--api-key-file``, textgen ``--api-key``; Ollama has none). The model_instances role
  (the instance's flags, its readiness check) and the gateway's routes both take the keys
  from here, so they cannot differ.

A derived key is HMAC-SHA256(master key, instance name): the same on every run and on every
host the instance moves to, different per instance (one instance's key opens no other),
and it does not reveal the master key. Changing the master key changes every derived key,
and the next run restarts the keyed instances with their new keys.
"""

import hashlib
import hmac
import posixpath
import re

# A route name goes into URLs, JSON and LiteLLM's model list unchanged.
ROUTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


# Backends that accept a key: llama-server's --api-key-file, textgen's --api-key.
KEYED_BACKENDS = ("llamacpp", "textgen")


def instance_api_key(master_key, name):
    """The key derived for instance ``name`` from the gateway's master key."""
    digest = hmac.new(str(master_key).encode(), b"ailab-instance:" + str(name).encode(), hashlib.sha256)
    return "ailab-instance-" + digest.hexdigest()[:48]


def instance_api_keys(instances, gateway=None):
    """name -> key for ``instances`` (model_instances items) behind ``gateway`` (its mapping)."""
    master = (gateway or {}).get("master_key") if isinstance(gateway, dict) else None
    keys = {}
    for inst in instances or []:
        if not isinstance(inst, dict) or not isinstance(inst.get("name"), str):
            continue
        if inst.get("api_key"):
            keys[inst["name"]] = inst["api_key"]
        elif master and inst.get("backend") in KEYED_BACKENDS:
            keys[inst["name"]] = instance_api_key(master, inst["name"])
    return keys


def _served_model(inst):
    if inst.get("backend") == "ollama":
        return inst.get("ollama_model") or inst.get("name")
    return posixpath.basename(inst.get("model") or "")


def _address(inst, host, addresses):
    bind = inst.get("bind") or ""
    if bind in ("0.0.0.0", "::", ""):
        bind = addresses.get(host) or ""
    return f"[{bind}]" if ":" in bind else bind


def gateway_routes(plans, addresses, api_keys=None, gateway_host=None):
    """Routes for ``plans`` (host -> serving plan of that host, as model_instances sets it)."""
    api_keys = api_keys or {}
    routes, errors, owners = [], [], {}
    for host in sorted(plans or {}):
        plan = plans[host] or {}
        for inst in plan.get("instances", []):
            if inst.get("state", "present") != "present":
                continue
            name = inst.get("name")
            where = f"{host}/{name}"
            if not isinstance(name, str) or not ROUTE_RE.match(name):
                errors.append(f"{where}: the instance name {name!r} cannot name a gateway route")
                continue
            if name in owners:
                errors.append(
                    f"gateway: two instances would get the route {name!r}: {owners[name]} and {where}; "
                    "rename one of them"
                )
                continue
            addr = _address(inst, host, addresses or {})
            if (inst.get("bind") or "") in LOOPBACK and host != gateway_host:
                errors.append(
                    f"{where}: bind: it listens on {inst.get('bind')} only, so the gateway on "
                    f"{gateway_host} cannot reach it"
                )
                continue
            if not addr:
                errors.append(
                    f"{where}: the host's address is unknown (no default IPv4 address in its facts)"
                )
                continue
            port = inst.get("api_port") if inst.get("backend") == "textgen" else inst.get("port")
            owners[name] = where
            route = {
                "name": name,
                "host": host,
                "backend": inst.get("backend"),
                "model": _served_model(inst),
                "api_base": f"http://{addr}:{port}/v1",
            }
            key = (api_keys.get(host) or {}).get(name)
            if key:
                route["api_key"] = key
            routes.append(route)
    served = {}
    for route in routes:
        served.setdefault(route["model"], []).append(route)
    for model, same in sorted(served.items()):
        if len(same) == 1 and model and model not in owners and ROUTE_RE.match(model):
            routes.append(dict(same[0], name=model, alias_of=same[0]["name"]))
    return {"routes": routes, "errors": errors}


def gateway_routes_from_hostvars(hosts, hostvars, gateway_host=None, plan_var="__model_instances_plan"):
    plans, addresses, keys, unplanned = {}, {}, {}, []
    for host in hosts or []:
        hv = hostvars.get(host) or {}
        plan = hv.get(plan_var)
        if not plan:
            unplanned.append(host)
            continue
        plans[host] = plan
        facts = hv.get("ansible_facts") or {}
        addresses[host] = (facts.get("default_ipv4") or {}).get("address") or ""
        # The instances' keys, as the model_instances role gives them to the instances.
        keys[host] = instance_api_keys(hv.get("model_instances"), hv.get("gateway"))
    out = gateway_routes(plans, addresses, keys, gateway_host)
    out["unplanned"] = unplanned
    return out


def gateway_route_lines(routes):
    """One line per route for a preview (playbooks/plan.yml): name, where it goes, and
    whether it carries the instance's key (never the key itself)."""
    lines = []
    for route in routes or []:
        what = (
            f"alias of {route['alias_of']}"
            if route.get("alias_of")
            else f"{route.get('host')}/{route.get('name')}"
        )
        key = ", with the instance's key" if route.get("api_key") else ""
        lines.append(
            f"{route.get('name')} -> {route.get('api_base')} ({what}, {route.get('backend')}, model {route.get('model')}{key})"
        )
    return lines


class FilterModule:
    def filters(self):
        return {
            "gateway_routes": gateway_routes,
            "gateway_routes_from_hostvars": gateway_routes_from_hostvars,
            "gateway_route_lines": gateway_route_lines,
            "instance_api_keys": instance_api_keys,
        }

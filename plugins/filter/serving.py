"""Jinja filters that expose the serving planner to playbooks and templates.

The planning logic lives in plugins/module_utils/serving_plan.py (and the textgen flag
table in textgen_flags.py). Controller-side plugins cannot import custom module_utils
through ``ansible.module_utils``, so this file loads serving_plan.py by its path,
relative to this file; serving_plan.py finds textgen_flags.py the same way.
"""

import importlib.util
import os
import posixpath

from ansible.errors import AnsibleFilterError

_MODULE_UTILS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils")


def _load(name):
    spec = importlib.util.spec_from_file_location("lab_" + name, os.path.join(_MODULE_UTILS, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serving_plan = _load("serving_plan")
textgen_flags = serving_plan.textgen_flags


def _int_or_none(value, what):
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"{what} must be a whole number, got {value!r}") from exc


def serving_plan_host(
    instances,
    host,
    models,
    gpu,
    host_mem_mib=None,
    used_ports=(),
    model_root=None,
    bind=serving_plan.DEFAULT_BIND,
    ollama_models_dir=serving_plan.DEFAULT_OLLAMA_MODELS_DIR,
    textgen_version=None,
    gpu_reserve_mib=0,
    host_reserve_mib=0,
    stage="none",
    stage_dir=serving_plan.DEFAULT_STAGE_DIR,
    stage_max_gib=0,
):
    """``model_instances | serving_plan_host(host, models, gpu, ...)``: the host plan dict."""
    return serving_plan.plan_host(
        host,
        instances,
        models,
        gpu,
        _int_or_none(host_mem_mib, "host_mem_mib"),
        list(used_ports or ()),
        model_root,
        bind,
        ollama_models_dir,
        textgen_version or None,
        _int_or_none(gpu_reserve_mib, "gpu_reserve_mib") or 0,
        _int_or_none(host_reserve_mib, "host_reserve_mib") or 0,
        stage or "none",
        stage_dir or serving_plan.DEFAULT_STAGE_DIR,
        int(float(stage_max_gib or 0) * 1024),
    )


def serving_stage_items(plans):
    """The staged models of a host's instance plans, once each: ``[{src, dest}]`` for the
    model_stage module (src in the store, dest the path the backend loads)."""
    items = []
    for plan in plans or []:
        if isinstance(plan, dict) and plan.get("staged_from") and plan.get("state", "present") == "present":
            item = {"src": plan["staged_from"], "dest": plan["model"]}
            if item not in items:
                items.append(item)
    return items


def serving_store_root(model_store, host):
    """``model_store | serving_store_root(inventory_hostname)``: where this host reads the store."""
    return serving_plan.store_root(model_store, host)


def serving_default_bind(host, gateway=None, address=""):
    """The address an instance listens on when it sets no ``bind``: loopback, unless a
    gateway on another host must reach it (``gateway.host`` names another host): then the
    host's own address (``address``, its default IPv4 address), behind the instances'
    firewall. Without an address, loopback: the gateway's routes then refuse it by name.
    The one rule behind model_instances_bind and playbooks/plan.yml.
    """
    other = isinstance(gateway, dict) and gateway.get("host") and gateway.get("host") != host
    return address if other and address else "127.0.0.1"


def serving_model_paths(instances, model_root=None):
    """``model_instances | serving_model_paths(model_store.mount_path)``: paths for model_facts."""
    return serving_plan.model_paths(instances, model_root)


def _repo_entries(store_models):
    """The present repository entries of model_store_models."""
    return [
        e
        for e in store_models or []
        if isinstance(e, dict) and e.get("repo") and e.get("name") and e.get("state", "present") != "absent"
    ]


def _repo_record_path(entry, mount_path):
    return posixpath.join(str(mount_path or "/"), ".model_store", str(entry["name"]), "repo.json")


def serving_repo_records(store_models, mount_path):
    """Where the store records what it holds of each repository entry, as this host sees it
    (``<mount_path>/.model_store/<name>/repo.json``, written by hf_repo_manifest)."""
    return [_repo_record_path(e, mount_path) for e in _repo_entries(store_models)]


def _repo_held(entry, record):
    """Whether the store's record says it holds entry as declared: the same repository,
    include and exclude, at the declared commit (or, for a moving revision, the same name)."""
    if not isinstance(record, dict):
        return False

    def patterns(value):
        return [value] if isinstance(value, str) else list(value or [])

    revision = str(entry.get("revision") or "")
    held = record.get("commit") if len(revision) == 40 else record.get("revision")
    return (
        record.get("repo") == entry["repo"]
        and held == revision
        and record.get("include") == patterns(entry.get("include"))
        and record.get("exclude") == patterns(entry.get("exclude"))
    )


def serving_store_pending(models, store_models, mount_path, instances=None, store_path=None, records=None):
    """Models missing on a host that the model store has, or will have once it fetches them.

    ``models``: model_facts results keyed by path; ``store_models``: the store's
    ``model_store_models``; ``mount_path``: where the store is mounted on this host;
    ``store_path``: where the store server keeps it (``model_store.path``).
    Returns ``{"src": {path: path to inspect on the store server}, "url": {path: url},
    "instances": [names of instances whose model only a download will bring]}``:
    a model with a local ``src`` can be inspected there before the store copies it;
    one with a ``url`` can only be planned once it is downloaded, as can a file inside a
    repository entry's directory (``repo``; its "url" is ``hf:<repo>@<revision>/<file>``,
    for the message only: whether the repository holds it is the store's to check).
    A missing model under
    ``mount_path`` that the store does not declare (copied there by hand) is inspected
    in the store itself: on a freshly installed host the mount does not exist until the
    store play has run, and the model must not be refused for that.
    ``records``: model_facts' ``records`` (serving_repo_records' paths); when given, a model
    inside a repository entry the store does not yet hold as declared (another commit,
    include or exclude, or no record) is pending too, even where files are there now.
    """
    declared, repos, stale = {}, {}, set()
    for entry in _repo_entries(store_models):
        # Files there now from another revision (or half a fetch) are not what the instance
        # will load: plan it after the store has fetched the declared one.
        if records is not None and not _repo_held(entry, records.get(_repo_record_path(entry, mount_path))):
            stale.add(serving_plan.resolve_model_path(str(entry["name"]), mount_path).rstrip("/") + "/")
    for entry in store_models or []:
        if not isinstance(entry, dict) or entry.get("state", "present") == "absent" or not entry.get("name"):
            continue
        path = serving_plan.resolve_model_path(str(entry["name"]), mount_path)
        declared[path] = entry
        if entry.get("repo"):
            repos[path.rstrip("/") + "/"] = entry
    pending = {"src": {}, "url": {}, "instances": []}
    for path, facts in (models or {}).items():
        missing = isinstance(facts, dict) and str(facts.get("error") or "").endswith("does not exist")
        in_stale = next((d for d in stale if (path.rstrip("/") + "/").startswith(d)), None)
        if not missing and not in_stale:
            continue
        repo_dir = next((d for d in repos if (path.rstrip("/") + "/").startswith(d)), None)
        if repo_dir is not None:
            entry = repos[repo_dir]
            pending["url"][path] = (
                f"hf:{entry['repo']}@{entry.get('revision')}/{path[len(repo_dir) :]}".rstrip("/")
            )
            continue
        if path not in declared:
            rel = posixpath.relpath(path, mount_path) if mount_path and posixpath.isabs(path) else ""
            if store_path and rel and not rel.startswith(".."):
                pending["src"][path] = posixpath.join(str(store_path), rel)
            continue
        entry = declared[path]
        if entry.get("src"):
            pending["src"][path] = str(entry["src"])
        elif entry.get("url"):
            pending["url"][path] = str(entry["url"])
    for inst in instances or []:
        if (
            isinstance(inst, dict)
            and serving_plan.resolve_model_path(inst.get("model"), mount_path) in pending["url"]
        ):
            pending["instances"].append(inst.get("name"))
    return pending


def serving_plan_table(host_plans):
    """A plan (or list of plans) as table lines for ``debug``."""
    return serving_plan.plan_table(host_plans)


def textgen_cmd_flags(plan_or_lines, header=()):
    """CMD_FLAGS.txt text: an instance plan's ``cmd_flags``, or rendered from a list of flag lines."""
    if isinstance(plan_or_lines, dict):
        return plan_or_lines.get("cmd_flags", "")
    try:
        return textgen_flags.render_cmd_flags(
            list(plan_or_lines), [header] if isinstance(header, str) else header
        )
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def textgen_flags_check(flags):
    """``flags | textgen_flags_check``: ``{"flags": [lines], "errors": [...], "warnings": [...]}``."""
    lines, errors, warnings = textgen_flags.normalise_flags(flags)
    return {"flags": lines, "errors": errors, "warnings": warnings}


UNIT_BACKENDS = ("textgen", "ollama", "llamacpp")


def serving_orphans(unit_paths, present, absent=()):
    """Instances whose unit is on the host but which the plan no longer runs there.

    ``unit_paths``: paths of ``<backend>-<name>.service`` files the backend roles wrote.
    An instance deleted from ``model_instances`` (without ``state: absent``), or moved to
    another backend, leaves its old unit running and holding its port; each such unit is
    returned as an absent instance (``name``, ``backend``, ``purge: false``, ``orphan:
    true``) for the backends' removal tasks. Instances already listed absent are left out.
    """
    wanted = {(p["backend"], p["name"]) for p in present}
    listed = {(a.get("backend"), a["name"]) for a in absent}
    orphans = []
    for path in sorted(unit_paths):
        base = os.path.basename(path)
        if not base.endswith(".service"):
            continue
        backend, _, name = base[: -len(".service")].partition("-")
        if backend not in UNIT_BACKENDS or not name or (backend, name) in wanted:
            continue
        if (backend, name) in listed or ("auto", name) in listed:
            continue
        orphans.append({"name": name, "backend": backend, "purge": False, "orphan": True})
    return orphans


class FilterModule:
    """Serving plan filters."""

    def filters(self):
        return {
            "serving_plan_host": serving_plan_host,
            "serving_orphans": serving_orphans,
            "serving_default_bind": serving_default_bind,
            "serving_model_paths": serving_model_paths,
            "serving_plan_table": serving_plan_table,
            "serving_store_pending": serving_store_pending,
            "serving_store_root": serving_store_root,
            "serving_repo_records": serving_repo_records,
            "serving_stage_items": serving_stage_items,
            "textgen_cmd_flags": textgen_cmd_flags,
            "textgen_flags_check": textgen_flags_check,
        }

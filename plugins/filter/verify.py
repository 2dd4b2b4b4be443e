"""Filters for playbooks/verify.yml: turn what a host shows now into a health report.

Pure functions, importable by tests:
- ``verify_store_mount(mountinfo, path, servers, export, require_nfs=True)``: whether the
  model store is mounted on its mount point, from the text of ``/proc/self/mountinfo``;
- ``verify_gpu_driver(gpu, modinfo, recorded, kernel)``: whether the GPU driver is loaded
  now, from gpu_facts (the devices' bound driver) and modinfo for the running kernel;
- ``verify_refused(instances, msg, host)``: the rows of a host whose serving plan was
  refused, from the failure message of the planner;
- ``verify_instance(probe)``: one instance's health from its model-listing endpoint;
- ``verify_problems(reports, hosts)``, ``verify_lines(report)``, ``verify_bar_percent``:
  the report's problems, its text lines and the HTML memory bar.
"""

from __future__ import annotations

import posixpath
import re

_MODEL_KEYS = {"ollama": ("models", "name")}
NFS_TYPES = ("nfs", "nfs4")
# The kernel module of each vendor's compute driver, as gpu_driver installs it.
DRIVER_MODULES = {"nvidia": "nvidia", "amd": "amdgpu"}
VENDOR_NAMES = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}
# What gpu_driver's kernel_module_status means when the module is not there (module_status.yml).
MODULE_STATUS_TEXT = {
    "headers-missing": "DKMS could not build it, the running kernel's headers are not installable",
    "not-built": "DKMS did not build it although headers exist, see /var/lib/dkms/*/build/make.log",
    "missing": "the running kernel has no such module",
}
_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field):
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Entries of ``/proc/<pid>/mountinfo`` (proc(5)), in the kernel's order.

    Each line: mount ID, parent ID, major:minor, root, mount point, mount options,
    optional fields ended by ``-``, then filesystem type, mount source, super options.
    """
    entries = []
    for line in (text or "").splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        if len(fields) < sep + 3:
            continue
        entries.append(
            {
                "mount_id": fields[0],
                "parent_id": fields[1],
                "root": _unescape(fields[3]),
                "mount_point": _unescape(fields[4]),
                "options": fields[5],
                "fstype": fields[sep + 1],
                "source": _unescape(fields[sep + 2]),
                "super_options": fields[sep + 3] if len(fields) > sep + 3 else "",
            }
        )
    return entries


def _visible(entries, path):
    """The mount seen at ``path``: the last one there that nothing else is stacked on."""
    here = [e for e in entries if e["mount_point"] == path]
    covered = {e["parent_id"] for e in here}
    on_top = [e for e in here if e["mount_id"] not in covered]
    return (on_top or here or [None])[-1]


def _parent(entries, path):
    """The mount that holds ``path`` when nothing is mounted on it."""
    best = None
    for entry in entries:
        point = entry["mount_point"]
        inside = point == "/" or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best["mount_point"])):
            best = entry
    return best


def _nfs_source(source):
    """``server:/export`` or ``[v6addr]:/export`` -> (server, export), else (None, None)."""
    if source.startswith("["):
        server, sep, export = source[1:].partition("]:")
    else:
        server, sep, export = source.partition(":")
    if not sep or not server:
        return None, None
    return server, posixpath.normpath(export or "/")


def _host_key(name):
    return str(name).strip().rstrip(".").lower()


def verify_store_mount(mountinfo, path, servers=(), export=None, require_nfs=True):
    """Whether the model store is mounted on ``path`` as it must be.

    mountinfo: the text of ``/proc/self/mountinfo``; servers: the names and addresses the
    store server goes by (``model_store.server``, its ``ansible_host``, ...); export: the
    exported path (``model_store.path``). With ``require_nfs`` the mount must be NFS
    (nfs or nfs4) from one of ``servers`` and ``export``; without it (a lab whose store is a
    local volume) any mount on ``path`` counts. A directory with nothing mounted on it, or
    an automount point nothing came up behind, is not mounted.
    Returns {mounted, fstype, source, detail}.
    """
    path = posixpath.normpath(str(path))
    entries = parse_mountinfo(mountinfo)
    mount = _visible(entries, path)
    if mount is None:
        parent = _parent(entries, path)
        where = (
            f": it is a directory of the {parent['fstype']} filesystem on {parent['mount_point']}"
            if parent
            else ""
        )
        return {
            "mounted": False,
            "fstype": None,
            "source": None,
            "detail": f"nothing is mounted on {path}{where}",
        }
    state = {"mounted": False, "fstype": mount["fstype"], "source": mount["source"]}
    if mount["fstype"] == "autofs":
        return dict(
            state, detail=f"{path} is an automount point ({mount['source']}) and nothing came up behind it"
        )
    if not require_nfs:
        return dict(state, mounted=True, detail=f"{mount['fstype']} from {mount['source']}")
    if mount["fstype"] not in NFS_TYPES:
        return dict(state, detail=f"{path} is a {mount['fstype']} mount of {mount['source']}, not NFS")
    server, exported = _nfs_source(mount["source"])
    names = {_host_key(s) for s in servers or () if s}
    wanted = posixpath.normpath(str(export)) if export else None
    if server is None or (names and _host_key(server) not in names) or (wanted and exported != wanted):
        expected = "{}:{}".format(next(iter(s for s in servers or () if s), "?"), wanted or "?")
        return dict(state, detail=f"{path} is mounted from {mount['source']}, not from {expected}")
    return dict(state, mounted=True, detail=f"{mount['fstype']} from {mount['source']}")


def _upstream(version):
    """``550.54.14-1`` or ``1:6.8.5-2`` -> ``550.54.14`` / ``6.8.5``."""
    text = str(version or "").strip()
    version = text.splitlines()[0].strip() if text else ""
    if ":" in version:
        version = version.split(":", 1)[1]
    return version.split("-", 1)[0]


def _missing_reason(recorded, kernel):
    """Why the module is not there, from what gpu_driver recorded at its last run."""
    status = recorded.get("kernel_module_status")
    on = recorded.get("kernel") or "?"
    if not status:
        return "gpu_driver has not run on this host (no ansible_local.gpu_driver): run playbooks/gpu.yml"
    if status in MODULE_STATUS_TEXT:
        return f"gpu_driver found it {status} for kernel {on}: {MODULE_STATUS_TEXT[status]}"
    if on != kernel:
        return f"gpu_driver found it {status} for kernel {on}, not for this one: run playbooks/gpu.yml"
    return f"gpu_driver found it {status}, and it is gone since: run playbooks/gpu.yml"


def verify_gpu_driver(gpu, modinfo=None, recorded=None, kernel=None):
    """The GPU driver's health as the host shows it now.

    gpu: ``ansible_facts.gpu`` from gpu_facts, read at verify time (each device's bound
    kernel driver in ``driver``/``driver_loaded``; ``nvidia_module_version`` from
    /proc/driver/nvidia/version, ``driver_version`` from /sys/module/amdgpu/version).
    modinfo: the results of ``modinfo -k <kernel> -F version <module>`` (rc, stdout): the
    module is installed for the running kernel when one of them succeeded.
    recorded: ``ansible_local.gpu_driver``, only to explain a missing module.
    kernel: the running kernel release.

    Returns {vendor, module, state, healthy, detail, loaded_version, installed_version,
    kernel_module_status}; state is one of none, not-managed, no-device, loaded,
    reboot-pending, missing.
    """
    gpu = gpu or {}
    recorded = recorded or {}
    vendor = gpu.get("vendor") or "none"
    module = DRIVER_MODULES.get(vendor)
    result = {
        "vendor": vendor,
        "module": module,
        "loaded_version": "",
        "installed_version": "",
        "kernel_module_status": recorded.get("kernel_module_status", ""),
    }
    if vendor == "none":
        return dict(result, state="none", healthy=True, detail="no GPU")
    if module is None:
        return dict(
            result, state="not-managed", healthy=True, detail=f"{vendor} GPU: no driver is managed for it"
        )
    name = VENDOR_NAMES.get(vendor, vendor)
    devices = [d for d in gpu.get("devices") or [] if isinstance(d, dict) and d.get("vendor") == vendor]
    if not devices:
        why = " (the vendor comes from the inventory)" if gpu.get("source") == "inventory" else ""
        return dict(
            result,
            state="no-device",
            healthy=True,
            detail=f"no {name} GPU present{why}: the driver is not checked",
        )
    installed = [r for r in modinfo or [] if isinstance(r, dict) and r.get("rc") == 0]
    installed_version = _upstream(installed[0].get("stdout")) if installed else ""
    raw_loaded = gpu.get("nvidia_module_version") if vendor == "nvidia" else gpu.get("driver_version")
    loaded_version = _upstream(raw_loaded)
    result.update(loaded_version=loaded_version, installed_version=installed_version)
    unbound = [d for d in devices if not d.get("driver_loaded")]
    if not unbound:
        if loaded_version and installed_version and loaded_version != installed_version:
            return dict(
                result,
                state="reboot-pending",
                healthy=False,
                detail=f"the loaded {module} module is version {loaded_version}, the installed one is "
                f"{installed_version}: reboot the host",
            )
        version = f" {loaded_version}" if loaded_version else ""
        return dict(result, state="loaded", healthy=True, detail=f"{module}{version} loaded")
    bound = ", ".join(
        "{} bound to {}".format(d.get("pci_slot"), d.get("driver") or "no driver") for d in unbound
    )
    running = kernel or recorded.get("kernel") or "?"
    if installed:
        version = f" {installed_version}" if installed_version else ""
        return dict(
            result,
            state="reboot-pending",
            healthy=False,
            detail=f"the {module}{version} module is installed for kernel {running} but not in use "
            f"({bound}): reboot the host",
        )
    return dict(
        result,
        state="missing",
        healthy=False,
        detail=f"no {module} module for the running kernel {running} ({bound}); "
        + _missing_reason(recorded, running),
    )


def _reasons(msg):
    """The failure message of a task (a string or a list of lines) as a list of reasons."""
    lines = [str(m) for m in msg] if isinstance(msg, (list, tuple)) else [str(msg or "")]
    lines = [line.strip() for line in lines if line and line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]  # the planner's heading line, the reasons follow it
    return lines or ["the serving plan failed"]


def verify_refused(instances, msg, host=None):
    """Rows for a host whose serving plan was refused: every instance it declares, not ready.

    instances: the host's ``model_instances`` (anything: the refusal may be about its shape);
    msg: the failure message of the planner; host: the host's name.
    Returns {reasons: [...], instances: [...]}; an instance's detail is the reasons naming it
    (``<host>/<name>: ...``), else the whole refusal.
    """
    reasons = _reasons(msg)
    rows = []
    for inst in instances if isinstance(instances, (list, tuple)) else []:
        if not isinstance(inst, dict) or not inst.get("name"):
            continue
        own = [r for r in reasons if host and r.startswith(f"{host}/{inst['name']}:")]
        rows.append(
            {
                "name": inst.get("name"),
                "backend": inst.get("backend"),
                "loader": "",
                "model": inst.get("model"),
                "device": "",
                "port": inst.get("port"),
                "api_port": inst.get("api_port"),
                "url": "",
                "estimated_vram_mib": "",
                "estimated_ram_mib": "",
                "ready": False,
                "refused": True,
                "detail": "plan refused: " + "; ".join(own or reasons),
            }
        )
    return {"reasons": reasons, "instances": rows}


def _served_names(backend, body):
    list_key, name_key = _MODEL_KEYS.get(backend, ("data", "id"))
    if not isinstance(body, dict):
        return []
    return [str(entry.get(name_key)) for entry in body.get(list_key) or [] if isinstance(entry, dict)]


def _expected_names(plan):
    model = str(plan.get("model") or "")
    names = {model, model.rsplit("/", 1)[-1]}
    if plan.get("ollama_model"):
        names |= {str(plan["ollama_model"]), f"{plan['ollama_model']}:latest"}
    return names


def verify_instance(probe):
    """One instance's health from the uri result of its model-listing endpoint."""
    plan = probe.get("item") or {}
    backend = plan.get("backend")
    served = _served_names(backend, probe.get("json"))
    status = probe.get("status", -1)
    ready = status == 200 and bool(_expected_names(plan) & set(served))
    if ready:
        detail = "serves " + ", ".join(served)
    elif status == 200:
        detail = "answers but does not serve its model (serves: {})".format(", ".join(served) or "nothing")
    else:
        detail = probe.get("msg") or f"HTTP status {status}"
    bind = plan.get("bind") or "127.0.0.1"
    host = f"[{bind}]" if ":" in bind else bind
    return {
        "name": plan.get("name"),
        "backend": backend,
        "loader": plan.get("loader"),
        "model": plan.get("model"),
        "device": plan.get("device"),
        "port": plan.get("port"),
        "api_port": plan.get("api_port"),
        "url": f"http://{host}:{plan.get('port')}/",
        "estimated_vram_mib": plan.get("estimated_vram_mib"),
        "estimated_ram_mib": plan.get("estimated_ram_mib"),
        "ready": ready,
        "detail": detail,
    }


def verify_units(instances):
    """The systemd unit of each planned instance: ``<backend>-<name>.service``."""
    return [
        "{}-{}.service".format(i.get("backend"), i.get("name"))
        for i in instances or []
        if isinstance(i, dict) and i.get("backend") and i.get("name")
    ]


def _over(measured, planned, margin, floor_mib=256):
    """Whether a measured figure is above the plan by more than ``margin`` (a fraction) and
    by more than ``floor_mib`` (small instances' noise is not a finding)."""
    return measured is not None and measured > planned * (1 + margin) and measured - planned > floor_mib


def verify_measured(rows, memory, host=None, margin=0.25):
    """Instances' planned memory against what they use now.

    rows: ``verify_instance`` rows (planned ``estimated_ram_mib``/``estimated_vram_mib``);
    memory: the ``instance_memory`` module's result (``units``: ram_mib and gpu_mib per
    unit; ``gpu_processes``). Returns ``{instances, gpus, measured_vram_mib, warnings}``:
    each row gains ``measured_ram_mib`` and ``measured_vram_mib``; ``gpus`` is one entry per
    GPU bus id with what the instances and other processes use; a warning names each
    instance whose measured figure is above its plan by more than ``margin``.
    """
    memory = memory or {}
    units = memory.get("units") or {}
    measured_rows, warnings = [], []
    for row in rows or []:
        row = dict(row)
        unit = units.get("{}-{}.service".format(row.get("backend"), row.get("name"))) or {}
        ram = unit.get("ram_mib")
        vram = sum((unit.get("gpu_mib") or {}).values()) if unit.get("gpu_mib") else (0 if unit else None)
        row["measured_ram_mib"], row["measured_vram_mib"] = ram, vram
        label = f"{host}/{row.get('name')}" if host else str(row.get("name"))
        for what, used, planned in (
            ("RAM", ram, row.get("estimated_ram_mib")),
            ("VRAM", vram, row.get("estimated_vram_mib")),
        ):
            try:
                planned = int(planned or 0)
            except (TypeError, ValueError):
                continue
            if _over(used, planned, margin):
                warnings.append(
                    f"{label}: uses {used} MiB of {what}, planned {planned} MiB "
                    f"(more than {round(margin * 100)}% above the plan)"
                )
        measured_rows.append(row)
    gpus = {}
    for proc in memory.get("gpu_processes") or []:
        entry = gpus.setdefault(
            proc.get("bus_id"), {"bus_id": proc.get("bus_id"), "instances_mib": 0, "others_mib": 0}
        )
        entry["instances_mib" if proc.get("unit") else "others_mib"] += int(proc.get("mib") or 0)
    ordered = [gpus[k] for k in sorted(gpus)]
    return {
        "instances": measured_rows,
        "gpus": ordered,
        "measured_vram_mib": sum(g["instances_mib"] for g in ordered) if ordered else None,
        "warnings": warnings + list(memory.get("warnings") or []),
    }


def _driver(gpu):
    """The driver state of a report; a report without one has nothing to check."""
    driver = gpu.get("driver") or {}
    state = driver.get("state") or "none"
    return state, driver.get("detail") or state, driver.get("healthy", True) is not False


def _route_detail(probe):
    """Why one chat completion through the gateway did not come back (empty when it did)."""
    status = probe.get("status") or 0
    if status == 200:
        choices = (probe.get("json") or {}).get("choices") or []
        return "" if choices else "answered without a choice"
    error = (probe.get("json") or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else error
    detail = message or probe.get("msg") or "no answer"
    return f"HTTP {status}: {str(detail)[:300]}" if status else str(detail)[:300]


def verify_gateway(health, route_probes, url):
    """The gateway's part of the report, from the gateway role's probe (tasks/probe.yml).

    health: the uri result of /health/readiness/details; route_probes: the registered
    loop of one chat completion per route name. Returns {url, status, version,
    healthy, routes: [{name, ok, detail}]}.
    """
    health = health or {}
    body = health.get("json") if isinstance(health.get("json"), dict) else {}
    if health.get("status") == 200:
        status = str(body.get("status") or "unknown")
    else:
        status = f"unreachable: {health.get('msg') or 'no answer'}"
    routes = []
    for probe in (route_probes or {}).get("results") or []:
        detail = _route_detail(probe)
        routes.append({"name": probe.get("item"), "ok": not detail, "detail": detail})
    return {
        "url": url,
        "status": status,
        "version": body.get("litellm_version") or "",
        "healthy": status == "healthy",
        "routes": routes,
    }


def verify_problems(reports, hosts=None):
    """Sentences naming every problem in a list of host reports (empty: healthy).

    hosts: the hosts that were checked; one without a report (unreachable, or failed
    before its report was put together) is a problem too.
    """
    problems = []
    seen = set()
    for report in reports:
        host = report.get("host")
        seen.add(host)
        store = report.get("store") or {}
        if store and not store.get("mounted"):
            detail = f": {store['detail']}" if store.get("detail") else ""
            problems.append(f"{host}: the model store {store.get('path')} is not mounted{detail}")
        elif store and not store.get("readable"):
            problems.append(f"{host}: the model store {store.get('path')} cannot be read")
        state, detail, healthy = _driver(report.get("gpu") or {})
        if not healthy:
            problems.append(f"{host}: GPU driver {state}: {detail}")
        for reason in report.get("refused") or []:
            problems.append(f"{host}: serving plan refused: {reason}")
        for inst in report.get("instances") or []:
            if not inst.get("ready") and not inst.get("refused"):
                problems.append(f"{host}/{inst.get('name')}: not ready: {inst.get('detail')}")
        gateway = report.get("gateway") or {}
        if gateway and not gateway.get("healthy"):
            problems.append(f"{host}: gateway {gateway.get('url')} {gateway.get('status')}")
        for route in gateway.get("routes") or []:
            if not route.get("ok"):
                problems.append(f"{host}: gateway route {route.get('name')}: {route.get('detail')}")
    for host in hosts or []:
        if host not in seen:
            problems.append(f"{host}: no report: the host was unreachable or failed before its checks ended")
    return problems


def verify_lines(report):
    """Human-readable lines for one host's report."""
    lines = []
    store = report.get("store") or {}
    if store:
        if store.get("mounted"):
            where = f"mounted from {store.get('source')}"
        else:
            where = "NOT MOUNTED" + (f" ({store['detail']})" if store.get("detail") else "")
        readable = "readable" if store.get("readable") else "NOT READABLE"
        lines.append(f"store {store.get('path')}: {where}, {readable}, {store.get('files')} entries")
    gpu = report.get("gpu") or {}
    state, detail, healthy = _driver(gpu)
    memory = f"{gpu.get('vram_mib')} MiB VRAM, {gpu.get('planned_mib')} MiB planned"
    lines.append(
        f"gpu {gpu.get('vendor')} ({memory}): driver {state if healthy else state.upper()}: {detail}"
    )
    for reason in report.get("refused") or []:
        lines.append(f"PLAN REFUSED: {reason}")
    for inst in report.get("instances") or []:
        ready = "ready" if inst.get("ready") else f"NOT READY: {inst.get('detail')}"
        lines.append(
            f"{inst.get('name')!s:<12} {inst.get('backend')!s:<9} {inst.get('loader')!s:<17} "
            f"{inst.get('url')!s:<28} {ready}"
        )
    gateway = report.get("gateway") or {}
    if gateway:
        version = f" (LiteLLM {gateway['version']})" if gateway.get("version") else ""
        lines.append(f"gateway {gateway.get('url')}{version}: {gateway.get('status')}")
        for route in gateway.get("routes") or []:
            lines.append(
                f"  route {route.get('name')!s:<12} {'answers' if route.get('ok') else 'FAILS: ' + str(route.get('detail'))}"
            )
    return lines


def verify_bar_percent(used, total):
    """Width of a memory bar in percent (0-100), for the HTML report."""
    try:
        used, total = float(used or 0), float(total or 0)
    except (TypeError, ValueError):
        return 0
    if total <= 0:
        return 0
    return max(0, min(100, round(100 * used / total)))


class FilterModule:
    def filters(self):
        return {
            "verify_store_mount": verify_store_mount,
            "verify_gpu_driver": verify_gpu_driver,
            "verify_refused": verify_refused,
            "verify_instance": verify_instance,
            "verify_units": verify_units,
            "verify_measured": verify_measured,
            "verify_problems": verify_problems,
            "verify_gateway": verify_gateway,
            "verify_lines": verify_lines,
            "verify_bar_percent": verify_bar_percent,
        }

"""Filters for playbooks/verify.yml: turn probes into a health report."""

from __future__ import annotations

_MODEL_KEYS = {"ollama": ("models", "name")}


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


def _driver_state(gpu):
    driver = gpu.get("driver") or {}
    if not driver or gpu.get("vendor") in (None, "none", "auto"):
        return "none", False
    if driver.get("reboot_required"):
        return "reboot pending: " + "; ".join(driver.get("reboot_reasons") or []), False
    status = driver.get("kernel_module_status", "unknown")
    if not driver.get("gpu_present"):
        return f"installed, no GPU present (kernel module: {status})", False
    return f"kernel module: {status}", status != "loaded"


def verify_problems(reports):
    """Sentences naming every problem in a list of host reports (empty: healthy)."""
    problems = []
    for report in reports:
        host = report.get("host")
        store = report.get("store") or {}
        if store and not store.get("mounted"):
            problems.append(f"{host}: the model store {store.get('path')} is not mounted")
        elif store and not store.get("readable"):
            problems.append(f"{host}: the model store {store.get('path')} cannot be read")
        state, bad = _driver_state(report.get("gpu") or {})
        if bad:
            problems.append(f"{host}: GPU driver: {state}")
        for inst in report.get("instances") or []:
            if not inst.get("ready"):
                problems.append(f"{host}/{inst.get('name')}: not ready: {inst.get('detail')}")
    return problems


def verify_lines(report):
    """Human-readable lines for one host's report."""
    lines = []
    store = report.get("store") or {}
    if store:
        where = f"mounted from {store.get('source')}" if store.get("mounted") else "NOT MOUNTED"
        readable = "readable" if store.get("readable") else "NOT READABLE"
        lines.append(f"store {store.get('path')}: {where}, {readable}, {store.get('files')} entries")
    gpu = report.get("gpu") or {}
    state, _ = _driver_state(gpu)
    memory = f"{gpu.get('vram_mib')} MiB VRAM, {gpu.get('planned_mib')} MiB planned"
    lines.append(f"gpu {gpu.get('vendor')} ({memory}): {state}")
    for inst in report.get("instances") or []:
        ready = "ready" if inst.get("ready") else f"NOT READY: {inst.get('detail')}"
        lines.append(
            f"{inst.get('name')!s:<12} {inst.get('backend')!s:<9} {inst.get('loader')!s:<17} "
            f"{inst.get('url')!s:<28} {ready}"
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
            "verify_instance": verify_instance,
            "verify_problems": verify_problems,
            "verify_lines": verify_lines,
            "verify_bar_percent": verify_bar_percent,
        }

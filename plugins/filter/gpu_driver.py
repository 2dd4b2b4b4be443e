"""Filters for the gpu_driver role: apt source components and the reboot decision.

Pure functions, importable by tests:
- ``apt_sources_add_components(text, components, suites)``: one-line ``sources.list``
  text with the missing components appended to every ``deb``/``deb-src`` line whose
  suite is one of ``suites`` and that already carries ``main``;
- ``deb822_add_components(text, components, suites)``: the same for a deb822
  ``.sources`` file (``Components:`` of each matching, enabled stanza);
- ``apt_sources_uris(text, suites=None)``: the archive URIs of the entries that carry
  ``main`` (for those suites), one-line or deb822;
- ``gpu_driver_reboot_reasons(state)``: the sentences that explain why a reboot is
  needed before the freshly installed driver can be used (empty: none needed).
"""

import re

_ONE_LINE = re.compile(
    r"^(?P<head>\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+))(?P<comps>(?:\s+\S+)*?)(?P<tail>\s*(?:#.*)?)$"
)


def _merge(existing, wanted):
    return existing + [c for c in wanted if c not in existing]


def apt_sources_add_components(text, components, suites):
    """Append the missing ``components`` to matching one-line ``deb`` entries."""
    out = []
    for line in (text or "").splitlines():
        match = _ONE_LINE.match(line)
        if match and match.group("suite").rstrip("/") in suites:
            comps = match.group("comps").split()
            if "main" in comps:
                merged = _merge(comps, list(components))
                if merged != comps:
                    line = "{} {}{}".format(match.group("head"), " ".join(merged), match.group("tail"))
        out.append(line)
    result = "\n".join(out)
    return result + "\n" if out else result


def _stanzas(text):
    """Split deb822 text into stanzas: lists of lines, blank lines kept between them."""
    blocks, current = [], []
    for line in (text or "").splitlines():
        if line.strip() == "":
            if current:
                blocks.append(current)
                current = []
            blocks.append([line])
        else:
            current.append(line)
    if current:
        blocks.append(current)
    return blocks


def _field(lines, name):
    for line in lines:
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].split()
    return None


def deb822_add_components(text, components, suites):
    """Append the missing ``components`` to matching stanzas of a deb822 sources file."""
    out = []
    for block in _stanzas(text):
        is_entry = block and block[0].strip() and not all(line.lstrip().startswith("#") for line in block)
        if is_entry:
            stanza_suites = [s.rstrip("/") for s in (_field(block, "Suites") or [])]
            comps = _field(block, "Components") or []
            enabled = (_field(block, "Enabled") or ["yes"])[0].lower() != "no"
            if enabled and "main" in comps and any(s in suites for s in stanza_suites):
                merged = _merge(comps, list(components))
                block = [
                    "Components: " + " ".join(merged) if line.lower().startswith("components:") else line
                    for line in block
                ]
        out.extend(block)
    result = "\n".join(out)
    return result + "\n" if out else result


def apt_sources_uris(text, suites=None):
    """Archive URIs of the entries that carry ``main`` (for ``suites`` when given), both formats."""
    uris = []
    for line in (text or "").splitlines():
        match = _ONE_LINE.match(line)
        wanted = match and (suites is None or match.group("suite").rstrip("/") in suites)
        if wanted and "main" in match.group("comps").split():
            uris.append(match.group("uri"))
    for block in _stanzas(text):
        if not block or not block[0].strip():
            continue
        stanza_suites = [s.rstrip("/") for s in (_field(block, "Suites") or [])]
        enabled = (_field(block, "Enabled") or ["yes"])[0].lower() != "no"
        wanted = suites is None or any(s in suites for s in stanza_suites)
        if enabled and wanted and "main" in (_field(block, "Components") or []):
            uris.extend(_field(block, "URIs") or [])
    return [u for i, u in enumerate(uris) if u not in uris[:i]]


def _upstream(version):
    """``535.261.03-1`` or ``1:6.8.5-2`` -> ``535.261.03`` / ``6.8.5``."""
    version = (version or "").strip()
    if ":" in version:
        version = version.split(":", 1)[1]
    return version.split("-", 1)[0]


def gpu_driver_reboot_reasons(state):
    """Why a reboot is needed; ``state`` is a dict with these keys (all optional):

    vendor: nvidia | amd; module: kernel module name; loaded: bool (default: whether
    loaded_version is set); loaded_version: version of the loaded module or ""; installed_version: version of the module the next boot loads
    or ""; nouveau_loaded: bool; gpu_present: bool; module_status: built | in-kernel |
    headers-missing | not-built | missing.
    """
    reasons = []
    module = state.get("module") or ("nvidia" if state.get("vendor") == "nvidia" else "amdgpu")
    loaded = _upstream(state.get("loaded_version"))
    installed = _upstream(state.get("installed_version"))
    if state.get("vendor") == "nvidia" and state.get("nouveau_loaded"):
        reasons.append("the nouveau module is still loaded; the blacklist takes effect at the next boot")
    if loaded and installed and loaded != installed:
        reasons.append(f"the loaded {module} module is version {loaded}, the installed one is {installed}")
    is_loaded = state.get("loaded", bool(loaded))
    usable = state.get("module_status") in ("built", "in-kernel")
    if state.get("gpu_present") and usable and not is_loaded and not state.get("nouveau_loaded"):
        reasons.append(f"a GPU is present and the {module} module is installed but not loaded")
    return reasons


class FilterModule:
    def filters(self):
        return {
            "apt_sources_add_components": apt_sources_add_components,
            "deb822_add_components": deb822_add_components,
            "apt_sources_uris": apt_sources_uris,
            "gpu_driver_reboot_reasons": gpu_driver_reboot_reasons,
        }

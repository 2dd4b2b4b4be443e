"""Filter ``instance_files``: one host_files entry per instance, from a path pattern.

``instances | instance_files(path, ...)`` gives, for each instance (a mapping with a
``name``), ``path`` with ``{name}`` replaced, tagged with the name (host_files returns
the names whose entries changed, which instance_service restarts). The entry's
content is one of:

- ``src``: a template, rendered by host_files' action plugin with ``item`` set to the
  instance (as a ``loop`` over the instances would);
- ``contents``: a mapping of instance name to content; with ``lines``, each content is a
  line or a list of lines, written one per line with a final newline;
- neither, with ``state`` ``directory`` or ``absent``.

Owner, group, mode and ``secret`` are passed on. Pure (tests/unit/test_instance_files.py).
"""

from ansible.errors import AnsibleFilterError

_PASSED_ON = ("owner", "group", "mode")


def instance_files(
    instances, path, src=None, contents=None, state="file", secret=False, lines=False, **attrs
):
    unknown = set(attrs) - set(_PASSED_ON)
    if unknown:
        raise AnsibleFilterError(f"instance_files: unknown argument(s) {sorted(unknown)}")
    if "{name}" not in path:
        raise AnsibleFilterError(f"instance_files: the path {path!r} has no {{name}}")
    if state == "file" and (src is None) == (contents is None):
        raise AnsibleFilterError("instance_files: a file needs src or contents (one of them)")
    out = []
    for instance in instances:
        name = instance["name"]
        entry = {"path": path.replace("{name}", name), "state": state, "tag": name}
        if state == "file":
            if src is not None:
                entry.update(src=src, template_vars={"item": instance})
            else:
                if name not in contents:
                    raise AnsibleFilterError(f"instance_files: no content for instance {name!r}")
                content = contents[name]
                if lines:
                    content = "".join(
                        f"{line}\n" for line in ([content] if isinstance(content, str) else content)
                    )
                entry["content"] = content
            entry["secret"] = bool(secret)
        for key in _PASSED_ON:
            if attrs.get(key) is not None:
                entry[key] = attrs[key]
        out.append(entry)
    return out


class FilterModule:
    def filters(self):
        return {"instance_files": instance_files}

"""Action plugin of host_files: render each entry's src template here, then one module call.

A template is found and rendered by ansible.builtin.template's lookup (the role's
templates/ first, then the play's), with the entry's template_vars added; the module
on the host then gets only contents.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import lookup_loader


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        args = dict(self._task.args)
        files = args.get("files")
        if not isinstance(files, list):
            raise AnsibleActionFail("host_files: files must be a list of entries")
        lookup = None
        rendered = []
        for entry in files:
            if not isinstance(entry, dict):
                raise AnsibleActionFail(
                    f"host_files: each entry of files must be a mapping, got {type(entry).__name__}"
                )
            entry = dict(entry)
            src = entry.pop("src", None)
            template_vars = entry.pop("template_vars", None) or {}
            if src is not None:
                if entry.get("content") is not None:
                    raise AnsibleActionFail(f"host_files: {entry.get('path')}: give src or content, not both")
                if lookup is None:
                    lookup = lookup_loader.get(
                        "ansible.builtin.template", loader=self._loader, templar=self._templar
                    )
                entry["content"] = lookup.run([src], variables=task_vars, template_vars=template_vars)[0]
            rendered.append(entry)
        args["files"] = rendered
        result.update(self._execute_module(module_name="host_files", module_args=args, task_vars=task_vars))
        return result

"""model_instances plans once per run unless the run changed what the plan reads.

site.yml's preflight plans every host before any change; the instances play reuses
that plan only when its inputs are the same (model_instances_allow_pending aside) and
nothing this run did changes what the planner sees: a driver installed (gpu_driver's
state file changed: a fresh NVIDIA host must be planned with its GPU), a mount
changed (nfs_client), a model fetched or removed on the store server (model_store).
The digest is roles/model_instances/vars/main.yml's, rendered by a real ansible-playbook.
"""

import json
import os

from local_play import run_local

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ROLE = os.path.join(ROOT, "roles", "model_instances")

CASES = {
    "preflight": {"model_instances_allow_pending": True},
    "role": {},
    "driver_installed": {"__gpu_driver_fact_written": {"changed": True}},
    "driver_same": {"__gpu_driver_fact_written": {"changed": False}},
    "mount_changed": {"__nfs_client_changed": True},
    "model_fetched": {"store_signal": {"__model_store_fetched": {"changed": True}}},
    "model_removed": {
        "store_signal": {
            "__model_store_fetched": {"changed": False},
            "__model_store_removed": {"changed": True},
        }
    },
    "instances_changed": {
        "model_instances": [{"name": "b", "backend": "ollama", "model": "m.gguf", "port": 11500}]
    },
}


def test_the_plan_is_reused_only_when_nothing_it_reads_changed(tmp_path):
    tasks = []
    for case, extra in CASES.items():
        store = extra.pop("store_signal", None)
        if store:
            # What model_store registers on the store server, as the server's own facts.
            tasks.append({"ansible.builtin.set_fact": store, "delegate_to": "store", "delegate_facts": True})
        tasks.append(
            {
                "name": case,
                "ansible.builtin.set_fact": {
                    "digests": "{{ digests | default({}) | combine({'"
                    + case
                    + "': __model_instances_inputs_digest}) }}"
                },
                "vars": extra,
            }
        )
    play = [
        {
            "hosts": "localhost",  # store is only the server whose facts the digest reads
            "gather_facts": False,
            "vars": {
                "role_path": ROLE,
                "model_store": {"server": "store", "path": "/srv/models"},
                "model_instances": [{"name": "a", "backend": "ollama", "model": "m.gguf", "port": 11434}],
            },
            "vars_files": [
                os.path.join(ROLE, "defaults", "main.yml"),
                os.path.join(ROLE, "vars", "main.yml"),
            ],
            "tasks": tasks
            + [
                {
                    "ansible.builtin.copy": {
                        "content": "{{ digests | to_json }}",
                        "dest": str(tmp_path / "d.json"),
                        "mode": "0644",
                    }
                }
            ],
        }
    ]
    (tmp_path / "p.yml").write_text(json.dumps(play))
    run_local(tmp_path, hosts="localhost,store,")
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["preflight"] == d["role"] == d["driver_same"]
    changed = [
        d[k]
        for k in ("driver_installed", "mount_changed", "model_fetched", "model_removed", "instances_changed")
    ]
    assert d["role"] not in changed and len(set(changed)) == len(changed)

"""plugins/lookup/input_digest.py: a role checks its inputs once per run, and again when they change.

Run through a real ansible-playbook on this machine: the role's argument spec names
the inputs, role defaults and inventory values both count, and a value that differs
(or an `extra` one) gives another digest.
"""

from local_play import run_local


def test_the_digest_follows_the_documented_inputs(tmp_path):
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "tasks").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      demo_a: {type: str}\n      demo_b: {type: int}\n"
        "      demo_how: {type: bool}\n"
    )
    (role / "defaults" / "main.yml").write_text('demo_a: "{{ base }}-a"\ndemo_b: 1\ndemo_how: false\n')
    (role / "tasks" / "main.yml").write_text(
        "- ansible.builtin.set_fact:\n"
        "    digests: \"{{ digests | default([]) + [lookup('input_digest', role_path, exclude=['demo_how'], extra=[extra])] }}\"\n"
    )
    (tmp_path / "p.yml").write_text(
        """
- hosts: localhost
  gather_facts: false
  vars: {base: x, extra: 0}
  tasks:
    - {ansible.builtin.include_role: {name: demo}}
    - {ansible.builtin.include_role: {name: demo}, vars: {demo_how: true}}
    - {ansible.builtin.include_role: {name: demo}, vars: {base: y}}
    - {ansible.builtin.include_role: {name: demo}, vars: {demo_b: 2}}
    - {ansible.builtin.include_role: {name: demo}, vars: {extra: 1}}
    - {ansible.builtin.include_role: {name: demo}, vars: {unrelated: 5}}
    - ansible.builtin.assert:
        that:
          - digests | length == 6
          - digests[0] is match('^[0-9a-f]{64}$')
          - digests[1] == digests[0]
          - digests[5] == digests[0]
          - digests[2:5] | unique | length == 3
          - digests[0] not in digests[2:5]
"""
    )
    run_local(tmp_path, hosts="localhost,", ANSIBLE_ROLES_PATH=str(tmp_path / "roles"))

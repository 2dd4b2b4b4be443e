#!/usr/bin/python
"""Test stand-in: overrides operating system facts of the host it runs on.

Used by tests/unit/test_gpu_driver_bad_input.py to run the gpu_driver role's
early checks against localhost as if it were another distribution or
architecture. Changes nothing on the host.
"""

DOCUMENTATION = r"""
---
module: fake_os_facts
short_description: Test stand-in that overrides operating system facts
description:
  - Returns the given facts as ansible_facts, replacing the gathered ones. Tests only.
options:
  facts:
    description: Facts to set, such as distribution and distribution_major_version.
    type: dict
    required: true
attributes:
  check_mode:
    support: full
author:
  - Lab toolkit maintainers
"""

EXAMPLES = r"""
- name: Pretend to be Debian 13
  fake_os_facts:
    facts: {distribution: Debian, distribution_major_version: "13", distribution_release: trixie}
"""

RETURN = r"""
ansible_facts:
  description: The given facts.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec={"facts": {"type": "dict", "required": True}}, supports_check_mode=True
    )
    module.exit_json(changed=False, ansible_facts=module.params["facts"])


if __name__ == "__main__":
    main()

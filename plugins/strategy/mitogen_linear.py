"""An optional faster executor: Mitogen's ``linear`` strategy, when Mitogen is installed.

Selected per run, never by default::

    ANSIBLE_STRATEGY=mitogen_linear ansible-playbook site.yml

Mitogen keeps one Python interpreter per host for the whole run instead of starting
one per task; the result of a run is the same (tests/integration/test_lab_workflows.py,
``test_mitogen_no_op_run_matches_the_default_one``), only the transport differs. It takes over
the ``ssh``, ``local`` and ``docker`` connections when they are named so (not by their
collection names). ansible-core 2.19 warns that third-party strategy plugins are deprecated:
the default ``linear`` strategy stays the supported path.

This file stands in for Mitogen's own ``ansible_mitogen/plugins/strategy/mitogen_linear.py``
so that ``strategy_plugins`` can point inside this repository; like that file it imports
``ansible_mitogen.strategy`` under its real name, so that its types are loaded once.
"""

from __future__ import annotations

from ansible.errors import AnsibleError

try:
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError as exc:  # pragma: no cover - depends on the controller's packages
    raise AnsibleError(
        "ANSIBLE_STRATEGY=mitogen_linear needs Mitogen on the controller: "
        "pip install -r requirements.txt (it pins mitogen), or unset ANSIBLE_STRATEGY"
    ) from exc

Base = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    """Ansible's linear strategy, run over Mitogen's connections."""

"""textgen's web UI password (instance variable ui_auth, issue 15 item 4).

Upstream text-generation-webui v4.7.3 (commit 1dcde41d):
- server.py ``create_interface()`` launches Gradio on ``listen_host or 0.0.0.0`` with
  ``--listen`` and reads ``--gradio-auth-path`` line by line, each line split at ',',
  each piece stripped, then ``tuple(cred.split(':'))``;
- modules/api/script.py ``run_server()`` binds the API to the same ``--listen-host``
  (or 0.0.0.0 / 127.0.0.1): the UI cannot stay on loopback while the API listens
  beyond it, short of ``--nowebui`` (no UI at all);
- modules/shared.py ``do_cmd_flags_warnings()`` only warns when (``--listen`` or
  ``--share``) runs without ``--gradio-auth``/``--gradio-auth-path`` and without
  ``--nowebui``. The planner refuses that case instead.
"""

import os

import pytest
import yaml
from ansible.module_utils import serving_plan as sp
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader
from ansible.template import Templar, trust_as_template
from test_serving_plan import gguf

HERE = os.path.dirname(__file__)
ROLE = os.path.abspath(os.path.join(HERE, "..", "..", "roles", "textgen_webui"))
filter_loader.add_directory(os.path.abspath(os.path.join(HERE, "..", "..", "plugins", "filter")))
MIB = 1024 * 1024
SECRET = "alice:Tr0ub4dor&3"


def inst(**kw):
    base = {"name": "coder", "backend": "textgen", "model": "m.gguf", "port": 7861, "api_port": 5010}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def plan(instance):
    gpu = {"vendor": "nvidia", "total_vram_mib": 24564, "devices": [{"vendor": "nvidia"}]}
    return sp.plan_instance(instance, gguf(), gpu, 65536, "ws", model_root="/media/data/models")


def errors_of(p):
    return " | ".join(p["errors"])


# ---------------------------------------------------------------- the planner's rule


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.20", "fd00::5"])
def test_a_textgen_ui_beyond_loopback_without_ui_auth_is_refused(bind):
    p = plan(inst(bind=bind))
    assert p["refused"]
    msg = errors_of(p)
    assert "ws/coder: ui_auth:" in msg
    assert f"listens on {bind} (beyond loopback)" in msg
    assert (
        "set ui_auth ('user:password', or a list) from a vault variable, or bind the instance to loopback"
        in msg
    )


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1", "localhost"])
def test_a_textgen_ui_on_loopback_needs_no_ui_auth(bind):
    p = plan(inst(bind=bind))
    assert p["errors"] == [] and p["ui_auth_set"] is False
    assert not any("gradio" in line for line in p["flags"])


def test_the_default_bind_is_loopback_and_needs_no_ui_auth():
    assert plan(inst())["errors"] == []


def test_share_publishes_the_ui_and_needs_ui_auth_even_on_loopback():
    # do_cmd_flags_warnings(): any((args.listen, args.share)) without gradio auth.
    assert "is published by --share" in errors_of(plan(inst(flags=["--share"])))
    assert plan(inst(flags=["--share"], ui_auth=SECRET))["errors"] == []


def test_nowebui_starts_no_ui_so_the_api_may_listen_without_ui_auth():
    # server.py __main__: with --nowebui create_interface() is never called.
    assert plan(inst(bind="192.168.1.20", flags=["--nowebui"]))["errors"] == []


@pytest.mark.parametrize("ui_auth", [SECRET, [SECRET, "bob:x"]])
def test_ui_auth_beyond_loopback_is_accepted_and_kept_out_of_the_plan(ui_auth):
    p = plan(inst(bind="192.168.1.20", ui_auth=ui_auth))
    assert p["errors"] == [] and p["ui_auth_set"] is True
    assert "Tr0ub4dor" not in repr(p) and "bob:x" not in repr(p)
    assert "Tr0ub4dor" not in p["cmd_flags"]
    assert any("--gradio-auth-path" in r for r in p["reasons"])


def test_the_plan_host_result_holds_no_ui_auth_value():
    hp = sp.plan_host("ws", [inst(bind="192.168.1.20", ui_auth=SECRET)], {"m.gguf": gguf()}, None, 65536)
    assert hp["errors"] == []
    assert "Tr0ub4dor" not in repr(hp)


@pytest.mark.parametrize(
    "backend, extra",
    [("llamacpp", {"api_port": None}), ("ollama", {"api_port": None}), ("auto", {"api_port": None})],
)
def test_ui_auth_is_refused_on_backends_without_a_web_ui(backend, extra):
    # auto picks llamacpp for a GGUF.
    p = plan(inst(backend=backend, ui_auth=SECRET, **extra))
    msg = errors_of(p)
    assert "ws/coder: ui_auth: only text-generation-webui (backend textgen) has a web UI" in msg
    assert "Tr0ub4dor" not in msg


@pytest.mark.parametrize(
    "value",
    [
        "alice",  # no ':'
        "alice:",  # no password
        ":pw",  # no user
        "alice:pw:more",  # upstream splits at every ':' (a 3-tuple)
        "alice:p,w",  # upstream splits the file at ','
        "alice:p w",
        "alice:pw\n",
        "alice:pé",
        "a:" + "x" * 255,  # 257 characters
        [],
        ["alice:pw", "bob"],
        ["alice:pw", 5],
        {"alice": "pw"},
        5,
    ],
)
def test_ui_auth_of_the_wrong_shape_is_refused_without_showing_it(value):
    p = plan(inst(bind="192.168.1.20", ui_auth=value))
    msg = errors_of(p)
    assert "ws/coder: ui_auth:" in msg
    assert "the value is not shown" in msg
    for secret in ("pw", "p,w", "p w", "pé", "x" * 20):
        if secret in repr(value):
            assert secret not in msg.replace("password", "")


def test_the_longest_entry_is_accepted():
    assert plan(inst(bind="192.168.1.20", ui_auth="a:" + "x" * 254))["errors"] == []


@pytest.mark.parametrize(
    "flag",
    ["--gradio-auth alice:pw", "--gradio-auth-path /srv/textgen/coder/pw.txt", "--gradio-auth=alice:pw"],
)
def test_user_gradio_auth_flags_are_refused_in_favour_of_ui_auth(flag):
    msg = errors_of(plan(inst(flags=[flag])))
    assert f"{flag.split()[0].split('=')[0]} is set by the planner: set the instance variable ui_auth" in msg


def test_a_removed_instance_needs_no_ui_auth():
    p = plan({"name": "coder", "backend": "textgen", "state": "absent", "bind": "192.168.1.20"})
    assert p["errors"] == []


# ---------------------------------------------------------------- the role


def templar(**overrides):
    loader = DataLoader()
    variables = {}
    for part in ("defaults", "vars"):
        for k, v in loader.load_from_file(os.path.join(ROLE, part, "main.yml")).items():
            variables[k] = trust_as_template(v) if isinstance(v, str) else v
    variables.update(ansible_managed="Ansible managed")
    variables.update(overrides)
    return Templar(loader=loader, variables=variables)


def cmd_flags(item, **overrides):
    with open(os.path.join(ROLE, "templates", "instance", "CMD_FLAGS.txt.j2"), encoding="utf-8") as fh:
        return templar(item=item, **overrides).template(trust_as_template(fh.read()))


def tasks(name="main.yml"):
    with open(os.path.join(ROLE, "tasks", name), encoding="utf-8") as fh:
        return {t["name"]: t for t in yaml.safe_load(fh)}


def files(ui_auth, names=("coder",)):
    """The role's own files of its instances (vars/main.yml), as host_files entries."""
    t = templar(
        textgen_webui_instances=[{"name": n} for n in names],
        textgen_webui_ui_auth=ui_auth,
        textgen_webui_user="textgen",
        textgen_webui_instances_dir="/srv/textgen",
    )
    return t.template(trust_as_template("{{ __textgen_webui_files }}"))


def auth_entry(entries, name="coder"):
    (entry,) = [e for e in entries if e["path"] == f"/srv/textgen/{name}/gradio-auth.txt"]
    return entry


def auth_file_content(users):
    return auth_entry(files({"coder": users}))["content"]


def planned(**kw):
    p = plan(inst(bind="192.168.1.20", **kw))
    assert p["errors"] == []
    return p


def test_cmd_flags_passes_the_password_file_and_never_the_password():
    text = cmd_flags(planned(ui_auth=SECRET), textgen_webui_ui_auth={"coder": SECRET})
    assert "\n--gradio-auth-path /srv/textgen/coder/gradio-auth.txt\n" in text
    assert "Tr0ub4dor" not in text and "--gradio-auth " not in text


def test_cmd_flags_without_ui_auth_has_no_password_file():
    text = cmd_flags(plan(inst()), textgen_webui_ui_auth={})
    assert "gradio-auth" not in text


def test_cmd_flags_changes_when_ui_auth_is_added_and_stays_when_only_the_password_changes():
    # A new password rewrites only the 0600 file (whose change restarts the instance);
    # the CMD_FLAGS line stays the same, so it does not show a change of its own.
    item = planned(ui_auth=SECRET)
    without = cmd_flags(item, textgen_webui_ui_auth={})
    with_one = cmd_flags(item, textgen_webui_ui_auth={"coder": SECRET})
    with_other = cmd_flags(item, textgen_webui_ui_auth={"coder": "alice:other"})
    assert without != with_one
    assert with_one == with_other


def test_the_password_file_holds_one_pair_per_line_as_upstream_reads_it():
    assert auth_file_content(SECRET) == SECRET + "\n"
    assert auth_file_content([SECRET, "bob:x"]) == SECRET + "\nbob:x\n"


def test_the_password_file_reads_back_as_the_pairs_upstream_hands_to_gradio():
    content = auth_file_content([SECRET, "bob:x"])
    # server.py create_interface(), v4.7.3.
    auth = [x.strip() for line in content.splitlines(True) for x in line.split(",") if x.strip()]
    assert [tuple(cred.split(":")) for cred in auth] == [("alice", "Tr0ub4dor&3"), ("bob", "x")]


def test_the_password_file_content_is_the_same_for_the_same_ui_auth_and_changes_with_it():
    assert auth_file_content(SECRET) == auth_file_content(SECRET)
    assert auth_file_content(SECRET) != auth_file_content("alice:other")


def test_the_password_file_is_0600_of_the_service_user_and_never_logged():
    entry = auth_entry(files({"coder": SECRET}))
    assert entry["mode"] == "0600" and entry["owner"] == "textgen" and entry["group"] == "textgen"
    # host_files keeps a secret entry's content out of its result and out of --diff.
    assert entry["secret"] is True


def test_a_changed_or_deleted_password_file_restarts_that_instance():
    # host_files returns the tags of the entries that changed; instance_service restarts those instances.
    entries = files({"coder": SECRET}, names=("coder", "plain"))
    assert auth_entry(entries)["tag"] == "coder" and auth_entry(entries)["state"] == "file"
    gone = auth_entry(entries, "plain")
    assert gone["state"] == "absent" and gone["tag"] == "plain"
    main = tasks()["Run each instance's unit, restarting the changed ones"]["vars"]
    assert main["instance_service_files"] == "{{ __textgen_webui_files }}"


def test_removing_an_instance_deletes_its_password_file():
    # instance_service's remove.yml deletes the files the backend names (molecule's instances
    # scenario checks the file is gone and the user data kept).
    task = tasks("remove.yml")["Stop and remove the instances (user data stays unless purged)"]
    assert task["vars"]["instance_service_generated_files"] == "{{ __textgen_webui_generated_files }}"
    with open(os.path.join(ROLE, "vars", "main.yml"), encoding="utf-8") as fh:
        generated = yaml.safe_load(fh)["__textgen_webui_generated_files"]
    assert "{{ __textgen_webui_auth_file }}" in generated and "CMD_FLAGS.txt" in generated

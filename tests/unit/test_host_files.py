"""plugins/modules/host_files.py and plugins/action/host_files.py: a role's files in one call.

The module runs in-process (as AnsiballZ runs it); the action plugin runs in a real
ansible-playbook against this machine, where it renders a role template the way
ansible.builtin.template does (the test compares the two byte for byte).
"""

import json
import os
import stat

import host_files
import pytest
from local_play import run_local
from module_run import run_main


def run(capsys, files, check_mode=False, diff=False):
    args = {"files": files}
    if diff:
        args["_ansible_diff"] = True
    code = run_main(host_files.main, args, check_mode=check_mode)
    out = json.loads(capsys.readouterr().out)
    return code, out


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_files_and_directories_then_changes_nothing(tmp_path, capsys):
    d = tmp_path / "inst"
    files = [
        {"path": str(d), "state": "directory", "mode": "0750"},
        {"path": str(d / "flags"), "content": "--api\n", "mode": "0600", "tag": "chat"},
        {"path": str(d / "key"), "content": "sk-secret-value", "mode": "0640", "tag": "code", "secret": True},
    ]
    code, out = run(capsys, files)
    assert code == 0 and out["changed"]
    assert out["changed_tags"] == ["chat", "code"]
    assert (d / "flags").read_text() == "--api\n"
    assert mode(d) == 0o750 and mode(d / "flags") == 0o600 and mode(d / "key") == 0o640
    # The secret is in no part of the result, the invocation included.
    assert "sk-secret-value" not in json.dumps(out)

    code, out = run(capsys, files)
    assert code == 0 and not out["changed"] and out["changed_tags"] == [] and out["changed_paths"] == []


def test_a_changed_mode_or_content_changes_only_that_entry(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("same\n")
    a.chmod(0o600)
    b.write_text("old\n")
    b.chmod(0o644)
    files = [
        {"path": str(a), "content": "same\n", "mode": "0644", "tag": "a"},
        {"path": str(b), "content": "new\n", "mode": "0644", "tag": "b"},
        {"path": str(tmp_path / "c"), "content": "c\n", "mode": "0644", "tag": "c"},
    ]
    files[2]["content"] = "c\n"
    (tmp_path / "c").write_text("c\n")
    (tmp_path / "c").chmod(0o644)
    code, out = run(capsys, files)
    assert [f["changed"] for f in out["files"]] == [True, True, False]
    assert out["changed_tags"] == ["a", "b"]
    assert mode(a) == 0o644 and b.read_text() == "new\n"


def test_check_mode_reports_and_changes_nothing(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("old\n")
    f.chmod(0o600)
    files = [
        {"path": str(f), "content": "new\n", "mode": "0600", "tag": "f"},
        {"path": str(tmp_path / "new-dir"), "state": "directory", "mode": "0755"},
        {"path": str(tmp_path / "new-dir" / "x"), "content": "x\n", "mode": "0600"},
    ]
    code, out = run(capsys, files, check_mode=True, diff=True)
    assert code == 0 and out["changed"]
    assert [e["changed"] for e in out["files"]] == [True, True, True]
    assert f.read_text() == "old\n" and not (tmp_path / "new-dir").exists()
    assert out["diff"][0] == {
        "before_header": str(f),
        "after_header": str(f),
        "before": "old\n",
        "after": "new\n",
    }


def test_validate_checks_the_new_content_and_keeps_the_old_file_when_it_fails(tmp_path, capsys):
    f = tmp_path / "rules"
    f.write_text("good\n")
    check = "/bin/grep -q good %s"
    code, out = run(capsys, [{"path": str(f), "content": "bad\n", "validate": check}])
    assert code == 1 and "failed validation" in out["msg"] and str(f) in out["msg"]
    assert f.read_text() == "good\n" and os.listdir(tmp_path) == ["rules"]
    code, out = run(capsys, [{"path": str(f), "content": "good too\n", "validate": check}])
    assert code == 0 and out["changed"] and f.read_text() == "good too\n"


def test_a_secret_file_has_no_diff(tmp_path, capsys):
    files = [{"path": str(tmp_path / "k"), "content": "sk-0123456789", "secret": True}]
    code, out = run(capsys, files, diff=True)
    assert code == 0 and out["changed"] and "diff" not in out


def test_absent_removes_files_and_empty_directories_only(tmp_path, capsys):
    (tmp_path / "gone").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("user data")
    code, out = run(
        capsys, [{"path": str(tmp_path / p), "state": "absent"} for p in ("gone", "empty", "never")]
    )
    assert [e["changed"] for e in out["files"]] == [True, True, False]
    assert not (tmp_path / "gone").exists() and not (tmp_path / "empty").exists()
    code, out = run(capsys, [{"path": str(tmp_path / "full"), "state": "absent"}])
    assert code == 1 and "not empty" in out["msg"]
    assert (tmp_path / "full" / "keep").read_text() == "user data"


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"path": "relative/file", "content": "x"}, "absolute"),
        ({"path": "/tmp/no-such-dir-for-host-files/f", "content": "x"}, "does not exist"),
        ({"path": "/tmp", "content": "x"}, "is a directory"),
        ({"path": "/tmp/host-files-x", "src": "t.j2"}, "action plugin"),
        ({"path": "/tmp/host-files-y"}, "needs content"),
    ],
)
def test_bad_entries_are_refused_with_the_path(entry, words, capsys):
    code, out = run(capsys, [entry])
    assert code == 1 and words in out["msg"] and entry["path"] in out["msg"]


def test_the_action_plugin_renders_like_the_template_module(tmp_path):
    """One role template, rendered by ansible.builtin.template and by host_files: same bytes."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.j2").write_text(
        "# {{ ansible_managed | default('x') | length > 0 }}\n{% for f in item.flags %}--{{ f }}\n{% endfor %}\nend {{ x }}\n"
    )
    (tmp_path / "p.yml").write_text(
        f"""
- hosts: localhost
  gather_facts: false
  vars: {{x: 7, out: "{tmp_path}/out"}}
  tasks:
    - ansible.builtin.file: {{path: "{{{{ out }}}}", state: directory, mode: "0755"}}
    - ansible.builtin.template: {{src: t.j2, dest: "{{{{ out }}}}/by-template", mode: "0644"}}
      vars: {{item: {{flags: [a, b]}}}}
    - host_files:
        files:
          - {{path: "{{{{ out }}}}/by-host-files", src: t.j2, template_vars: {{item: {{flags: [a, b]}}}}, mode: "0644", tag: t}}
      register: r
    - ansible.builtin.assert: {{that: ["r.changed_tags == ['t']"]}}
"""
    )
    run_local(tmp_path, hosts="localhost,")
    by_template = (tmp_path / "out" / "by-template").read_bytes()
    assert by_template == (tmp_path / "out" / "by-host-files").read_bytes()
    assert by_template.endswith(b"end 7\n")

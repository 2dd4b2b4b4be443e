"""plugins/filter/instance_files.py: one host_files entry per instance."""

import pytest
from ansible.errors import AnsibleFilterError
from instance_files import instance_files

INSTANCES = [{"name": "chat", "port": 1}, {"name": "code", "port": 2}]


def test_a_template_entry_per_instance_with_the_instance_as_item():
    out = instance_files(INSTANCES, "/srv/x/{name}/flags", src="flags.j2", owner="u", group="u", mode="0600")
    assert out == [
        {
            "path": "/srv/x/chat/flags",
            "state": "file",
            "tag": "chat",
            "src": "flags.j2",
            "template_vars": {"item": INSTANCES[0]},
            "secret": False,
            "owner": "u",
            "group": "u",
            "mode": "0600",
        },
        {
            "path": "/srv/x/code/flags",
            "state": "file",
            "tag": "code",
            "src": "flags.j2",
            "template_vars": {"item": INSTANCES[1]},
            "secret": False,
            "owner": "u",
            "group": "u",
            "mode": "0600",
        },
    ]


def test_contents_by_name_as_lines():
    out = instance_files(
        INSTANCES, "/k/{name}", contents={"chat": "a:b", "code": ["a:b", "c:d"]}, lines=True, secret=True
    )
    assert [e["content"] for e in out] == ["a:b\n", "a:b\nc:d\n"]
    assert all(e["secret"] for e in out)


def test_directories_and_removals_carry_no_content():
    assert instance_files(INSTANCES[:1], "/d/{name}", state="directory", mode="0750") == [
        {"path": "/d/chat", "state": "directory", "tag": "chat", "mode": "0750"}
    ]
    assert instance_files(INSTANCES[:1], "/d/{name}/k", state="absent") == [
        {"path": "/d/chat/k", "state": "absent", "tag": "chat"}
    ]


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"path": "/no/name"}, "has no {name}"),
        ({"path": "/{name}"}, "src or contents"),
        ({"path": "/{name}", "src": "a", "contents": {}}, "src or contents"),
        ({"path": "/{name}", "contents": {"chat": "x"}}, "no content for instance 'code'"),
        ({"path": "/{name}", "src": "a", "colour": "red"}, "unknown argument"),
    ],
)
def test_bad_arguments_are_refused(kw, words):
    path = kw.pop("path")
    with pytest.raises(AnsibleFilterError, match=words.replace("{", r"\{").replace("}", r"\}")):
        instance_files(INSTANCES, path, **kw)

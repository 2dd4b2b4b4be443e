"""Model instances on one host: the real llama.cpp server, the textgen and Ollama stand-ins
(the textgen stand-in serves its GGUF through the real llama-server, as upstream does).

Read-only checks of what converge and side_effect.yml left behind (side_effect.yml
records PIDs, timings, a completion and a killed PID under /var/lib/ailab-test).
"""

import json
import re

import pytest

MODEL = "/media/data/models/tiny-llama-F32.gguf"
BERT = "/media/data/models/tiny-bert-F32.gguf"
UNITS = ["llamacpp-llm", "llamacpp-llm2", "llamacpp-embed", "ollama-chat", "textgen-coder"]
LLM2_KEY = "-H 'Authorization: Bearer llm2-test-key'"


def addr(host):
    return host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]


def record(host, name):
    return json.loads(host.file(f"/var/lib/ailab-test/{name}.json").content_string)


def pids(text):
    """``systemctl show -p Id -p MainPID u1 u2 …`` output (blank-line separated blocks) -> {unit: pid}."""
    out = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        out[props["Id"]] = int(props["MainPID"])
    return out


def curl(host, *args):
    cmd = host.run("curl -sS --max-time 30 " + " ".join(args))
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_instance_units_are_enabled_and_running(host, unit):
    service = host.service(unit)
    assert service.is_enabled
    assert service.is_running


def test_llamacpp_answers_a_real_completion(host):
    out = json.loads(
        curl(
            host,
            "-H 'Content-Type: application/json'",
            '-d \'{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}\'',
            f"http://{addr(host)}:8101/v1/completions",
        )
    )
    text = out["choices"][0]["text"]
    print("llama.cpp completion:", repr(text))
    assert out["object"] == "text_completion"
    assert out["usage"]["completion_tokens"] > 0
    assert "stand-in" not in text


def test_llamacpp_lists_its_model(host):
    # llama-server names the model by its first --alias (tools/server/server-context.cpp).
    out = json.loads(curl(host, f"http://{addr(host)}:8101/v1/models"))
    assert [m["id"] for m in out["data"]] == [MODEL.rsplit("/", 1)[1]]


def test_llamacpp_was_first_installed_from_the_release_archive(host):
    build = record(host, "before-source")["build"]
    assert build["install"] == "archive" and build["variant"] == "cpu" and len(build["sha256"]) == 64
    assert build["binary"] == "/opt/llama-server/llama-0c1e570-cpu/llama-server"


def test_llamacpp_runs_the_llama_server_built_on_the_host_from_source(host):
    unit = host.file("/etc/systemd/system/llamacpp-llm.service").content_string
    assert "ExecStart=/opt/llama-server/llama-0c1e570-cpu/llama-server --model " + MODEL in unit
    build = json.loads(host.file("/opt/llama-server/build.json").content_string)
    assert build["install"] == "source" and build["variant"] == "cpu"
    assert (
        "-DGGML_NATIVE=OFF" in build["cmake_args"] and "-DLLAMA_BUILD_COMMIT=0c1e570" in build["cmake_args"]
    )
    assert build["sha256"] != record(host, "before-source")["build"]["sha256"]
    out = host.run("/opt/llama-server/llama-0c1e570-cpu/llama-server --version")
    assert out.rc == 0 and "commit 0c1e570" in out.stdout + out.stderr
    # Installed in the release archive's layout: the server with its libraries, RPATH $ORIGIN.
    files = host.run("ls /opt/llama-server/llama-0c1e570-cpu").stdout.split()
    assert "llama-server" in files and "libllama.so" in " ".join(files)
    # The source and the build tree are gone; only the record and the one build remain.
    assert host.run("ls /opt/llama-server").stdout.split() == ["build.json", "llama-0c1e570-cpu"]


def test_source_build_restarted_only_the_llamacpp_instances(host):
    before = pids(record(host, "before-source")["pids"])
    after = record(host, "after-source")
    now = pids(after["pids"])
    for unit, pid in before.items():
        assert pid and now[unit], unit
        if unit.startswith("llamacpp-"):
            assert now[unit] != pid, unit
        else:
            assert now[unit] == pid, unit
    print(
        "source build converge took %.1f s" % (after["end"] - record(host, "before-source")["start"]),
        "; completion:",
        repr(after["completion"]["choices"][0]["text"]),
    )
    assert after["completion"]["usage"]["completion_tokens"] > 0


def test_llamacpp_health_is_ok(host):
    assert json.loads(curl(host, f"http://{addr(host)}:8101/health")) == {"status": "ok"}


def test_instances_bind_the_lab_address_not_all_addresses(host):
    listening = host.run("ss -Htln").stdout
    ip = addr(host)
    for port in (8101, 8102, 8103, 11435, 7861, 5010):
        assert f"{ip}:{port} " in listening, (port, listening)
        assert f"0.0.0.0:{port} " not in listening


def status_of(host, *args):
    return host.check_output("curl -s -o /dev/null -w '%{http_code}' --max-time 30 " + " ".join(args))


def test_llamacpp_embedding_instance_answers_embeddings(host):
    # The planner adds --embedding for a BERT GGUF (an embedding architecture); the real
    # llama-server pools the tiny BERT's 64-wide output into one vector per input.
    unit = host.file("/etc/systemd/system/llamacpp-embed.service").content_string
    assert f"--model {BERT} " in unit and " --embedding" in unit
    out = json.loads(
        curl(
            host,
            "-H 'Content-Type: application/json'",
            '-d \'{"input": "hello world", "model": "tiny-bert-F32.gguf"}\'',
            f"http://{addr(host)}:8103/v1/embeddings",
        )
    )
    vector = out["data"][0]["embedding"]
    assert len(vector) == 64 and all(isinstance(v, float) for v in vector)
    assert out["usage"]["prompt_tokens"] > 0


def test_llamacpp_serves_prometheus_metrics(host):
    text = curl(host, f"http://{addr(host)}:8101/metrics")
    # tools/server/server-context.cpp names every metric llamacpp:<name>.
    assert "# TYPE llamacpp:prompt_tokens_total counter" in text
    assert re.search(r"^llamacpp:n_decode_total \d+", text, re.M)


def test_llamacpp_api_key_is_required_and_kept_in_a_private_file(host):
    ip = addr(host)
    # tools/server/server-http.cpp: /health is public; every other path needs the key.
    assert status_of(host, f"http://{ip}:8102/health") == "200"
    assert status_of(host, f"http://{ip}:8102/v1/models") == "401"
    assert status_of(host, "-H 'Authorization: Bearer wrong'", f"http://{ip}:8102/v1/models") == "401"
    assert status_of(host, "-H 'Authorization: Bearer wrong'", f"http://{ip}:8102/metrics") == "401"
    assert status_of(host, LLM2_KEY, f"http://{ip}:8102/v1/models") == "200"
    assert "llamacpp:" in curl(host, LLM2_KEY, f"http://{ip}:8102/metrics")
    key = host.file("/var/lib/llamacpp/llm2/api-key")
    assert (key.mode, key.user, key.group) == (0o600, "llamacpp", "llamacpp")
    # The key is in the file, never on the command line (ps shows the command line).
    assert "llm2-test-key" not in host.file("/etc/systemd/system/llamacpp-llm2.service").content_string
    assert "llm2-test-key" not in host.check_output("ps -eo args")
    assert "--api-key-file /var/lib/llamacpp/llm2/api-key" in host.check_output("ps -eo args")
    # An instance without a key has no key file and answers without one.
    assert not host.file("/var/lib/llamacpp/llm/api-key").exists


KEY = "-H 'Authorization: Bearer standin-test-key'"


def test_textgen_standin_serves_the_model_from_cmd_flags(host):
    out = json.loads(curl(host, KEY, f"http://{addr(host)}:5010/v1/models"))
    assert [m["id"] for m in out["data"]] == [MODEL]


def test_textgen_answers_a_real_completion_generated_by_llama_server(host):
    reply = json.loads(
        curl(
            host,
            KEY,
            "-H 'Content-Type: application/json'",
            '-d \'{"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}\'',
            f"http://{addr(host)}:5010/v1/completions",
        )
    )
    text = reply["choices"][0]["text"]
    print("textgen completion:", repr(text))
    assert reply["object"] == "text_completion" and reply["id"].startswith("cmpl-")
    assert reply["usage"]["completion_tokens"] > 0
    assert text and "stand-in" not in text
    # Greedy decoding: llama-server itself, asked for the same tokens, gives the same text.
    tokens = json.loads(
        curl(
            host,
            '-d \'{"content": "Once upon a time", "add_special": true}\'',
            "http://127.0.0.1:5015/tokenize",
        )
    )["tokens"]
    body = json.dumps({"prompt": tokens, "n_predict": 8, "temperature": 0, "top_k": 1})
    direct = json.loads(curl(host, f"-d '{body}'", "http://127.0.0.1:5015/completion"))
    assert direct["content"] == text


def test_textgen_runs_upstream_llama_server_on_api_port_plus_5(host):
    # modules/llama_cpp_server.py (textgen v4.7.3): the llama_cpp_binaries binary, a child
    # of server.py, on api_port+5 at llama-server's default host 127.0.0.1, upstream's flags.
    listening = host.check_output("ss -Htlnp 'sport = :5015'")
    assert "127.0.0.1:5015 " in listening and '"llama-server"' in listening, listening
    pid = re.search(r'"llama-server",pid=(\d+)', listening).group(1)
    status = host.file(f"/proc/{pid}/status").content_string
    main = host.check_output("systemctl show -p MainPID --value textgen-coder")
    assert re.search(r"^PPid:\s+(\d+)$", status, re.M).group(1) == main
    argv = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/cmdline").splitlines()
    assert re.fullmatch(
        r"/opt/text-generation-webui/installer_files/env/lib/python3\.\d+/site-packages/llama_cpp_binaries/bin/llama-server",
        argv[0],
    ), argv
    line = " ".join(argv[1:])
    for expected in (
        f"--model {MODEL} --batch-size 1024 --ubatch-size 1024 --port 5015 --no-webui --flash-attn on --ctx-size 1024",
        "--threads 3",
        "--parallel 1",
    ):
        assert expected in line, (expected, line)
    cmd_flags = host.file("/srv/textgen/coder/CMD_FLAGS.txt").content_string.splitlines()
    gpu = [flag for flag in cmd_flags if flag.startswith("--gpu-layers ")]
    assert (gpu[0] + " --fit off" if gpu else "--fit on --fit-ctx 8192 --fit-target 512") in line, line


def test_textgen_api_key_is_required(host):
    status = curl(host, "-o /dev/null -w '%{http_code}'", f"http://{addr(host)}:5010/v1/models")
    assert status == "401"


def test_textgen_cmd_flags_hold_the_plan(host):
    flags = host.file("/srv/textgen/coder/CMD_FLAGS.txt")
    assert flags.user == "textgen"
    assert flags.mode == 0o600
    lines = [line for line in flags.content_string.splitlines() if line and not line.startswith("#")]
    ip = addr(host)
    for expected in (
        f"--model {MODEL}",
        "--loader llama.cpp",
        "--listen-port 7861",
        "--api",
        "--api-port 5010",
        "--listen",
        f"--listen-host {ip}",
        "--ctx-size 1024",
        "--threads 3",
        "--api-key standin-test-key",
    ):
        assert expected in lines, (expected, lines)
    assert not any("#" in line for line in lines), "inline comments break upstream's parser"


def test_textgen_ui_password_file_is_private_and_only_its_path_is_on_the_command_line(host):
    # ui_auth (required: coder listens on the host's address) is written in the format
    # upstream's server.py create_interface() reads --gradio-auth-path: user:password lines.
    auth = host.file("/srv/textgen/coder/gradio-auth.txt")
    assert auth.user == "textgen" and auth.group == "textgen"
    assert auth.mode == 0o600
    assert auth.content_string == "admin:standin-ui-pass\n"
    lines = host.file("/srv/textgen/coder/CMD_FLAGS.txt").content_string.splitlines()
    assert "--gradio-auth-path /srv/textgen/coder/gradio-auth.txt" in lines
    assert not any("standin-ui-pass" in line for line in lines)
    assert "standin-ui-pass" not in host.check_output("ps -eo args")
    # The stand-in reads the file as the service user, as upstream does at startup.
    journal = host.check_output("journalctl -u textgen-coder.service --no-pager -o cat")
    assert "UI password: 1 user(s)" in journal.split("stand-in for text-generation-webui")[-1]


def test_removed_textgen_instance_lost_its_ui_password_file_but_kept_its_user_data(host):
    assert host.file("/srv/textgen/scratch/logs-chat-standin.json").is_file
    assert not host.file("/srv/textgen/scratch/gradio-auth.txt").exists


def test_textgen_unit_runs_server_py_with_the_user_data_dir(host):
    unit = host.file("/etc/systemd/system/textgen-coder.service").content_string
    assert (
        "ExecStart=/opt/text-generation-webui/installer_files/env/bin/python server.py "
        "--user-data-dir /srv/textgen/coder" in unit
    )


def test_ollama_unit_environment(host):
    env = host.run("systemctl show -p Environment --value ollama-chat").stdout.split()
    ip = addr(host)
    for expected in (
        f"OLLAMA_HOST={ip}:11435",
        "OLLAMA_MODELS=/usr/share/ollama/.ollama/models",
        "OLLAMA_MAX_LOADED_MODELS=1",
        "OLLAMA_KEEP_ALIVE=-1",
        "CUDA_VISIBLE_DEVICES=-1",
        # The planned context, always set: min(the model's 2048, the planner's 4096).
        "OLLAMA_CONTEXT_LENGTH=2048",
    ):
        assert expected in env, (expected, env)


def test_ollama_standin_has_the_model_imported_and_loaded(host):
    ps = json.loads(curl(host, f"http://{addr(host)}:11435/api/ps"))
    assert [m["name"] for m in ps["models"]] == ["chat:latest"]
    show = json.loads(curl(host, '-d \'{"model": "chat"}\'', f"http://{addr(host)}:11435/api/show"))
    digest = host.check_output(f"sha256sum {MODEL}").split()[0]
    assert f"sha256-{digest}" in show["modelfile"]


def test_ollama_digest_stamp_describes_the_model_file(host):
    """The import check trusts this stamp instead of re-hashing the GGUF on every converge."""
    stamp = json.loads(host.file("/var/lib/ollama-instances/chat/model-digest.json").content_string)
    size, inode, mtime = host.check_output(f"stat -c '%s %i %.9Y' {MODEL}").split()
    assert stamp["path"] == MODEL
    assert stamp["size"] == int(size)
    assert stamp["inode"] == int(inode)
    assert abs(stamp["mtime"] - float(mtime)) < 1e-5
    assert stamp["sha256"] == host.check_output(f"sha256sum {MODEL}").split()[0]


@pytest.mark.parametrize("unit", ["llamacpp-llm", "llamacpp-llm2", "ollama-chat", "textgen-coder"])
def test_units_are_hardened(host, unit):
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {unit} -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
            "-p PrivateTmp -p Restart -p DevicePolicy -p ReadOnlyPaths -p ReadWritePaths"
        ).splitlines()
    )
    assert props["User"] not in ("", "root")
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["Restart"] == "on-failure"
    assert props["DevicePolicy"] == "closed"
    assert "/media/data/models" in props["ReadOnlyPaths"]
    assert unit.split("-", 1)[1] in props["ReadWritePaths"]


def test_second_converge_restarted_only_the_changed_instance(host):
    """llm2 added, scratch removed, coder's flags changed: only coder restarts, llm and chat keep their PID."""
    before = pids(record(host, "before")["pids"])
    after = pids(record(host, "after")["pids"])
    assert set(before) == {"llamacpp-llm.service", "ollama-chat.service", "textgen-coder.service"}
    assert all(before.values()) and all(after.values())
    assert after["llamacpp-llm.service"] == before["llamacpp-llm.service"]
    assert after["ollama-chat.service"] == before["ollama-chat.service"]
    assert after["textgen-coder.service"] != before["textgen-coder.service"]


def test_added_instance_answered_after_the_second_converge(host):
    after = record(host, "after")
    assert [m["id"] for m in after["llm2_models"]["data"]] == [MODEL.rsplit("/", 1)[1]]
    print(
        "second converge (add llm2, remove scratch) took %.1f s"
        % (after["end"] - record(host, "before")["start"])
    )
    print("llama.cpp completion in side_effect:", repr(after["completion"]["choices"][0]["text"]))


def test_absent_instance_is_gone_but_its_user_data_kept(host):
    assert not host.file("/etc/systemd/system/textgen-scratch.service").exists
    assert not host.service("textgen-scratch").is_running
    assert not host.file("/srv/textgen/scratch/CMD_FLAGS.txt").exists
    # side_effect.yml left a saved chat there before the removal.
    assert host.file("/srv/textgen/scratch/logs-chat-standin.json").is_file
    listening = host.run("ss -Htln").stdout
    assert ":7862 " not in listening and ":5020 " not in listening


def test_killed_instance_was_restarted_by_systemd(host):
    killed = record(host, "killed")["pid"]
    now = int(host.check_output("systemctl show -p MainPID --value llamacpp-llm"))
    assert now and now != killed
    assert int(host.check_output("systemctl show -p NRestarts --value llamacpp-llm")) >= 1
    assert host.service("llamacpp-llm").is_running

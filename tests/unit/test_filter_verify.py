"""The health report filters: an instance is ready only when it serves its model."""

from verify import verify_bar_percent, verify_instance, verify_lines, verify_problems

LLAMACPP = {
    "name": "tiny",
    "backend": "llamacpp",
    "loader": "llama_cpp.server",
    "model": "/media/data/models/tiny-llama-F32.gguf",
    "bind": "10.0.0.5",
    "port": 8081,
    "device": "cpu",
    "estimated_vram_mib": 0,
}
OLLAMA = {
    "name": "chat",
    "backend": "ollama",
    "loader": "ollama",
    "model": "/media/data/models/tiny-llama-F32.gguf",
    "ollama_model": "chat",
    "bind": "0.0.0.0",
    "port": 11435,
}


def test_llamacpp_serving_its_model_is_ready():
    probe = {"item": LLAMACPP, "status": 200, "json": {"data": [{"id": LLAMACPP["model"]}]}}
    inst = verify_instance(probe)
    assert inst["ready"] is True
    assert inst["url"] == "http://10.0.0.5:8081/"


def test_instance_answering_with_another_model_is_not_ready():
    probe = {"item": LLAMACPP, "status": 200, "json": {"data": [{"id": "other.gguf"}]}}
    inst = verify_instance(probe)
    assert inst["ready"] is False
    assert "does not serve its model" in inst["detail"]


def test_unreachable_instance_is_not_ready_with_the_probe_message():
    probe = {"item": LLAMACPP, "status": -1, "msg": "Connection refused"}
    inst = verify_instance(probe)
    assert inst["ready"] is False
    assert inst["detail"] == "Connection refused"


def test_ollama_model_with_latest_tag_is_ready():
    probe = {"item": OLLAMA, "status": 200, "json": {"models": [{"name": "chat:latest"}]}}
    assert verify_instance(probe)["ready"] is True


def test_problems_name_host_and_instance():
    reports = [
        {
            "host": "ws",
            "store": {"path": "/m", "mounted": False, "readable": False},
            "gpu": {
                "vendor": "nvidia",
                "driver": {"gpu_present": True, "kernel_module_status": "not-loaded"},
            },
            "instances": [{"name": "chat", "ready": False, "detail": "HTTP status 500"}],
        }
    ]
    problems = verify_problems(reports)
    assert "ws: the model store /m is not mounted" in problems
    assert "ws/chat: not ready: HTTP status 500" in problems
    assert any(p.startswith("ws: GPU driver: kernel module: not-loaded") for p in problems)


def test_healthy_report_has_no_problems():
    reports = [
        {
            "host": "ws",
            "store": {"path": "/m", "mounted": True, "readable": True, "files": 2, "source": "srv:/m"},
            "gpu": {
                "vendor": "nvidia",
                "driver": {"gpu_present": False, "kernel_module_status": "headers-missing"},
            },
            "instances": [{"name": "chat", "ready": True}],
        }
    ]
    assert verify_problems(reports) == []
    assert any("mounted from srv:/m" in line for line in verify_lines(reports[0]))


def test_pending_reboot_is_reported_but_not_a_problem():
    gpu = {
        "vendor": "nvidia",
        "driver": {"gpu_present": True, "reboot_required": True, "reboot_reasons": ["x"]},
    }
    report = {"host": "ws", "gpu": gpu, "instances": []}
    assert verify_problems([report]) == []
    assert "reboot pending: x" in verify_lines(report)[0]


def test_bar_percent_is_clamped():
    assert verify_bar_percent(6144, 24576) == 25
    assert verify_bar_percent(50000, 24576) == 100
    assert verify_bar_percent(1, 0) == 0

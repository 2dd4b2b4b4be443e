"""The planner's local staging (stage: local): the backend loads a copy on the host."""

from ansible.module_utils import serving_plan as sp
from test_serving_plan import HOST, MIB, NONE, NV24, ROOT, errors_of, gguf, hf, inst, plan

STAGE = "/var/lib/ailab/stage"


def llamacpp(**kw):
    base = {
        "name": "llm",
        "backend": "llamacpp",
        "model": "org/m-Q4_K_M.gguf",
        "port": 8081,
        "api_port": None,
    }
    return inst(**dict(base, **kw))


def test_a_staged_llamacpp_model_is_loaded_from_the_staging_directory():
    p = plan(llamacpp(stage="local"), gpu=NONE)
    assert p["errors"] == []
    assert p["stage"] == "local"
    assert p["staged_from"] == f"{ROOT}/org/m-Q4_K_M.gguf"
    assert p["model"] == f"{STAGE}/org/m-Q4_K_M.gguf"
    assert p["stage_bytes"] == 4683 * MIB
    args = " ".join(p["flags"])
    assert f"--model {STAGE}/org/m-Q4_K_M.gguf" in args and ROOT not in args
    assert any(r.startswith("Staged: ") for r in p["reasons"])


def test_without_stage_the_model_is_read_from_the_store():
    p = plan(llamacpp(), gpu=NONE)
    assert (p["stage"], p["staged_from"], p["model"]) == ("none", None, f"{ROOT}/org/m-Q4_K_M.gguf")


def test_textgen_gets_the_staged_path_in_its_cmd_flags():
    gguf_plan = plan(inst(model="m.gguf", stage="local"))
    assert gguf_plan["errors"] == []
    assert f"--model {STAGE}/m.gguf" in gguf_plan["cmd_flags"]
    # A safetensors directory: textgen's --model-dir is the staged parent, --model its name.
    hf_plan = plan(inst(model="org/Qwen-7B", stage="local"), model=hf())
    assert hf_plan["errors"] == [], errors_of(hf_plan)
    assert f"--model-dir {STAGE}/org" in hf_plan["cmd_flags"] and "--model Qwen-7B" in hf_plan["cmd_flags"]
    assert ROOT not in hf_plan["cmd_flags"]


def test_the_host_default_stages_llamacpp_and_textgen_but_not_ollama():
    models = {f"{ROOT}/m.gguf": gguf()}
    hp = sp.plan_host(
        HOST,
        [
            llamacpp(model="m.gguf"),
            inst(model="m.gguf"),
            {"name": "chat", "backend": "ollama", "model": "m.gguf", "port": 11434},
        ],
        models,
        NV24,
        131072,
        model_root=ROOT,
        stage="local",
    )
    assert hp["errors"] == [], hp["errors"]
    assert [p["stage"] for p in hp["instances"]] == ["local", "local", "none"]
    assert hp["instances"][2]["model"] == f"{ROOT}/m.gguf"


def test_ollama_asking_for_stage_local_is_refused_with_what_to_do_instead():
    p = plan({"name": "chat", "backend": "ollama", "model": "m.gguf", "port": 11434, "stage": "local"})
    assert "ws/chat: stage: Ollama copies the model into its own models directory" in errors_of(p)
    assert "ollama_models_dir" in errors_of(p)


def test_a_model_outside_the_store_or_a_staging_directory_in_it_is_refused():
    outside = plan(llamacpp(model="/opt/models/m.gguf", stage="local"), gpu=NONE)
    assert "ws/llm: stage: only a model in the model store (/media/data/models) can be staged" in errors_of(
        outside
    )
    inside = plan(llamacpp(stage="local"), gpu=NONE, stage_dir=f"{ROOT}/cache")
    assert "model_instances_stage_dir" in errors_of(inside) and "must not contain each other" in errors_of(
        inside
    )
    relative = plan(llamacpp(stage="local"), gpu=NONE, stage_dir="stage")
    assert "must be an absolute path" in errors_of(relative)


def test_an_unknown_stage_is_refused_naming_the_variable():
    p = plan(llamacpp(stage="nfs"), gpu=NONE)
    assert "ws/llm: stage: must be local" in errors_of(p) and "'nfs'" in errors_of(p)


def test_staged_models_beyond_the_limit_are_refused_with_the_numbers_each_counted_once():
    models = {f"{ROOT}/a.gguf": gguf(size_bytes=3000 * MIB), f"{ROOT}/b.gguf": gguf(size_bytes=2000 * MIB)}
    instances = [
        llamacpp(name="a1", model="a.gguf", port=8081, stage="local"),
        llamacpp(name="a2", model="a.gguf", port=8082, stage="local"),
        llamacpp(name="b", model="b.gguf", port=8083, stage="local"),
    ]

    def host(limit_mib):
        return sp.plan_host(HOST, instances, models, NONE, 131072, model_root=ROOT, stage_max_mib=limit_mib)

    assert host(5000)["errors"] == []  # a.gguf once (3000) + b.gguf (2000)
    refused = host(4096)
    msg = (
        f"ws: stage: the staged models need 5000 MiB ({ROOT}/a.gguf 3000 MiB, {ROOT}/b.gguf 2000 MiB), "
        "more than the staging directory may hold, 4096 MiB (model_instances_stage_max_gib)"
    )
    assert any(e.startswith(msg) for e in refused["errors"]), refused["errors"]
    assert all(p["refused"] for p in refused["instances"])
    assert host(0)["errors"] == []  # 0: no limit


def test_the_stage_items_list_each_staged_model_once():
    from serving import serving_stage_items

    models = {f"{ROOT}/a.gguf": gguf()}
    hp = sp.plan_host(
        HOST,
        [
            llamacpp(name="a1", model="a.gguf", port=8081, stage="local"),
            llamacpp(name="a2", model="a.gguf", port=8082, stage="local"),
            llamacpp(name="b", model="a.gguf", port=8083),
        ],
        models,
        NONE,
        131072,
        model_root=ROOT,
    )
    assert serving_stage_items(hp["instances"]) == [{"src": f"{ROOT}/a.gguf", "dest": f"{STAGE}/a.gguf"}]
    assert serving_stage_items([]) == []

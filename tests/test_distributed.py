"Distributed training on CPU processes (gloo): two DDP processes end where one process with the same effective batch ends; two torchrun 'nodes' over loopback give the same run; a run whose rank is killed resumes from its last complete checkpoint; the saved result loads and evaluates like a single-process one."
import os, signal, socket, subprocess, threading, time

import pytest
import torch
from datasets import DatasetDict
from safetensors.torch import load_file

from ft_nb.data.load import load_data
from ft_nb.distributed.launch import LaunchError, launch, prepare, torchrun_command
from ft_nb.methods.core import load_trained
from ft_nb.models import load_base_model
from ft_nb.train.checkpoints import last_complete_checkpoint
from ft_nb.train.config import SFTConfig
from ft_nb.train.sft import train_sft

pytestmark = pytest.mark.slow  # multi-process runs and jobs end to end: `make test-all`

OPTIONS = {"dropout": 0.0}  # LoRA dropout draws different masks per process: off, so that the runs can be compared exactly
CFG = SFTConfig(max_steps=24, batch_size=2, eval_every=4, save_every=4, max_length=128, lr=1e-2, seed=0)


@pytest.fixture(scope="module")
def data():
    src = load_data("stdlib")
    return DatasetDict({"train": src["train"].select(range(64)), "validation": src["validation"].select(range(8))})


@pytest.fixture(scope="module")
def two_processes(data, tmp_path_factory):
    "A two-process DDP run, batch 2 per process, uninterrupted."
    return launch(tmp_path_factory.mktemp("ddp") / "run", "tiny", data, "lora", CFG, OPTIONS, processes=2, echo=False)


def _adapter(folder) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def _assert_same(a: dict, b: dict, atol=2e-5):
    assert a.keys() == b.keys() and a
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < atol, f"largest weight difference {worst:.2e}"


def test_two_ddp_processes_equal_one_process_with_the_same_effective_batch(two_processes, data, tmp_path):
    model, tok = load_base_model("tiny", device="cpu")
    one = train_sft(model, tok, data, "lora", CFG.__class__(**{**CFG.__dict__, "batch_size": 4, "save_every": 0}), OPTIONS)
    single = tmp_path / "single"
    one.model.save_pretrained(single)
    assert two_processes.metrics["world_size"] == 2 and two_processes.metrics["steps"] == CFG.max_steps
    trained = _adapter(two_processes.saved)
    assert any(v.abs().max() > 0 for k, v in trained.items() if "lora_B" in k)  # it trained (B starts at zero)
    _assert_same(trained, _adapter(single))


def test_saved_result_loads_and_evaluates_like_a_single_process_one(two_processes):
    base, tok = load_base_model("tiny", device="cpu")
    tuned = load_trained(base, two_processes.saved)
    x = tok("def f(x): return x", return_tensors="pt")
    fresh = load_trained(load_base_model("tiny", device="cpu")[0], two_processes.saved)
    torch.testing.assert_close(tuned(**x).logits, fresh(**x).logits)
    assert (two_processes.run_dir / "metrics.jsonl").is_file() and (two_processes.run_dir / "loss.png").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def test_two_nodes_over_loopback_equal_two_local_processes(two_processes, data, tmp_path):
    spec = prepare(tmp_path / "nodes", "tiny", data, "lora", CFG, OPTIONS, "ddp", cuda=False, processes=2)  # one process on each of two nodes
    port = _free_port()
    nodes = [subprocess.Popen(torchrun_command(spec, 1, nodes=2, node_rank=r, port=port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    _assert_same(_adapter(tmp_path / "nodes" / "adapter"), _adapter(two_processes.saved))


def test_a_killed_rank_is_reported_and_the_run_resumes_from_its_last_checkpoint(two_processes, data, tmp_path):
    run = tmp_path / "killed"
    def kill_rank1():
        ckpts, pid = run / "checkpoints", run / "distributed" / "rank1.pid"
        while not (pid.exists() and last_complete_checkpoint(ckpts)): time.sleep(0.02)
        os.kill(int(pid.read_text()), signal.SIGKILL)
    threading.Thread(target=kill_rank1, daemon=True).start()
    with pytest.raises(LaunchError, match=r"rank 1 failed first \(killed by SIGKILL\)"):
        launch(run, "tiny", data, "lora", CFG, OPTIONS, processes=2, echo=False)
    last = last_complete_checkpoint(run / "checkpoints")
    assert last is not None and int(last.name.split("-")[1]) < CFG.max_steps
    again = launch(run, "tiny", data, "lora", CFG, OPTIONS, processes=2, echo=False)
    assert again.metrics["resumed_from"] == last.name and again.metrics["steps"] == CFG.max_steps
    _assert_same(_adapter(again.saved), _adapter(two_processes.saved), atol=1e-4)


def test_fsdp_and_zero_are_refused_on_cpu_processes_with_the_reason(data, tmp_path):
    for strategy in ("fsdp", "zero3"):
        with pytest.raises(ValueError, match="needs GPUs"):
            prepare(tmp_path / strategy, "tiny", data, "lora", CFG, OPTIONS, strategy, cuda=False)


def test_train_job_with_gpus_evaluates_its_saved_result_like_a_single_process_run(tmp_path):
    "`ft_nb run train --gpus 2` (batch 2 a process) against one process with batch 4: the same weights, the same answers, the same scores."
    from conftest import ft_nb
    import json
    common = ["--quick", "-p", "method_options", '{"dropout": 0}', "--output-root", tmp_path]
    two = ft_nb("run", "train", *common, "--gpus", "2", "-p", "batch_size", "2", "--run-name", "two")
    one = ft_nb("run", "train", *common, "-p", "batch_size", "4", "--run-name", "one")
    assert two.returncode == 0 and one.returncode == 0, two.stderr[-2000:] + one.stderr[-2000:]
    _assert_same(_adapter(tmp_path / "two" / "adapter"), _adapter(tmp_path / "one" / "adapter"))
    m2, m1 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("two", "one"))
    assert m2["world_size"] == 2 and m2["after"] == m1["after"] and m2["before"] == m1["before"]
    answers = lambda r: [json.loads(l)["tuned"] for l in (tmp_path / r / "generations.jsonl").read_text().splitlines()]
    assert answers("two") == answers("one")


def test_distributed_job_compares_strategies_with_equal_losses_and_no_cuda_in_its_kernel(tmp_path):
    from conftest import ft_nb
    import json
    r = ft_nb("run", "distributed", "--quick", "--output-root", tmp_path, "--run-name", "d")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "d" / "comparison.json").read_text())
    assert [x["run"] for x in rows] == ["ddp x1", "ddp x2"] and rows[0]["global_batch"] == rows[1]["global_batch"]
    assert rows[1]["max_loss_gap"] < 1e-4 and len(rows[1]["losses"]) == 4
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert metrics["gpu_bytes_in_kernel"] == 0 and metrics["cuda_initialised_in_kernel"] is False  # no GPU here: not even initialised
    assert (tmp_path / "d" / "strategies.png").stat().st_size > 0 and (tmp_path / "d" / "ddp-2" / "adapter" / "adapter_model.safetensors").is_file()

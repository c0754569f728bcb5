"The training core: three steps (prepare, plan, run), each checked where it is made, and the private parts of the libraries it relies on."
import ast, inspect, json, re, subprocess, sys
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from conftest import ROOT
from ft_nb.data.load import load_data
from ft_nb.models import load_base_model, load_tokenizer
from ft_nb.train.config import SFTConfig
from ft_nb.train.sft import train_sft


def test_train_sft_reads_as_its_three_steps():
    from ft_nb.train import sft
    tree = ast.parse(inspect.getsource(sft.train_sft)).body[0]
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]  # the docstring left out
    calls = [c.func.id for n in body for c in ast.walk(n) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
    assert [c for c in calls if c.endswith(("_data", "_training"))] == ["prepare_data", "plan_training", "run_training"]
    assert len(body) == 3 and tree.end_lineno - tree.lineno + 1 <= 20


def test_sft_no_longer_holds_the_config_trainer_callbacks_or_record():
    defined = {n.name for n in ast.parse((ROOT / "ft_nb" / "train" / "sft.py").read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    homes = {"SFTConfig": "config", "FtTrainer": "trainer", "History": "callbacks", "TokenCounts": "callbacks", "ProgressLines": "callbacks",
             "TrialReport": "callbacks", "run_metrics": "record", "plot_losses": "record", "save_history": "record", "prepare_data": "prepare", "plan_training": "plan"}
    assert not defined & set(homes), defined & set(homes)
    for name, home in homes.items():
        assert name in {n.name for n in ast.parse((ROOT / "ft_nb" / "train" / f"{home}.py").read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert defined <= {"TrainResult", "trainer_arguments", "run_training", "train_sft", "_checkpointing_args", "_collator", "_environment", "_reporting_env", "validate_base"}, defined


def test_the_memory_estimate_is_made_once_per_run(monkeypatch):
    "One estimate a run, on the plain path and on the fast path with the most rows that fit (pack_rows=-1), which used to ask for three."
    import ft_nb.train.plan as plan
    calls, real = [], plan.estimate_memory
    monkeypatch.setattr(plan, "estimate_memory", lambda *a, **kw: calls.append(a[1:3]) or real(*a, **kw))  # a spy
    data = load_data("people")
    small = DatasetDict({"train": data["train"].select(range(16))})
    for cfg in (SFTConfig(max_steps=1, batch_size=4, seed=0), SFTConfig(max_steps=1, fast=True, pack_rows=-1, pack_length=512, max_length=256, seed=0)):
        calls.clear()
        res = train_sft(*load_base_model("tiny", device="cpu"), small, "lora", cfg)
        assert len(calls) == 1 and res.memory_estimate.total > 0, calls


def test_a_short_run_on_40000_rows_tokenizes_only_what_it_reads():
    "20 steps of 8 rows read 160 of 40,000 training rows: 160 are tokenized (the validation rows too), and they are the rows the Trainer's order draws."
    from ft_nb.train.prepare import prepare_data, run_order
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": str(2 * i)}]} for i in range(40_000)]
    data = DatasetDict({"train": Dataset.from_list(rows), "validation": Dataset.from_list(rows[:50])})
    ready = prepare_data(data, load_tokenizer("tiny"), SFTConfig(max_steps=20, batch_size=8, seed=3), device="cpu")
    assert (ready.tokenized, len(ready.train), ready.units, ready.rows) == (160 + 50, 160, 40_000, {"train": 40_000, "validation": 50})
    drawn = run_order(40_000, 160, seed=3)
    answers = [load_tokenizer("tiny").decode([t for t in x if t != -100]) for x in ready.train["labels"][:3]]
    assert [str(2 * i) in a for i, a in zip(drawn, answers)] == [True] * 3


def test_the_plan_is_printed_stored_in_the_manifest_and_shown(tmp_path, capsys, monkeypatch):
    from ft_nb.cli import main
    from ft_nb.core import RUN_ENV, read_manifest, start_run
    run = tmp_path / "run"
    start_run(run, "demo", {})
    monkeypatch.setenv(RUN_ENV, str(run))
    train_sft(*load_base_model("tiny", device="cpu"), DatasetDict({"train": load_data("people")["train"].select(range(8))}), "lora", SFTConfig(max_steps=2, batch_size=4, seed=0))
    printed = capsys.readouterr().out
    stored = read_manifest(run)["plan"]
    assert stored["steps"] == 2 and stored["summary"].splitlines()[0] in printed and "memory estimate" in stored["summary"]
    assert main(["show", str(run)]) == 0 and stored["summary"] in capsys.readouterr().out


def test_every_private_part_ft_nb_touches_is_there():
    from ft_nb.train.fast import check_private_parts
    assert check_private_parts() == [], "a library changed a private part ft_nb relies on; see train.fast.PRIVATE_PARTS"


def test_the_libraries_whose_private_parts_are_touched_are_capped_at_versions_checked():
    from importlib.metadata import version
    from packaging.requirements import Requirement
    from ft_nb.train.fast import PRIVATE_PARTS
    deps = {(r := Requirement(d)).name: r for d in __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for lib in {m.split(".")[0] for m, _, _ in PRIVATE_PARTS}:
        spec = deps[lib].specifier
        assert any(s.operator == "<" for s in spec), f"{lib}: no upper bound in pyproject.toml ({spec})"
        assert version(lib).split("+")[0] in spec, f"{lib} {version(lib)} is outside pyproject.toml's {spec}"


def test_no_benchmark_script_changes_the_library_from_outside():
    "No file under benchmarks/ assigns to an attribute (or an item) of anything it imported from ft_nb, or calls setattr on it."
    found = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        ours = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.name.startswith("ft_nb")}
        ours |= {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ft_nb") for a in n.names}
        def root(t):
            while isinstance(t, (ast.Attribute, ast.Subscript)): t = t.value
            return t.id if isinstance(t, ast.Name) else None
        for n in ast.walk(tree):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, (ast.AugAssign, ast.AnnAssign)) else []
            found += [f"{path.name}:{n.lineno}" for t in targets if isinstance(t, (ast.Attribute, ast.Subscript)) and root(t) in ours]
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "setattr" and n.args and root(n.args[0]) in ours:
                found.append(f"{path.name}:{n.lineno}")
    assert found == []


@pytest.mark.slow
def test_step_variants_quick_runs_each_variant_through_the_plans_fields(tmp_path):
    "benchmarks/step_variants.py --quick on the CPU: the plain arm, a FastParts change, a config change and the expert's clock, each in its own process, on the same batches."
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_variants.py"), "--quick", "--steps", "2", "--out", str(tmp_path),
                        "ft_nb", "ft_nb+asks", "ft_nb+log20", "expert+sync-clock"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = json.loads((tmp_path / "variants-tiny.json").read_text())["variants"]
    assert list(rows) == ["ft_nb", "ft_nb+asks", "ft_nb+log20", "expert+sync-clock"]
    assert rows["ft_nb"]["attention_calls"].get("bounds", 0) == 0 and rows["ft_nb+asks"]["attention_calls"].get("bounds", 0) > 0  # carried by the batch, or not
    assert rows["ft_nb"]["losses"] == pytest.approx(rows["ft_nb+asks"]["losses"], rel=1e-5)
    assert rows["ft_nb"]["parts"]["attention"] == "ft_nb_varlen" and rows["ft_nb+log20"]["variant"] == {"config": {"attention": "ft_nb_varlen", "compile": True, "log_every": 20}}

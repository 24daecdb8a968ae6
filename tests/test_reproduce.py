"""The reproduce-this commands are generated from the preset and say exactly what the runner executes."""

import json
import shlex

import yaml
from papermill.cli import _resolve_type

from mimstudy.book.reproduce import chapter_runs, papermill_command, reproduce_commands, reproduce_markdown
from mimstudy.study.runner import plan, select_runs


def papermill_parameters(line: str) -> tuple[str, str, dict]:
    """(notebook, output, parameters) of a papermill command line, read as papermill's CLI reads them."""
    words = shlex.split(line)
    assert words[0] == "papermill"
    params, i = {}, 3
    while i < len(words):
        flag = words[i]
        if flag == "-y":
            params.update(yaml.safe_load(words[i + 1]))
            i += 2
            continue
        name, value = words[i + 1], words[i + 2]
        params[name] = _resolve_type(value) if flag == "-p" else value
        assert flag in ("-p", "-r"), flag
        i += 3
    return words[1], words[2], params


def test_papermill_lines_carry_every_parameter_of_every_step(tmp_path):
    steps = plan("ci")
    line, papermill = reproduce_commands("ci", ["vit_sup", "swin_simmim_ft"])
    assert line == "mimstudy run --preset ci --runs vit_sup,swin_simmim_ft"
    chosen = select_runs(steps, ["vit_sup", "swin_simmim_ft"])
    assert "pretrain/swin_simmim" in [s.name for s in chosen]  # the fine-tune reads it
    assert len(papermill) == len(chosen)
    for step, command in zip(chosen, papermill):
        notebook, output, params = papermill_parameters(command)
        assert notebook == f"notebooks/{step.notebook}.ipynb"
        assert output == f"results/ci/{step.notebook}/{step.config.run_id}.ipynb"
        assert {**type(step.config)().to_dict(), **params} == step.config.to_dict()


def test_strings_that_look_like_numbers_and_lists_survive(tmp_path):
    preset = tmp_path / "odd.yaml"
    preset.write_text("pretrain:\n  runs:\n    a: {keep_epochs: '2', epochs: 2}\n    b: {keep_epochs: [1, 2], epochs: 2, objective: finetune, init_from: a}\n")
    for step in plan(preset):
        command = papermill_command(step.config)
        assert {**type(step.config)().to_dict(), **papermill_parameters(command)[2]} == step.config.to_dict()
    assert "-r keep_epochs 2" in papermill_command(plan(preset)[0].config)
    assert "-y " + shlex.quote(json.dumps({"keep_epochs": [1, 2]})) in papermill_command(plan(preset)[1].config)


def test_chapter_runs_follow_the_chapter_and_the_markdown_names_them():
    vit = chapter_runs("ci", "probes", lambda config, arch: arch.startswith("vit") and not config.run_id.startswith("sweep_"))
    assert vit == ["vit_sup", "vit_moco", "vit_simmim"]
    assert chapter_runs("ci", "probes", lambda config, arch: arch.startswith("swinv2")) == ["swin_simmim", "swin_simmim_ft"]
    page = reproduce_markdown(["ci", "quick"], "paper_probes")
    assert "mimstudy run --preset ci --runs vit_b16_random" in page
    assert "The `quick` preset has no run of this chapter." in page

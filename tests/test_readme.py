"""The README's promises: two commands, and CI runs exactly them."""
from __future__ import annotations

import re

from conftest import ROOT, run_publish


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_gives_exactly_two_commands_and_ci_runs_them():
    commands = readme_commands()
    assert commands == ["bash setup.sh", ".venv/bin/python -m pytest"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci
    assert commands[1] in ci, "CI must run exactly the README's test command"


def test_readme_error_example_matches_the_real_output(tmp_path):
    text = (ROOT / "README.md").read_text()
    example = text.split("### Errors", 1)[1].split("```", 2)[1]
    shown = [l for l in example.splitlines() if l and not l.startswith("$")]
    source = tmp_path / "my-article.yaml"
    body = "title: T\nlanguage: en\nbody:\n  - p: One.\n  - key_points:\n      titel: Key Points\n      items: [x]\n"
    source.write_text(body)
    result = run_publish("check", str(source))
    real = [l.replace(str(source), "source/my-article.yaml") for l in result.stderr.splitlines()]
    shape = lambda line: re.sub(r":\d+:\d+:", ":L:C:", re.sub(r"body\[\d+\]", "body[N]", line))
    assert [shape(l) for l in real[:2]] == [shape(l) for l in shown[:2]], result.stderr

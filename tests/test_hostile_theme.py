"""Broken or hostile themes: located errors through the real command."""
from __future__ import annotations

import shutil

from conftest import B12, ROOT, run_publish


def project_with_theme(tmp_path, edit) -> tuple:
    project = tmp_path / "project"
    (project / "source").mkdir(parents=True)
    shutil.copy(B12, project / "source" / B12.name)
    shutil.copytree(ROOT / "themes" / "default", project / "themes" / "clinic")
    settings = project / "themes" / "clinic" / "theme.yaml"
    settings.write_text(edit(settings.read_text()))
    return project, settings


def check(project):
    return run_publish("check", f"source/{B12.name}", "--theme", "clinic", cwd=project)


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_colour_pair_below_the_contrast_minimum_is_named_with_its_ratio(tmp_path):
    project, settings = project_with_theme(tmp_path, lambda t: t.replace('text: "#1b1b1b"', 'text: "#777777"', 1))
    result = check(project)
    assert result.returncode == 1
    line = line_of(settings.read_text(), '"#777777"')
    assert f"themes/clinic/theme.yaml:{line}:11: error: colours.light: `text` #777777 on `background` #ffffff" in result.stderr
    assert "contrast ratio of 4.48:1, below the minimum of 7.0:1" in result.stderr
    assert "how to fix:" in result.stderr and "Traceback" not in result.stderr


def test_a_highlight_too_close_to_the_text_is_refused(tmp_path):
    """The spoken sentence's ground on the large-print page: its text must keep 7:1 on it."""
    project, settings = project_with_theme(tmp_path, lambda t: t.replace('highlight: "#3d3300"', 'highlight: "#707070"'))
    result = check(project)
    assert result.returncode == 1
    line = line_of(settings.read_text(), 'text: "#f2f2f2"')
    assert f"theme.yaml:{line}:11: error: colours.dark: `text` #f2f2f2 on `highlight` #707070" in result.stderr
    assert "below the minimum of 7.0:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_css_injection_in_a_colour_is_refused(tmp_path):
    project, settings = project_with_theme(
        tmp_path, lambda t: t.replace('background: "#ffffff"', 'background: "#fff; } body { display: none"', 1))
    result = check(project)
    assert result.returncode == 1
    assert "is not a colour written #rrggbb" in result.stderr and "six hex digits" in result.stderr


def test_an_unknown_theme_setting_gets_a_did_you_mean(tmp_path):
    project, settings = project_with_theme(tmp_path, lambda t: t.replace("paper: a4", "papper: a4"))
    result = check(project)
    assert result.returncode == 1
    assert f"theme.yaml:{line_of(settings.read_text(), 'papper')}:1: error: unknown key `papper`" in result.stderr
    assert "did you mean `paper`?" in result.stderr


def test_an_invalid_paper_size_is_refused(tmp_path):
    project, _ = project_with_theme(tmp_path, lambda t: t.replace("paper: a4", "paper: a5"))
    result = check(project)
    assert result.returncode == 1 and "`paper` is `a5`, which is not one of: a4, letter" in result.stderr


def test_a_logo_outside_the_theme_folder_is_refused(tmp_path):
    project, _ = project_with_theme(tmp_path, lambda t: t.replace('src: ""', 'src: "../../../../etc/passwd"', 1))
    result = check(project)
    assert result.returncode == 1 and "is outside the theme folder" in result.stderr


def test_a_logo_without_alt_text_is_refused(tmp_path):
    def edit(text):
        return text.replace('src: ""', 'src: "fonts/OFL.txt"', 1)
    project, _ = project_with_theme(tmp_path, edit)
    result = check(project)
    assert result.returncode == 1 and "the logo has no alt text" in result.stderr


def test_a_template_syntax_error_is_located(tmp_path):
    project, _ = project_with_theme(tmp_path, lambda t: t)
    blocks = project / "themes" / "clinic" / "templates" / "_blocks" / "blocks.html"
    lines = blocks.read_text().splitlines()
    after_comment = next(n for n, line in enumerate(lines) if line.rstrip().endswith("-#}")) + 1
    lines.insert(after_comment, "{% if %}")          # the first line after the file's opening comment
    blocks.write_text("\n".join(lines) + "\n")
    result = run_publish("build", f"source/{B12.name}", "--theme", "clinic", "--format", "pdf",
                         "--out", str(project / "output"), cwd=project)
    assert result.returncode == 1, result.stderr
    assert f"themes/clinic/templates/_blocks/blocks.html:{after_comment + 1}:1: error: template syntax error" \
        in result.stderr
    assert "Traceback" not in result.stderr

"""The README is the page a user reads first: it stays short, its links lead somewhere, and the
commands and code it shows are real. Cheap checks only (seconds): commands are parsed, not run."""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README] + DOCS
MAX_LINES = 250
SEPARATORS = {"&&", "||", ";", "|", "&"}


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_blocks(text: str) -> list[tuple[str, str, str]]:
    """``(language, code, heading)`` of every fenced block; heading: the last heading above it."""
    blocks, lang, buf, heading = [], None, [], ""
    for line in text.splitlines():
        if lang is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            m = re.match(r"^```([\w+-]*)\s*$", line)
            if m:
                lang, buf = m.group(1).lower(), []
        elif line.strip() == "```":
            blocks.append((lang, "\n".join(buf), heading))
            lang = None
        else:
            buf.append(line)
    assert lang is None, "a fenced code block is not closed"
    return blocks


def shell_commands(text: str) -> list[list[str]]:
    """Every simple command (argv) of the ```bash / ```sh blocks, comments dropped, split at
    ``&&``, ``;``, ``|``."""
    commands = []
    for lang, code, _ in code_blocks(text):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in code.replace("\\\n", " ").splitlines():
            lex = shlex.shlex(line, posix=True, punctuation_chars=True)
            lex.whitespace_split = True
            lex.commenters = "#"
            argv = []
            for tok in list(lex) + [";"]:
                if tok in SEPARATORS:
                    if argv:
                        commands.append(argv)
                    argv = []
                else:
                    argv.append(tok)
    return commands


def python_blocks(text: str) -> list[tuple[str, str]]:
    return [(code, heading) for lang, code, heading in code_blocks(text) if lang in ("python", "py")]


def _without_code(text: str) -> str:
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, flags=re.M)}


def relative_links(path: Path) -> list[str]:
    text = _without_code(path.read_text(encoding="utf-8"))
    targets = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.I)]


# (1) short ------------------------------------------------------------------------------------

def test_readme_is_a_five_minute_page():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; at most {MAX_LINES} (move detail to docs/)"


# (2) links ------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_point_to_existing_files(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    assert not broken, f"{_page_id(page)}: broken links: {broken}"


def test_readme_links_into_docs():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    missing = [_page_id(d) for d in DOCS if d.resolve() not in linked]
    assert not missing, f"docs pages the README does not link to: {missing}"


# (3) the sdekc command lines ----------------------------------------------------------------------

def _sdekc_commands() -> list[list[str]]:
    return [argv for argv in shell_commands(README.read_text(encoding="utf-8")) if argv[0] == "sdekc"]


def test_readme_shows_the_main_job_and_the_ci_test_command():
    commands = shell_commands(README.read_text(encoding="utf-8"))
    assert ["sdekc", "run"] in commands, "the README must show the main job, `sdekc run`"
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip(".ci/run is absent")
    ci_tests = [c for c in shell_commands("```bash\n" + ci.read_text(encoding="utf-8") + "\n```")
                if c[:3] == ["python3", "-m", "pytest"]]
    assert ci_tests, ".ci/run runs no `python3 -m pytest` command"
    for c in ci_tests:
        assert c in commands, f"the README's test command must be what .ci/run runs: {shlex.join(c)}"


def test_sdekc_subcommands_answer_help():
    pytest.importorskip("jax")
    subs = sorted({argv[1] for argv in _sdekc_commands() if len(argv) > 1 and not argv[1].startswith("-")})
    assert subs, "no `sdekc <subcommand>` line in the README's bash blocks"
    exe = shutil.which("sdekc")
    base = [exe] if exe else [sys.executable, "-m", "sdekc_jax.cli"]
    for sub in subs:
        p = subprocess.run(base + [sub, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"`sdekc {sub} --help` failed:\n{p.stderr[-2000:]}"
        assert f"usage: sdekc {sub}" in p.stdout


def test_sdekc_command_lines_parse():
    pytest.importorskip("jax")
    cli = importlib.import_module("sdekc_jax.cli")
    commands = _sdekc_commands()
    assert commands
    if not hasattr(cli, "build_parser"):  # no parser to call: compare the flags with --help
        for argv in commands:
            sub = argv[1]
            help_text = subprocess.run([sys.executable, "-m", "sdekc_jax.cli", sub, "--help"], cwd=ROOT,
                                       capture_output=True, text=True, timeout=300).stdout
            for flag in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
                assert flag in help_text, f"{shlex.join(argv)}: `sdekc {sub}` has no {flag}"
        return
    bad = []
    for argv in commands:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                cli.build_parser().parse_args(argv[1:])
        except SystemExit as e:
            bad.append(f"{shlex.join(argv)}: exit {e.code}: {err.getvalue().strip().splitlines()[-1:]}")
    assert not bad, "README command lines that `sdekc` does not accept:\n" + "\n".join(bad)


# (4) experiment scripts ---------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_experiment_scripts_named_in_bash_blocks_exist(page):
    missing = []
    for argv in shell_commands(page.read_text(encoding="utf-8")):
        if Path(argv[0]).name in ("python", "python3") and len(argv) > 1 and argv[1].startswith("experiments/"):
            if not (ROOT / argv[1]).is_file():
                missing.append(argv[1])
    assert not missing, f"{_page_id(page)} names scripts that do not exist: {missing}"


# (5) the Python blocks --------------------------------------------------------------------

@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text(encoding="utf-8"))], ids=_page_id)
def test_python_blocks_parse_and_their_imports_run(page):
    pytest.importorskip("jax")
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    for code, heading in blocks:
        tree = ast.parse(code, filename=f"{_page_id(page)} ({heading})")
        imports = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))],
                             type_ignores=[])
        exec(compile(imports, f"{_page_id(page)} ({heading}): imports", "exec"), {})


def test_functional_api_block_names_exist():
    pytest.importorskip("jax")
    import sdekc_jax

    blocks = [code for code, heading in python_blocks(README.read_text(encoding="utf-8"))
              if heading.lower().startswith("functional api")]
    assert len(blocks) == 1, "the README needs exactly one Python block under 'Functional API'"
    tree = ast.parse(blocks[0])
    aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names if a.name == "sdekc_jax"}
    assert aliases, "the Functional API block does not import sdekc_jax"
    attrs = {n.attr for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases}
    missing = sorted(a for a in attrs if not hasattr(sdekc_jax, a))
    assert not missing, f"names the Functional API block uses that sdekc_jax lacks: {missing}"
    # what it reads from a run's result are RunResult fields
    result_attrs = {n.attr for n in ast.walk(tree)
                    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "r"}
    unknown = sorted(result_attrs - set(sdekc_jax.RunResult._fields))
    assert not unknown, f"the Functional API block reads fields RunResult lacks: {unknown}"

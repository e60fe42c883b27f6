"""The docs for the people who run a site are kept true (docs/troubleshooting.md,
docs/architecture.md, docs/deployment.md, docs/operations.md, the README):

* every error code has a troubleshooting entry saying what it means and what to do, and
  every entry is a code;
* the cloud's push rejection reasons and the models' result codes each have a row;
* the situations an operator meets (the agent stuck, the clock wrong, the camera gone,
  the disk full, the kiosk not starting) have a section, and every in-page link lands;
* every ``kiosk``/``kiosk-agent``/``kiosk-cloud`` command line in these pages parses;
* the README starts with the two commands, links the pages, and no doc names an issue
  number instead of a feature.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from test_docs import PROGRAMS, parse_cli

from kiosk.errors import HTTP_STATUS

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TROUBLE = (DOCS / "troubleshooting.md").read_text()
OPERATOR_PAGES = ("architecture.md", "deployment.md", "operations.md", "troubleshooting.md")


def sections(text: str) -> dict[str, str]:
    """``### `CODE` `` -> the text up to the next heading."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^### `([A-Z_]+)`\s*$", line)
        if m:
            current = m.group(1)
            out[current] = ""
        elif line.startswith("#"):
            current = None
        elif current:
            out[current] += line + "\n"
    return out


def test_every_error_code_has_an_entry_saying_what_it_means_and_what_to_do():
    entries = sections(TROUBLE)
    assert set(entries) == set(HTTP_STATUS)
    for code, text in entries.items():
        assert "**Means:**" in text and "**Do:**" in text, code
        assert len(text.split("**Do:**")[1].split()) >= 3, f"{code}: say what to do"


def table_codes(text: str, heading: str) -> set[str]:
    """The backticked codes in the first column of the table under ``heading``."""
    part = text.split(heading, 1)[1]
    part = part.split("\n#", 1)[0]
    return {c for row in re.findall(r"^\| ([^|]+)\|", part, re.M) for c in re.findall(r"`([A-Z_]+)`", row)}


def test_every_push_rejection_reason_the_cloud_gives_has_a_row():
    raised = set()
    for f in (REPO / "sync" / "cloud").glob("*.py"):
        raised |= set(re.findall(r'Rejected\("([A-Z_]+)"', f.read_text()))
    assert raised, "the cloud's rejections were not found"
    assert raised <= table_codes(TROUBLE, "### The agent is stuck"), raised - table_codes(
        TROUBLE, "### The agent is stuck")


def test_every_model_result_code_has_a_row():
    runner = (REPO / "kiosk" / "models" / "runner.py").read_text()
    codes = set(re.findall(r'"code": "([A-Z_]+)"', runner))
    assert codes >= {"TIMEOUT", "MODEL_ERROR"}
    assert codes <= table_codes(TROUBLE, "### A model run says timeout or error")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@pytest.mark.parametrize("title", ["The kiosk does not start", "The agent is stuck: the backlog grows",
                                   "The clock is wrong", "The camera is gone", "The disk is full"])
def test_the_situations_an_operator_meets_have_a_section(title):
    assert f"\n### {title}\n" in TROUBLE


@pytest.mark.parametrize("page", OPERATOR_PAGES)
def test_in_page_links_land_on_a_heading(page):
    text = (DOCS / page).read_text()
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"{page}: #{target}"
    for doc, target in re.findall(r"\]\(([a-z-]+\.md)#([^)]+)\)", text):
        other = (DOCS / doc).read_text()
        assert target in {slug(h) for h in re.findall(r"^#+ (.+)$", other, re.M)}, f"{page}: {doc}#{target}"


def command_lines(text: str) -> list[tuple[str, list[str]]]:
    """(program, argv) for every command line of the three programs in the page's sh blocks,
    also behind ``sudo``, ``systemd-run … /opt/…/bin/kiosk`` or ``VAR=value``."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            segments, argv = [], []
            for w in [*words, "&&"]:  # `a && b`, `a; b`, `a | b`: each its own command
                if w in ("&&", "||", "|", ";"):
                    segments.append(argv)
                    argv = []
                else:
                    argv.append(w.rstrip(";"))
            for argv in segments:
                for i, word in enumerate(argv):
                    name = word.rsplit("/", 1)[-1]
                    if name in PROGRAMS and (i == 0 or "=" in argv[i - 1] or argv[i - 1] == "sudo"
                                             or "/" in word):
                        out.append((name, argv[i + 1:]))
                        break
    return out


@pytest.mark.parametrize("page", [*OPERATOR_PAGES, "../README.md", "../systemd/README.md"])
def test_command_lines_in_the_operator_docs_parse(page):
    lines = command_lines((DOCS / page).read_text())
    for prog, argv in lines:
        try:
            parse_cli(argv, prog)
        except click.ClickException as e:
            pytest.fail(f"{page}: {prog} {shlex.join(argv)}: {e.format_message()}")


def test_the_command_line_finder_finds_them():
    found = command_lines((DOCS / "operations.md").read_text())
    assert ("kiosk", ["--data-dir", "/var/lib/hotel-kiosk", "restore", "/media/usb/move"]) in found
    assert any(p == "kiosk" and "backup" in a and "--data-dir" in a for p, a in found)  # behind systemd-run
    with pytest.raises(click.ClickException):
        parse_cli(["--data-dir", "x", "restore"], "kiosk")  # BACKUP missing


def test_the_readme_starts_with_the_two_commands_and_links_the_operator_docs():
    readme = (REPO / "README.md").read_text()
    first = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["bash scripts/setup.sh && bash scripts/run-demo.sh",
                        "bash scripts/setup.sh --test && bash scripts/test.sh"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/setup.sh --test" in ci and "bash scripts/test.sh" in ci  # CI runs the README's command
    assert readme.index("```sh") < readme.index("\n## ")  # before anything else
    for script in ("setup.sh", "run-demo.sh", "test.sh"):
        assert (REPO / "scripts" / script).is_file()
    for page in OPERATOR_PAGES:
        assert f"(docs/{page})" in readme, page


ISSUE = re.compile(r"\bissues? #?\d+|\(#\d+\)|\bissue (?:two|three|four|five|six)\b", re.I)


@pytest.mark.parametrize("path", sorted(
    [REPO / "README.md", REPO / "bench" / "README.md", REPO / "config.yaml", *DOCS.glob("*.md"),
     *DOCS.glob("*.yaml"), *(REPO / "systemd").iterdir()], key=str), ids=lambda p: str(p.relative_to(REPO)))
def test_docs_name_features_not_issue_numbers(path):
    hits = [line.strip() for line in path.read_text().splitlines() if ISSUE.search(line)]
    assert hits == []

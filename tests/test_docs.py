"""The README and ``--help`` stay true (in the spirit of sqlite-utils' tests/test_docs.py).

Every command has a help text and appears in the README; the README links nothing outside the
repository and names only files that exist; each ``itemseal ...`` line of its shell examples
parses with click (the command exists and takes those options); stated limits match the code.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from cli import main
from verify_api.channels import templates

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)  # get_command: the root loads its commands when asked
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


COMMANDS = dict(_all_commands(main))


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_command_has_help_and_is_in_the_readme(path):
    command = COMMANDS[path]
    assert command.help and len(command.help.strip()) > 20, "write a real help text"
    assert f"itemseal {' '.join(path)}" in README, "document it in the README"


@pytest.mark.parametrize(
    "path", [p for p, c in COMMANDS.items() if p[-1] in ("list", "show")], ids=" ".join
)
def test_every_list_and_show_command_takes_json(path):
    assert "--json" in {opt for p in COMMANDS[path].params for opt in p.opts}


def test_the_readme_opens_with_what_and_for_whom_then_the_two_commands():
    opening = README[: README.index("\n## ")]
    for who in ("factory line operator", "consumer", "cashier", "brand manager", "CRM"):
        assert who in opening, who
    blocks = re.findall(r"```sh\n(.*?)```", opening, re.S)
    assert [line.split("#")[0].strip() for line in blocks[0].splitlines()] == [
        "make demo", "make test"
    ]


def test_no_link_leaves_the_repository():
    assert "](../" not in README
    for target in re.findall(r"\]\(([^)]+)\)", README):
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target.split("#")[0]).exists(), target


def test_the_files_it_names_exist():
    named = set(re.findall(r"`((?:codegen|verify_api|points_bridge|schemas|tests|scripts|"
                           r"benchmarks)/[\w/.-]+\.\w+)`", README))
    assert named, "the pattern found nothing"
    assert [n for n in sorted(named) if not (ROOT / n).exists()] == []


def _itemseal_lines() -> list[str]:
    """Each `itemseal ...` command of the README's shell examples, continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    indented = re.findall(r"(?:^    .*\n)+", README, re.M)  # the indented examples
    lines = []
    for block in [*blocks, *indented]:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("itemseal "):
                lines.append(line)
    return lines


@pytest.mark.parametrize("line", _itemseal_lines())
def test_readme_examples_parse(line):
    words = shlex.split(line, comments=True)
    words = words[: words.index("<")] if "<" in words else words
    words = [w for w in words if not w.startswith(("<", ">", "&", "|"))]
    command: click.Command = main
    args = words[1:]
    while isinstance(command, click.Group) and args and (
        sub := command.get_command(click.Context(command), args[0])
    ):
        command, args = sub, args[1:]
    assert not isinstance(command, click.Group) or not args, f"no command {args[0]!r}"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for word in args:
        if word.startswith("--"):
            assert word.split("=")[0] in known, f"{line}: {command.name} has no {word}"
    ctx = command.make_context(command.name, list(args), resilient_parsing=True)
    assert ctx is not None


def test_the_keyword_limit_it_states_is_the_codes():
    row = next(line for line in README.splitlines() if line.startswith("| `--join-keyword`"))
    assert f"up to {templates.MAX_KEYWORD} characters" in row


def test_the_gateway_secret_minimum_is_stated():
    row = next(line for line in README.splitlines() if line.startswith("| `--gateway-secret`"))
    assert "at least 16 characters" in row

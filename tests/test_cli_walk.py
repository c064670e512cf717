"""Every command, walked: a bad tenant, a missing file, a missing folder give one line, never a
traceback (issue 21).

The commands are enumerated from ``cli.main`` with click, so a command added later is walked
too. Each runs in-process (``CliRunner``) against the suite's redis-server, in a fresh
ITEMSEAL_HOME, with made-up values for its required parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli import main

# Values for required parameters, by parameter name; others get one by type.
VALUES = {
    "sku": "LIP-001", "name": "Lipstick", "points": "5", "count": "10", "codes": "1234",
    "batch_id": "B000001", "campaign_id": "c1", "token_id": "tok_0123456789", "key_id": "0",
    "phone": "13812345678", "keyword": "cj", "answer": "blue", "text": "hello",
    "raw": "{}", "webhook": "http://127.0.0.1:9/hook", "start": "2026-01-01",
    "end": "2026-02-01", "entry_ids": "1-0",
}
# Commands that make what the walk tests for, or never return: not walked.
SKIPPED = {("tenant", "create"), ("serve",), ("bridge", "run")}


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], click.Command]
]:
    """Every leaf command under ``group`` with the words that name it."""
    ctx = click.Context(group)  # get_command: the root loads its commands when asked
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def _value(param: click.Parameter, existing_file: Path) -> str:
    if param.name in VALUES:
        return VALUES[param.name]
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.Path):
        return str(existing_file)
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return "1"
    return "x"


def invocation(command: click.Command, tenant: str, existing_file: Path,
               **paths: str) -> list[str]:
    """Arguments for ``command``: the tenant first (its check runs first), then the rest."""
    args: list[str] = []
    positional: list[str] = []
    for param in command.params:
        if param.name == "tenant":
            args[:0] = ["--tenant", tenant]
        elif param.name == "tenant_id":
            positional.insert(0, tenant)
        elif param.name in paths:
            value = paths[param.name]
            if isinstance(param, click.Argument):
                positional.append(value)
            else:
                args += [param.opts[0], value]
        elif param.required or param.name == "phone":
            value = _value(param, existing_file)
            if isinstance(param, click.Argument):
                positional.append(value)
            else:
                args += [param.opts[0], value]
    if command.name == "set" and "name" in {p.name for p in command.params}:
        args += ["--name", "x"]  # `tenant set`, `product set` refuse to set nothing
    return args + positional


def assert_one_line_error(result: Result, why: str) -> str:
    """Exit status 1 or 2, one `Error:` line, no traceback; return that line."""
    output = result.output
    assert "Traceback" not in output, f"{why}:\n{output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{why}: {result.exception!r}\n{output}"
    )
    assert result.exit_code in (1, 2), f"{why}: exit {result.exit_code}\n{output}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, f"{why}:\n{result.stderr}"
    return errors[0]


@pytest.fixture
def world(itemseal_env: dict[str, str], tmp_path: Path, monkeypatch) -> dict[str, str]:
    """A tenant ACME with a product and a minted batch B000001, for the file cases."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (
        ["tenant", "create", "ACME", "--name", "Acme"],
        ["product", "add", "-t", "ACME", "--sku", "LIP-001", "--name", "L", "--points", "5"],
        ["mint", "-t", "ACME", "--sku", "LIP-001", "-n", "10", "-o", "m.parquet",
         "--workers", "0"],
    ):
        result = runner.invoke(main, args, env=itemseal_env)
        assert result.exit_code == 0, result.output
    return itemseal_env


def test_the_walk_covers_the_commands():
    walked = {" ".join(path) for path, _ in commands()}
    assert {"check", "segment preview", "care run", "export members", "report tiers",
            "import members", "batch void"} <= walked


def test_every_command_refuses_an_unknown_tenant(world, tmp_path):
    """No command answers an unknown tenant with an empty success ("0 members")."""
    existing = tmp_path / "m.parquet"
    runner = CliRunner()
    walked = 0
    for path, command in commands():
        names = {p.name for p in command.params}
        if path in SKIPPED or not names & {"tenant", "tenant_id"}:
            continue
        args = [*path, *invocation(command, "NOPE", existing)]
        result = runner.invoke(main, args, env=world, input="")
        line = assert_one_line_error(result, " ".join(args))
        assert "unknown tenant 'NOPE'" in line, f"{' '.join(args)}: {line}"
        assert result.exit_code == 1, " ".join(args)
        walked += 1
    assert walked > 50


def _path_params(command: click.Command) -> list[click.Parameter]:
    return [p for p in command.params if isinstance(p.type, click.Path)]


def test_every_command_refuses_a_missing_file_or_folder(world, tmp_path):
    """Files read must exist; files written into a missing folder: one line, not a traceback."""
    existing = tmp_path / "m.parquet"
    missing_file = str(tmp_path / "no-such-file.parquet")
    missing_folder = str(tmp_path / "no-such-folder" / "out.parquet")
    runner = CliRunner()
    cases = 0
    for path, command in commands():
        if path in SKIPPED:
            continue
        for param in _path_params(command):
            reading = param.type.exists
            target = missing_file if reading else missing_folder
            args = [*path, *invocation(command, "ACME", existing, **{param.name: target})]
            if "fmt" in {p.name for p in command.params} and not reading:
                args += ["--format", "parquet"]
            result = runner.invoke(main, args, env=world, input="")
            line = assert_one_line_error(result, " ".join(args))
            assert ("does not exist" in line or "no such file" in line), line
            cases += 1
    assert cases >= 8

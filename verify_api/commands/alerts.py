"""CLI for brand managers' alerts (``itemseal alerts``): settings and the run."""

from __future__ import annotations

import json
import time

import click

from codegen.commands.options import Config, tenant_option
from codegen.store.audit import AuditLog
from verify_api.admin.alerts import Alerts


@click.group()
def alerts() -> None:
    """Alerts: high-risk codes and counterfeit surges by region, to a webhook or SMS."""


@alerts.command("set")
@tenant_option
@click.option("--json", "raw", required=True, help='e.g. {"counterfeit_threshold": 20}')
@click.pass_obj
def alerts_set(config: Config, tenant: str, raw: str) -> None:
    """Change the alert settings (webhook_url, sms_phones, thresholds, window).

    \b
    Example:
      itemseal alerts set --tenant ACME --json \\
        '{"webhook_url": "https://brand.example/alerts", "counterfeit_threshold": 20}'
    """
    try:
        changes = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--json") from None
    done = Alerts(config.redis, tenant, master=config.master_key()).configure(changes)
    AuditLog(config.redis, tenant).record("cli", "alerts.set", "alerts", None,
                                          {**done, "webhook_secret": bool(done["webhook_secret"])})
    click.echo(json.dumps({**done, "webhook_secret": bool(done["webhook_secret"])}))


@alerts.command("run")
@tenant_option
@click.option("--every", type=float, help="Run again every N seconds (a service).")
@click.pass_obj
def alerts_run(config: Config, tenant: str, every) -> None:
    """Evaluate the alert rules and deliver new alerts (run it from cron or with --every).

    \b
    Example:
      itemseal alerts run --tenant ACME --every 60
    """
    runner = Alerts(config.redis, tenant, master=config.master_key())
    while True:
        for alert in runner.run():
            click.echo(json.dumps(alert.to_json(tenant, int(time.time())), ensure_ascii=False))
        if every is None:
            break
        time.sleep(every)


COMMANDS = (alerts,)

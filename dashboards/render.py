"""Render the dashboards to Grafana JSON: what `egs render` writes into the Helm chart.

The JSON is generated, never edited by hand; `egs render --check` (and a test) fails when the files
in the chart differ from what the code renders.
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import BOARDS


def dashboard_json(uid: str) -> str:
    """One dashboard as Grafana's JSON model, keys sorted so that a diff shows what changed."""
    return json.dumps(BOARDS[uid]().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON of every dashboard."""
    return {f"{uid}.json": dashboard_json(uid) for uid in BOARDS}

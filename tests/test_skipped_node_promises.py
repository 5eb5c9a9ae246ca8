"""A 201 answered on a Node whose label then cannot be read keeps its answer: the Node has not gone.

Found by churn seed 502 (`--controller-kills 2-3`): five endpoints were answered 201 on an H100 node in a burst,
and 7 s later (minute 9.7 uncompressed) a label of that node became unreadable for 2.4 minutes (a GPU Feature
Discovery configuration gone wrong); their pods were made but not bound yet. The inventory skipped the node, so
`reserved` found their promised GPUs on no schedulable node and dropped the promises as capacity gone: the five
201s were reported Provisioning and a new node was ordered for them. A Ready replica on such a node already stays
(tests/test_skipped_node_incumbents.py); a promise there stays now too, as answered, and nothing new is placed
there. Skips: a node that went or is not Ready (tests/test_promises_kept.py: its 201s wait again).
"""

from __future__ import annotations

from autoscaler.decide import Observation, decide
from tests.test_decide import NOW
from tests.test_promises_kept import CATALOG, NODES, REGISTRY, SETTINGS, answered, broken
from tests.test_skipped_node_incumbents import unreadable


def test_a_201_answered_on_a_node_whose_label_cannot_be_read_since_keeps_its_answer() -> None:
    endpoints = answered(NODES)
    on_l40s = [
        e for e in endpoints
        if e["status"]["promise"]["answer"] == "Created"
        and any(w["node"] == "l40s-kai-0" for p in e["status"]["promise"]["placements"] for w in p["workers"])
    ]  # fmt: skip
    assert on_l40s
    nodes = [unreadable(NODES[0]), NODES[1]]
    decision = decide(Observation(nodes, endpoints, signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    assert [s.node for s in decision.inventory.skipped] == ["l40s-kai-0"]
    assert broken(decision, endpoints) == []

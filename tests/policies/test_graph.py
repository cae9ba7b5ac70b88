from __future__ import annotations

from policies.graph import close_down_set, hard_dependents, root_down_set

EDGES = [
    ("api", "region-a", True),
    ("db", "region-a", True),
    ("api", "db", True),
    ("billing", "saas-pay", True),
    ("billing", "api", False),  # soft: never propagates
    ("web", "api", True),
]


def test_closure_follows_hard_edges_only() -> None:
    dep = hard_dependents(EDGES)
    assert close_down_set({"region-a"}, dep) == {"region-a", "api", "db", "web"}
    assert close_down_set({"api"}, dep) == {"api", "web"}  # billing only soft-depends on api
    assert close_down_set({"saas-pay"}, dep) == {"saas-pay", "billing"}
    assert close_down_set(set(), dep) == frozenset()


def test_roots_explain_the_down_set() -> None:
    dep = hard_dependents(EDGES)
    assert root_down_set({"region-a", "api", "db", "web"}, dep) == {"region-a"}
    assert root_down_set({"api", "web", "saas-pay", "billing"}, dep) == {"api", "saas-pay"}
    # a dependent down on its own (its dependency is up) is its own root
    assert root_down_set({"web"}, dep) == {"web"}


def test_cycles_keep_one_deterministic_root() -> None:
    dep = hard_dependents([("a", "b", True), ("b", "a", True)])
    assert root_down_set({"a", "b"}, dep) == {"a"}
    assert close_down_set({"b"}, dep) == {"a", "b"}

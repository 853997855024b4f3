"""The SLURM run's job graph as pure functions, on fake jobs (no SLURM, no jobflow run, no files)."""

from __future__ import annotations

from flows.submit.graph import Node, counts, plan_tick, reset_frontier, run_finished


def node(uuid: str, *parents: str, index: int = 1, needs_all: bool = True, name: str | None = None) -> Node:
    return Node(f"{uuid}_{index}", uuid, index, name or uuid, frozenset(parents), needs_all)


def graph(*nodes: Node) -> dict[str, Node]:
    return {n.key: n for n in nodes}


def rec(state: str, **kw) -> dict:
    return {"name": "x", "state": state, **kw}


# explore -> label a, label b -> collect (tolerates a failed label) -> train
G = graph(
    node("explore"), node("la", "explore"), node("lb", "explore"),
    node("collect", "la", "lb", needs_all=False), node("train", "collect"),
)


def test_only_jobs_whose_parents_completed_are_ready():
    assert plan_tick(G, {}).ready == ["explore_1"]
    assert plan_tick(G, {"explore_1": rec("submitted")}).ready == []
    plan = plan_tick(G, {"explore_1": rec("completed")})
    assert plan.ready == ["la_1", "lb_1"] and plan.records == {}
    done = {k: rec("completed") for k in ("explore_1", "la_1", "lb_1")}
    assert plan_tick(G, done).ready == ["collect_1"]


def test_failed_parent_skips_children_that_need_it_and_their_children():
    g = graph(node("a"), node("b", "a"), node("c", "b"), node("d"))
    plan = plan_tick(g, {"a_1": rec("failed")})
    assert {k: r["state"] for k, r in plan.records.items()} == {"b_1": "skipped", "c_1": "skipped"}
    assert "parent failed: ['a']" in plan.records["b_1"]["reason"]
    assert plan.ready == ["d_1"]  # an unrelated job still runs


def test_a_job_that_tolerates_missing_inputs_runs_once_every_parent_is_terminal():
    base = {"explore_1": rec("completed"), "la_1": rec("failed")}
    assert plan_tick(G, {**base, "lb_1": rec("submitted")}).ready == []  # lb still running
    plan = plan_tick(G, {**base, "lb_1": rec("completed")})
    assert plan.ready == ["collect_1"] and plan.records == {}


def test_stop_children_and_stop_jobflow_propagate():
    plan = plan_tick(G, {"explore_1": rec("completed", stop_children=True)})
    assert {k: r["state"] for k, r in plan.records.items()} == {
        "la_1": "stopped", "lb_1": "stopped", "collect_1": "stopped", "train_1": "stopped"}
    g = graph(node("a"), node("b"), node("c", "b"))
    plan = plan_tick(g, {"a_1": rec("completed", stop_jobflow=True)})
    assert {r["state"] for r in plan.records.values()} == {"stopped"} and plan.ready == []


def test_only_the_latest_index_of_a_replaced_job_counts_as_parent():
    g = graph(node("r"), node("r", index=2), node("next", "r"))
    assert "next_1" not in plan_tick(g, {"r_1": rec("completed")}).ready  # r_2 (the replacement) not done yet
    assert plan_tick(g, {"r_1": rec("completed"), "r_2": rec("completed")}).ready == ["next_1"]


def test_max_running_defers_ready_jobs_single_writer():
    plan = plan_tick(G, {"explore_1": rec("completed")}, max_running=1)
    assert plan.ready == ["la_1"] and plan.deferred == ["lb_1"]
    records = {"explore_1": rec("completed"), "la_1": rec("submitted")}
    plan = plan_tick(G, records, max_running=1)
    assert plan.ready == [] and plan.deferred == ["lb_1"]
    assert run_finished(records, plan) is None  # deferred work keeps the run open


def test_run_finished_and_counts():
    all_done = {k: rec("completed") for k in G}
    assert run_finished(all_done, plan_tick(G, all_done)) == "completed"
    mixed = {**all_done, "la_1": rec("failed")}
    assert run_finished(mixed, plan_tick(G, mixed)) == "failed"
    assert counts(mixed) == {"completed": 4, "failed": 1}


def test_reset_frontier_forgets_failed_downstream_and_flows_they_added():
    g = graph(node("r"), node("a", "r"), node("b", "r"), node("c", "a"), node("n1"), node("n2", "n1"))
    records = {"r_1": rec("completed"), "a_1": rec("failed"), "b_1": rec("completed"), "c_1": rec("skipped"),
               "n1_1": rec("completed"), "n2_1": rec("completed")}
    added = [{"file": "b-replace.json", "by": "b_1"}, {"file": "c-addition.json", "by": "c_1"}]
    reset, dropped = reset_frontier(g, records, added, {"c-addition.json": ["n1_1", "n2_1"]})
    assert reset == {"a_1", "c_1", "n1_1", "n2_1"}  # b and r keep their outputs
    assert dropped == ["c-addition.json"]
    assert reset_frontier(g, {k: rec("completed") for k in g}, added, {}) == (set(), [])

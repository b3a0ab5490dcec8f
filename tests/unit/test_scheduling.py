"""Which queued runs start: limits per queue, per concurrency key and per environment."""

from conveyor.engine.scheduling import Candidate, choose_runs


def cands(queue, n, key=None, start=0.0):
    return [Candidate(f"{queue}-{key}-{i}", queue, key, start + i) for i in range(n)]


def test_queue_limit_counts_what_already_runs():
    chosen = choose_runs(
        capacity=100,
        env_free=None,
        queue_limits={"q": 3},
        executing={("q", None): 1},
        candidates=[cands("q", 10)],
    )
    assert len(chosen) == 2


def test_each_concurrency_key_gets_its_own_copy_of_the_limit():
    chosen = choose_runs(
        capacity=100,
        env_free=None,
        queue_limits={"q": 2},
        executing={},
        candidates=[sorted(cands("q", 5, "a") + cands("q", 5, "b", 0.5), key=lambda c: c.score)],
    )
    assert sorted(c.concurrency_key for c in chosen) == ["a", "a", "b", "b"]


def test_environment_limit_caps_every_queue_together():
    chosen = choose_runs(
        capacity=100,
        env_free=3,
        queue_limits={"a": None, "b": None},
        executing={},
        candidates=[cands("a", 5), cands("b", 5)],
    )
    assert len(chosen) == 3


def test_oldest_score_wins_across_queues_and_a_full_queue_does_not_block_others():
    chosen = choose_runs(
        capacity=4,
        env_free=None,
        queue_limits={"full": 1, "free": None},
        executing={("full", None): 1},
        candidates=[cands("full", 10), cands("free", 10, start=100)],
    )
    assert [c.queue for c in chosen] == ["free"] * 4


def test_capacity_caps_a_lease():
    assert (
        len(
            choose_runs(
                capacity=2,
                env_free=None,
                queue_limits={"q": None},
                executing={},
                candidates=[cands("q", 10)],
            )
        )
        == 2
    )

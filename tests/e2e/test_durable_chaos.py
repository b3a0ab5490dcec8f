"""Kill the whole platform with kill -9 at random moments while fan-out, wait and token runs
are in flight; after each restart everything picks up again. In the end every run completed
with the right value and every step's side effect happened once."""

from __future__ import annotations

import os
import random
import time

from conveyor import Conflict, NotFound

KILLS = 4


def test_random_kills_lose_nothing_and_repeat_no_step(fresh_platform):
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    print(f"chaos seed {seed}")
    fresh_platform.start()
    kinds = ["fan-out", "wait", "token"] * 4
    rng.shuffle(kinds)
    with fresh_platform.client() as client:
        handles = {
            client.trigger("chaos", {"kind": k, "seconds": rng.choice([2, 4, 6])}).id: k
            for k in kinds
        }
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.3, 2.5))
        fresh_platform.kill9()
        fresh_platform.start()
        complete_pending_tokens(fresh_platform, handles, rng)
    deadline = time.monotonic() + 90
    with fresh_platform.client() as client:
        while time.monotonic() < deadline:
            complete_pending_tokens(fresh_platform, handles, rng)
            runs = [client.runs.retrieve(run_id) for run_id in handles]
            if all(r.is_final for r in runs):
                break
            time.sleep(0.5)
    expected = {"fan-out": 12, "wait": 0, "token": 7}
    for run in runs:
        assert run.status == "COMPLETED", (seed, run.id, run.status, run.error)
        assert run.output == expected[handles[run.id]], (seed, run.id)
    effects = fresh_platform.effects()
    for run_id in handles:
        assert effects.count(f"begin {run_id}") == 1, (seed, run_id)
        assert effects.count(f"end {run_id}") == 1, (seed, run_id)
    with fresh_platform.client() as client:
        children = client.runs.list(task="double", limit=1000).data
    assert len(children) == 4 * kinds.count("fan-out"), seed  # no batch was triggered twice


def complete_pending_tokens(platform, handles, rng) -> None:
    """Complete the tokens of token runs that have made theirs (some now, some later)."""
    with platform.client() as client:
        for token in client.waitpoints.list_tokens(status="PENDING", limit=100):
            if token.idempotency_key and rng.random() < 0.7:
                try:
                    client.waitpoints.complete_token(token.id, {"n": 7})
                except (Conflict, NotFound):
                    pass

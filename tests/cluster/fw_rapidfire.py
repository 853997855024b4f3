"""Run every READY Firework of a mongomock LaunchPad in this process, worker by worker, then print states.

Usage: python fw_rapidfire.py LAUNCHPAD_YAML FWORKER_YAML... > states.json
(MONGOMOCK_SERVERSTORE_FILE must be set by the caller, before fireworks is imported.)
"""

from __future__ import annotations

import json
import sys

from fireworks import FWorker, LaunchPad
from fireworks.core.rocket_launcher import rapidfire


def main() -> None:
    lp = LaunchPad.from_file(sys.argv[1])
    workers = [FWorker.from_file(p) for p in sys.argv[2:]] or [FWorker()]
    for _ in range(50):  # rounds over the workers until nothing is READY for any of them
        ran = False
        for worker in workers:
            if lp.fireworks.count_documents({"state": "READY", **worker.query}):
                rapidfire(lp, worker, nlaunches=0, sleep_time=0, strm_lvl="ERROR")
                ran = True
        if not ran:
            break
    out = []
    for fw in lp.fireworks.find({}, {"fw_id": 1, "name": 1, "state": 1, "spec": 1, "launches": 1}):
        reason = None
        if fw["state"] == "FIZZLED":
            launch = lp.launches.find_one({"launch_id": {"$in": fw["launches"]}}, sort=[("launch_id", -1)])
            exc = (launch or {}).get("action", {}).get("stored_data", {}).get("_exception", {})
            reason = (exc.get("_stacktrace") or "").strip().splitlines()[-1:]
        out.append(
            {
                "fw_id": fw["fw_id"],
                "name": fw["name"],
                "state": fw["state"],
                "category": fw["spec"].get("_category"),
                "fworker": fw["spec"].get("_fworker"),
                "reason": reason[0] if reason else None,
            }
        )
    print(json.dumps(sorted(out, key=lambda r: r["fw_id"])))


if __name__ == "__main__":
    main()

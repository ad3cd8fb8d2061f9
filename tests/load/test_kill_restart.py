#!/usr/bin/env python3
"""50 jobs from 10 concurrent clients while 200 clients poll progress, with `easel serve` SIGKILLed
midway and restarted on the same data folder: every job ends done exactly once, none is lost.

Standard library only. Starts build/easel serve (--rate-limit 0) on a temporary folder with the tiny
SD 1.x model of tests/data/sd_pipeline_tiny; 10 threads submit 50 jobs in all (48x32, 2-6 steps,
distinct seeds; half `POST /easel/v1/jobs`, half A1111's synchronous `POST /sdapi/v1/txt2img`)
while 200 threads poll `GET /sdapi/v1/progress`. Once 40% of the jobs are done it kills the server
(SIGKILL: no shutdown code runs) and starts it again on the same data folder; the clients go on
with their remaining jobs there. Then it checks, from the history (`GET /easel/v1/jobs`), the job
table as the kill left it (a copy of easel.db read with sqlite3), the outputs folder and both
servers' event streams:
- every native job (by id) and every answered txt2img ends `done` with its image file, and no job
  is in the history twice (each has its own prompt) or done twice (events, finish times, files);
- a txt2img cut off by the kill (it waits for its image) is either resumed in the history or was
  never queued; both are counted;
- no poll got a 5xx; the second server stops cleanly on SIGTERM (exit 0).
Exit 0 when all hold.
"""
import argparse, collections, os, shutil, sqlite3, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from easel_load import EASEL, EventLog, Load, Server, Target, make_models_dir, request  # noqa: E402


def history(port):
    status, body = request(port, "GET", "/easel/v1/jobs?limit=10000")
    assert status == 200, (status, body)
    return body["jobs"]


def done_count(port):
    status, body = request(port, "GET", "/easel/v1/jobs?state=done&limit=1", timeout=10)
    return body["total"] if status == 200 else 0


def jobs_at_kill(data_dir, copy_dir):
    """The job table as the killed server left it, read from a copy (the server recovers the original)."""
    os.makedirs(copy_dir)
    for name in ("easel.db", "easel.db-wal"):
        if os.path.exists(os.path.join(data_dir, name)):
            shutil.copy(os.path.join(data_dir, name), copy_dir)
    db = sqlite3.connect(os.path.join(copy_dir, "easel.db"))
    try:
        return {i: {"state": s, "finished_ms": f} for i, s, f in db.execute("SELECT id, state, finished_ms FROM jobs")}
    finally:
        db.close()


def png_complete(path):
    with open(path, "rb") as f:
        data = f.read()
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data[-12:-8] == b"\0\0\0\0" and data[-8:-4] == b"IEND"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--easel", default=EASEL)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--pollers", type=int, default=200)
    ap.add_argument("--poll-interval", type=float, default=0.1, help="seconds between one poller's requests")
    ap.add_argument("--kill-at", type=float, default=0.4, help="fraction of the jobs done when the server is killed")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="easel_load_")
    server = Server(root, args.easel)
    failures = []

    def expect(ok, what):
        if not ok:
            failures.append(what)
            print(f"FAIL {what}", flush=True)

    t0 = time.time()
    load = None
    try:
        make_models_dir(root)
        target = Target(server.start())
        events = [EventLog(server.port)]
        load = Load(target, args.clients, args.jobs, args.pollers, args.poll_interval)
        load.start()

        # ---- kill midway ----
        kill_at = int(args.jobs * args.kill_at)
        deadline = time.time() + 60
        while done_count(server.port) < kill_at and time.time() < deadline:
            time.sleep(0.02)
        target.down()
        server.kill()
        killed_s = time.time() - t0
        before = jobs_at_kill(os.path.join(root, "data"), os.path.join(root, "at-kill"))
        done_before = {i for i, j in before.items() if j["state"] == "done"}
        unfinished_before = {i for i, j in before.items() if j["state"] in ("queued", "running")}
        print(f"killed at {killed_s:.1f} s: {len(done_before)} done, {len(unfinished_before)} queued or running "
              f"({sum(j['state'] == 'running' for j in before.values())} running)", flush=True)
        restart_ms = int(time.time() * 1000)
        target.set(server.start())
        events.append(EventLog(server.port))

        # ---- the clients finish, then the queue drains ----
        expect(load.wait_clients(120), "clients finished within 120 s")
        deadline = time.time() + 60
        while time.time() < deadline:
            jobs = history(server.port)
            if not any(j["state"] in ("queued", "running") for j in jobs):
                break
            time.sleep(0.1)
        load.stop_pollers()
        jobs = history(server.port)

        # ---- checks ----
        subs = load.submissions
        outcomes = collections.Counter(s.outcome for s in subs)
        by_id = {j["id"]: j for j in jobs}
        by_prompt = collections.defaultdict(list)
        for j in jobs:
            by_prompt[j["request"].get("prompt")].append(j)
        expect(len(by_id) == len(jobs), "no job id twice in the history")
        twice = [p for p, js in by_prompt.items() if len(js) > 1]
        expect(not twice, f"no submission queued twice (prompts twice: {twice})")
        known = {s.prompt for s in subs}
        expect(all(j["request"].get("prompt") in known for j in jobs), "every job in the history was submitted by a client")
        not_done = [(j["id"], j["state"], j["error"]) for j in jobs if j["state"] != "done"]
        expect(not not_done, f"every job in the history done ({not_done})")

        cut_off = collections.Counter()  # (kind, what became of it) for requests the kill cut off
        for s in subs:
            found = by_prompt.get(s.prompt, [])
            if s.outcome == "accepted":
                expect(s.id in by_id and by_id[s.id]["request"]["prompt"] == s.prompt, f"native job {s.id} ({s.prompt}) in the history")
            elif s.outcome == "ok":
                expect(len(found) == 1, f"answered txt2img '{s.prompt}' in the history once")
            elif s.outcome == "lost_connection":
                # Cut off by the kill: queued before it (then resumed, or done with the answer lost), or never queued.
                kind = "native" if s.native else "txt2img"
                if not found:
                    cut_off[kind, "never queued"] += 1
                elif before.get(found[0]["id"], {}).get("state") == "done":
                    cut_off[kind, "done before the kill, answer lost"] += 1
                else:
                    cut_off[kind, "resumed after the restart"] += 1
            else:
                expect(False, f"'{s.prompt}': {s.outcome} {s.error}")

        # One image per job, complete, and no image of a job that is not in the history.
        outputs = os.path.join(root, "outputs")
        files = collections.Counter()
        for d, _, names in os.walk(outputs):
            for n in names:
                if n.endswith(".png"):
                    files[n.rsplit("-", 1)[0]] += 1
                    expect(png_complete(os.path.join(d, n)), f"{n} is a complete PNG")
        for j in jobs:
            images = (j.get("result") or {}).get("images", [])
            expect(len(images) == 1 and os.path.isfile(os.path.join(outputs, images[0][len("/outputs/"):])),
                   f"job {j['id']} has its image file ({images})")
            expect(files[j["id"]] == 1, f"job {j['id']} has one output file ({files[j['id']]})")
        expect(set(files) <= set(by_id), f"no output of an unknown job ({set(files) - set(by_id)})")

        # Done exactly once: a job done before the kill is not run again; no job is done on both servers.
        rerun = [i for i in done_before if by_id.get(i, {}).get("finished_ms") != before[i]["finished_ms"]]
        expect(not rerun, f"jobs done before the kill were not run again ({rerun})")
        done_events = collections.Counter(i for e in events for i in e.done)
        expect(all(n == 1 for n in done_events.values()), f"one done event per job ({[i for i, n in done_events.items() if n > 1]})")
        resumed = [i for i in unfinished_before if by_id.get(i, {}).get("started_ms", 0) >= restart_ms]
        expect(len(resumed) == len(unfinished_before), f"every job unfinished at the kill ran on the new server "
                                                       f"({len(resumed)} of {len(unfinished_before)})")
        expect(len(unfinished_before) > 0, "the kill found unfinished jobs")

        polls = load.poll_counts()
        five = sum(v for k, v in polls.items() if isinstance(k, int) and k >= 500)
        expect(five == 0, f"no poll got a 5xx ({five})")
        expect(all(k in (200, "conn") for k in polls), f"every answered poll was 200 ({polls})")
        expect(sum(load.bad_bodies) == 0, "every poll answer has 'progress'")

        stopped = server.stop(10)
        expect(stopped == 0, f"the server stops cleanly on SIGTERM (exit {stopped})")
        expect("easel: stopping" in open(server.logs[-1]).read(), "the server logged its stop")

        lat = load.poll_stats(load.t_clients_done - load.t_start)
        print(f"submissions: {dict(outcomes)}; history: {len(jobs)} jobs, "
              f"{sum(j['state'] == 'done' for j in jobs)} done, {len(twice)} duplicated; outputs: {sum(files.values())} files")
        print("requests cut off by the kill: " + (", ".join(f"{n} {k} {w}" for (k, w), n in sorted(cut_off.items())) or "none"))
        print(f"unfinished at the kill: {len(unfinished_before)}, run again after the restart: {len(resumed)}; "
              f"done events: {sum(done_events.values())} for {len(done_events)} jobs")
        print(f"polls: {lat['polls']} answered ({lat['statuses']}), 5xx: {five}; progress p50 {lat['p50_ms']} ms, "
              f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms (connections lost to the kill are not timed)")
    except Exception as e:  # noqa: BLE001 - reported with the server logs below
        failures.append(f"{type(e).__name__}: {e}")
        print(f"FAIL {type(e).__name__}: {e}", flush=True)
    finally:
        if load:
            load.stopping.set()
        server.stop(10)
        if failures:
            print(server.log_text())
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'FAIL' if failures else 'PASS'} kill and restart under load ({time.time() - t0:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""`easel serve` under load: the latency of A1111's `GET /sdapi/v1/progress` and the job throughput
while 10 clients submit 50 jobs (48x32, 2-6 steps on the tiny SD 1.x model of
tests/data/sd_pipeline_tiny; half native `POST /easel/v1/jobs`, half synchronous
`POST /sdapi/v1/txt2img`) and 200 clients poll progress over keep-alive connections.
The same load as tests/load/test_kill_restart.py, without the kill. A benchmark: nothing is asserted.

Latency is measured by the pollers themselves, Python threads sharing the machine with the server,
so it includes their own scheduling; a probe in its own process (one connection, 20 polls/s) shows
the server's side with less of that. A second round without pollers gives the jobs/s the pollers cost.

    python3 bench/server_load.py [--pollers 200] [--poll-interval 0.1] [--json out.json]
"""
import argparse, json, multiprocessing, os, platform, shutil, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "load"))
from easel_load import EASEL, NET_ERRORS, Load, Server, Target, make_models_dir, percentile, request  # noqa: E402


def probe(port, stop, out, interval=0.05):
    """One connection in its own process, polling every `interval` s; sends back its latencies."""
    import http.client
    conn, lat, errors = http.client.HTTPConnection("127.0.0.1", port, timeout=30), [], 0
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn.request("GET", "/sdapi/v1/progress")
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                lat.append(time.perf_counter() - t0)
            else:
                errors += 1
        except NET_ERRORS:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    out.send((lat, errors))


def latency_row(lat, seconds):
    lat = sorted(lat)
    ms = lambda x: round(x * 1000, 2)
    return {"polls": len(lat), "polls_per_s": round(len(lat) / seconds, 1), "p50_ms": ms(percentile(lat, 50)),
            "p95_ms": ms(percentile(lat, 95)), "p99_ms": ms(percentile(lat, 99)), "max_ms": ms(lat[-1]) if lat else None}


def run_round(root, args, pollers):
    """One server, one load; returns the round's numbers."""
    shutil.rmtree(os.path.join(root, "data"), ignore_errors=True)
    shutil.rmtree(os.path.join(root, "outputs"), ignore_errors=True)
    server = Server(root, args.easel, args.threads)
    try:
        port = server.start()
        # The model loads on the first job: not part of the throughput.
        status, _ = request(port, "POST", "/sdapi/v1/txt2img", {"prompt": "warm up", "width": 48, "height": 32, "steps": 2})
        assert status == 200, status
        stop, (recv, send) = multiprocessing.Event(), multiprocessing.Pipe(duplex=False)
        prober = multiprocessing.Process(target=probe, args=(port, stop, send))
        prober.start()
        load = Load(Target(port), args.clients, args.jobs, pollers, args.poll_interval)
        load.start()
        load.wait_clients(300)
        native = [s.id for s in load.submissions if s.id]
        while True:  # the native jobs may still be queued when their clients are done
            _, body = request(port, "GET", "/easel/v1/jobs?limit=10000")
            if not any(j["state"] in ("queued", "running") for j in body["jobs"]):
                break
            time.sleep(0.02)
        t_end = time.perf_counter()
        seconds = t_end - load.t_start
        load.stop_pollers()
        stop.set()
        probe_lat, probe_errors = recv.recv()
        prober.join()
        jobs = [j for j in body["jobs"] if j["request"]["prompt"] != "warm up"]
        outcomes = {}
        for s in load.submissions:
            outcomes[s.outcome] = outcomes.get(s.outcome, 0) + 1
        out = {"pollers": pollers, "seconds": round(seconds, 2), "jobs_done": sum(j["state"] == "done" for j in jobs),
               "jobs_per_s": round(sum(j["state"] == "done" for j in jobs) / seconds, 2), "native_jobs": len(native),
               "submissions": outcomes,
               "probe": {**latency_row(probe_lat, seconds), "errors": probe_errors}}
        if pollers:
            stats = load.poll_stats(seconds)
            out["pollers_progress"] = {k: stats[k] for k in ("polls", "polls_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms")}
            out["pollers_progress"].update(statuses=stats["statuses"], bad_bodies=stats["bad_bodies"])
        rc = server.stop(10)
        out["clean_stop"] = rc == 0
        return out
    finally:
        server.stop(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--easel", default=EASEL)
    ap.add_argument("--threads", type=int, default=2, help="easel's compute threads")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--pollers", type=int, default=200)
    ap.add_argument("--poll-interval", type=float, default=0.1, help="seconds between one poller's requests")
    ap.add_argument("--no-baseline", action="store_true", help="skip the round without pollers")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    root = tempfile.mkdtemp(prefix="easel_bench_load_")
    try:
        make_models_dir(root)
        rounds = [run_round(root, args, args.pollers)]
        if not args.no_baseline:
            rounds.append(run_round(root, args, 0))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    result = {"machine": {"cpus": os.cpu_count(), "cpu": cpu}, "clients": args.clients, "jobs": args.jobs,
              "poll_interval_s": args.poll_interval, "rounds": rounds}
    print(f"easel serve: {args.clients} clients, {args.jobs} jobs (48x32, 2-6 steps, tiny SD 1.x), "
          f"pollers every {args.poll_interval} s; {os.cpu_count()} CPUs ({cpu})")
    print(f"{'round':<34}{'polls':>8}{'polls/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'jobs/s':>8}")
    for r in rounds:
        rows = []
        if "pollers_progress" in r:
            rows.append((f"{r['pollers']} pollers (threads)", r["pollers_progress"]))
        rows.append((f"probe (own process), {r['pollers']} pollers", r["probe"]))
        for name, row in rows:
            print(f"{name:<34}{row['polls']:>8}{row['polls_per_s']:>9}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['p99_ms']:>9}"
                  f"{row['max_ms']:>9}{r['jobs_per_s']:>8}")
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()

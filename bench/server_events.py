#!/usr/bin/env python3
"""What live events cost the generation: the time 20 small jobs take on `build/easel serve` (tiny
SD 1.x model of tests/data/sd_pipeline_tiny, 48x32, a few steps, submitted at once through
`POST /easel/v1/jobs`) with no event subscribers, then with 300 Server-Sent Events clients on
`/easel/v1/events` and 150 WebSocket clients on `/easel/v1/ws` that read and discard everything.

The subscribers run in their own process (one thread, non-blocking sockets, the WebSocket
handshake written by hand: standard library only), so their reading shares the machine with the
server as real clients on the same host would, but not the benchmark's Python process. A job's
generation time is the server's own (finished_ms - started_ms); the round's time is from the first
job's start to the last job's end; rounds without and with subscribers alternate and the medians are
compared (target: a ratio within 1.10). A benchmark: nothing is asserted.

    python3 bench/server_events.py [--jobs 20] [--sse 300] [--ws 150] [--steps 6] [--rounds 3] [--json out.json]
"""
import argparse, base64, json, multiprocessing, os, platform, resource, selectors, shutil, socket, subprocess, sys
import tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "load"))
from easel_load import EASEL, Server, make_models_dir, request  # noqa: E402


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_subscriber(port, websocket):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /easel/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    else:
        s.sendall(f"GET /easel/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    expected = b" 101 " if websocket else b" 200 "
    if expected not in status:
        raise ConnectionError(f"answered {status!r}")
    s.setblocking(False)
    return s


def subscribers(port, sse, ws, ready, stop, out):
    """Connects `sse` + `ws` clients, says so on `ready`, reads and discards until `stop`."""
    raise_fd_limit()
    sel, failed = selectors.DefaultSelector(), []
    for i in range(sse + ws):
        try:
            sel.register(open_subscriber(port, websocket=i >= sse), selectors.EVENT_READ)
        except OSError as e:
            failed.append(str(e))
    ready.set()
    received, closed = 0, 0
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            try:
                data = key.fileobj.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # the server dropped it (or is going away)
                sel.unregister(key.fileobj)
                key.fileobj.close()
                closed += 1
            received += len(data)
    cpu = os.times()
    out.send({"connected": sse + ws - len(failed), "connect_errors": failed[:3], "bytes": received,
              "dropped_by_server": closed, "subscriber_cpu_s": round(cpu.user + cpu.system, 2)})


def process_cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_jobs(port, jobs, steps, tag, pid=None):
    cpu0 = process_cpu_seconds(pid) if pid else 0.0
    ids = []
    for i in range(jobs):
        req = {"prompt": f"{tag} {i}", "seed": 100 + i, "steps": steps, "width": 48, "height": 32, "sampler_name": "Euler"}
        status, body = request(port, "POST", "/easel/v1/jobs", {"request": req})
        assert status == 202, (status, body)
        ids.append(body["id"])
    while True:
        _, body = request(port, "GET", f"/easel/v1/jobs?limit={jobs}&q={tag}")
        states = [j["state"] for j in body["jobs"]]
        if len(states) == jobs and all(s in ("done", "failed", "cancelled") for s in states):
            break
        time.sleep(0.05)
    assert all(s == "done" for s in states), states
    started = min(j["started_ms"] for j in body["jobs"])
    finished = max(j["finished_ms"] for j in body["jobs"])
    return {"seconds": round((finished - started) / 1000, 3),
            "sum_of_job_seconds": round(sum(j["finished_ms"] - j["started_ms"] for j in body["jobs"]) / 1000, 3),
            "server_cpu_s": round(process_cpu_seconds(pid) - cpu0, 2) if pid else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--easel", default=EASEL)
    ap.add_argument("--threads", type=int, default=2, help="compute threads of the server")
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--sse", type=int, default=300)
    ap.add_argument("--ws", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=3, help="pairs of rounds (without, with subscribers); medians are reported")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    raise_fd_limit()

    help_text = subprocess.run([args.easel, "serve", "--help"], capture_output=True, text=True).stdout
    extra = ["--max-client-connections", "1024"] if "--max-client-connections" in help_text else []
    root = tempfile.mkdtemp(prefix="easel_bench_events_")
    make_models_dir(root)  # <root>/models/Stable-diffusion
    server = Server(root, args.easel, args.threads, extra)
    rounds = []
    try:
        port = server.start()
        # The model loads on the first job: not part of any round.
        status, _ = request(port, "POST", "/sdapi/v1/txt2img", {"prompt": "warm up", "width": 48, "height": 32, "steps": 2})
        assert status == 200, status
        # Alternating rounds, so a neighbour's load on a shared machine falls on both kinds alike.
        for r in range(args.rounds):
            quiet = run_jobs(port, args.jobs, args.steps, f"quiet{r}x", server.proc.pid)
            ready, stop = multiprocessing.Event(), multiprocessing.Event()
            recv, send = multiprocessing.Pipe(duplex=False)
            proc = multiprocessing.Process(target=subscribers, args=(port, args.sse, args.ws, ready, stop, send))
            proc.start()
            ready.wait(120)
            time.sleep(1.0)  # the subscribers have read their first messages
            watched = run_jobs(port, args.jobs, args.steps, f"watched{r}x", server.proc.pid)
            time.sleep(0.5)  # what is still on its way is read too
            stop.set()
            subs = recv.recv()
            proc.join()
            rounds.append({"no_subscribers": quiet, "with_subscribers": watched, "subscribers": subs})
            print(f"round {r + 1}: no subscribers {quiet['seconds']:.3f} s, with {watched['seconds']:.3f} s "
                  f"({subs['connected']} connected, {subs['dropped_by_server']} dropped, {subs['bytes']} bytes read)",
                  flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    median = lambda xs: sorted(xs)[len(xs) // 2]
    quiet_s = median([r["no_subscribers"]["seconds"] for r in rounds])
    watched_s = median([r["with_subscribers"]["seconds"] for r in rounds])
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
              "easel": args.easel, "jobs": args.jobs, "steps": args.steps, "size": "48x32",
              "server_threads": args.threads, "server_args": extra, "sse": args.sse, "websocket": args.ws,
              "rounds": rounds, "median_no_subscribers_s": quiet_s, "median_with_subscribers_s": watched_s,
              "ratio": round(watched_s / quiet_s, 3) if quiet_s else None}
    print(f"{args.jobs} jobs of {args.steps} steps at 48x32, {args.threads} compute threads, median of {args.rounds} rounds")
    print(f"  no subscribers:                 {quiet_s:.3f} s")
    print(f"  {args.sse} SSE + {args.ws} WebSocket clients: {watched_s:.3f} s")
    print(f"  ratio: {result['ratio']} (target: within 1.10)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

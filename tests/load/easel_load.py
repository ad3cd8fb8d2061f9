"""Load on `build/easel serve`, shared by tests/load/test_kill_restart.py and bench/server_load.py
(Python standard library only).

`Server` starts and stops one `easel serve` process; `Target` is where the server is now (the kill
test restarts it on another port: clients wait on it while it is down); `Load` runs N clients that
submit tiny jobs (48x32, 2-6 steps, distinct prompts and seeds; half through the native job API,
half through A1111's synchronous txt2img) while M pollers read `GET /sdapi/v1/progress` over
keep-alive connections and time every answer; `EventLog` keeps the `done` events of
`/easel/v1/events`.
"""
import base64, http.client, json, os, signal, socket, subprocess, sys, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EASEL = os.path.join(ROOT, "build", "easel")
sys.path.insert(0, os.path.join(ROOT, "tests", "clients"))
from test_clients import make_models_dir  # noqa: E402  (the tiny SD 1.x model and its sidecar)

NET_ERRORS = (OSError, http.client.HTTPException)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `easel serve` on `root`'s models, outputs and data folders, on a new free port each start."""

    def __init__(self, root, easel=EASEL, threads=2, extra_args=()):
        self.root, self.easel, self.threads, self.extra_args = root, easel, threads, list(extra_args)
        self.proc, self.port, self.logs = None, None, []

    def start(self, timeout=30):
        self.port = free_port()
        log = os.path.join(self.root, f"serve-{len(self.logs)}-{self.port}.log")
        self.logs.append(log)
        self.proc = subprocess.Popen(
            [self.easel, "--threads", str(self.threads), "serve", "--port", str(self.port), "--rate-limit", "0",
             "--models-dir", os.path.join(self.root, "models"), "--outputs-dir", os.path.join(self.root, "outputs"),
             "--data-dir", os.path.join(self.root, "data")] + self.extra_args,
            stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"easel serve exited with {self.proc.returncode}: {self.log_text()}")
            try:
                status, _ = request(self.port, "GET", "/sdapi/v1/progress", timeout=2)
                if status == 200:
                    return self.port
            except NET_ERRORS:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"easel serve did not answer in {timeout} s: {self.log_text()}")

    def kill(self):
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status, or None when it had to be killed after `timeout` s."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_text(self, tail=4000):
        return "".join(f"--- {p}\n{open(p).read()[-tail:]}" for p in self.logs)


def request(port, method, path, body=None, timeout=30):
    """One request on a new connection: (status, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw
    finally:
        conn.close()


class Target:
    """The port the server answers on now; `wait` blocks while it is down (between a kill and a restart)."""

    def __init__(self, port=None):
        self.port, self.up = port, threading.Event()
        if port:
            self.up.set()

    def set(self, port):
        self.port = port
        self.up.set()

    def down(self):
        self.up.clear()

    def wait(self, timeout=60):
        return self.port if self.up.wait(timeout) else None


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


class Submission:
    """One job a client asked for, and what the client saw."""

    def __init__(self, client, index):
        self.client, self.index = client, index
        self.native = (client + index) % 2 == 1
        self.seed = 1000 + 100 * client + index
        self.steps = 2 + (client + index) % 5
        self.prompt = f"load client {client} job {index}"
        self.outcome = None   # "accepted" (native 202), "ok" (txt2img 200 with its image), "lost_connection", "http_<n>"
        self.id = None        # native jobs: the id the server answered
        self.error = ""

    def request(self):
        return {"prompt": self.prompt, "seed": self.seed, "steps": self.steps, "width": 48, "height": 32,
                "sampler_name": "Euler"}


class Load:
    """`clients` threads submit `jobs` jobs in all while `pollers` threads poll progress every `interval` s."""

    def __init__(self, target, clients=10, jobs=50, pollers=200, interval=0.1):
        self.target, self.interval = target, interval
        self.submissions = [Submission(c, j) for c in range(clients) for j in range(jobs // clients + (c < jobs % clients))]
        self.n_clients, self.n_pollers = clients, pollers
        self.stopping = threading.Event()
        self.latencies = [[] for _ in range(pollers)]  # seconds, per poller (no lock needed)
        self.poll_status = [{} for _ in range(pollers)]  # status -> count, per poller; "conn" for a lost connection
        self.bad_bodies = [0] * pollers
        self.client_threads, self.poller_threads = [], []
        self.t_start = self.t_clients_done = None

    # ---- pollers ----
    def poll(self, i):
        conn, port = None, None
        lat, status = self.latencies[i], self.poll_status[i]
        time.sleep(self.interval * i / max(1, self.n_pollers))  # spread the first polls over one interval
        while not self.stopping.is_set():
            if conn is None:
                port = self.target.wait(1)
                if port is None:
                    continue
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/sdapi/v1/progress")
                r = conn.getresponse()
                body = r.read()
            except NET_ERRORS:
                conn.close()
                conn = None
                status["conn"] = status.get("conn", 0) + 1
                time.sleep(0.05)
                continue
            dt = time.perf_counter() - t0
            status[r.status] = status.get(r.status, 0) + 1
            if r.status == 200:
                lat.append(dt)
                try:
                    if "progress" not in json.loads(body):
                        self.bad_bodies[i] += 1
                except ValueError:
                    self.bad_bodies[i] += 1
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
            if self.interval > dt:
                time.sleep(self.interval - dt)
        if conn:
            conn.close()

    # ---- clients ----
    def submit(self, s):
        port = self.target.wait(60)
        if port is None:
            s.outcome, s.error = "lost_connection", "the server did not come back"
            return
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            if s.native:
                conn.request("POST", "/easel/v1/jobs", body=json.dumps({"kind": "txt2img", "request": s.request()}),
                             headers={"Content-Type": "application/json"})
            else:
                conn.request("POST", "/sdapi/v1/txt2img", body=json.dumps(s.request()), headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
        except NET_ERRORS as e:
            s.outcome, s.error = "lost_connection", f"{type(e).__name__}: {e}"
            return
        finally:
            conn.close()
        want = 202 if s.native else 200
        if r.status != want:
            s.outcome, s.error = f"http_{r.status}", body[:300].decode(errors="replace")
            return
        answer = json.loads(body)
        if s.native:
            s.outcome, s.id = "accepted", answer["id"]
            return
        png = base64.b64decode(answer["images"][0]) if len(answer.get("images", [])) == 1 else b""
        info = json.loads(answer.get("info", "{}"))
        if not png.startswith(b"\x89PNG") or info.get("seed") != s.seed or info.get("prompt") != s.prompt:
            s.outcome, s.error = "http_200_wrong", f"images {len(answer.get('images', []))}, info seed {info.get('seed')}"
            return
        s.outcome = "ok"

    def client(self, c):
        for s in self.submissions:
            if s.client == c:
                self.submit(s)

    def start(self):
        self.t_start = time.perf_counter()
        self.poller_threads = [threading.Thread(target=self.poll, args=(i,), daemon=True) for i in range(self.n_pollers)]
        self.client_threads = [threading.Thread(target=self.client, args=(c,), daemon=True) for c in range(self.n_clients)]
        for t in self.poller_threads + self.client_threads:
            t.start()

    def wait_clients(self, timeout=120):
        end = time.time() + timeout
        for t in self.client_threads:
            t.join(max(0, end - time.time()))
        self.t_clients_done = time.perf_counter()
        return not any(t.is_alive() for t in self.client_threads)

    def stop_pollers(self):
        self.stopping.set()
        for t in self.poller_threads:
            t.join(30)

    # ---- results ----
    def poll_counts(self):
        total = {}
        for d in self.poll_status:
            for k, v in d.items():
                total[k] = total.get(k, 0) + v
        return total

    def poll_stats(self, seconds):
        lat = sorted(x for per in self.latencies for x in per)
        ms = lambda x: round(x * 1000, 2)
        return {"polls": len(lat), "polls_per_s": round(len(lat) / seconds, 1) if seconds else None,
                "p50_ms": ms(percentile(lat, 50)), "p95_ms": ms(percentile(lat, 95)), "p99_ms": ms(percentile(lat, 99)),
                "max_ms": ms(lat[-1]) if lat else None, "statuses": {str(k): v for k, v in sorted(self.poll_counts().items(), key=str)},
                "bad_bodies": sum(self.bad_bodies)}


class EventLog:
    """Reads one server's `/easel/v1/events` on a thread; keeps (job id, time) of every `done` event."""

    def __init__(self, port):
        self.done, self.error = [], None
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.conn.request("GET", "/easel/v1/events")
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status
        self.first = threading.Event()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
        self.first.wait(10)  # the server's first message: subscribed, later changes will arrive

    def read(self):
        try:
            for line in self.response:
                self.first.set()
                if not line.startswith(b"data: "):
                    continue
                m = json.loads(line[6:])
                if m.get("type") == "job" and m["job"]["state"] == "done":
                    self.done.append(m["job"]["id"])
        except NET_ERRORS as e:
            self.error = e
        finally:
            self.first.set()

    def close(self):
        self.conn.close()

#!/usr/bin/env python3
"""Real clients against `build/easel serve`: the A1111 client `webuiapi` and the `openai` SDK, unmodified,
on the first SD 1.x tiny model of tests/data/sd_pipeline_tiny (48x32 images, 2-3 steps).

Creates build/venv-clients with the pinned clients (idempotent), starts the server on a free port with a
temporary models folder, runs every check, and always stops the server. Exit 0 when all pass.
"""
import base64, io, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request, urllib.error

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, "build", "venv-clients")
PINS = ["webuiapi==0.9.17", "openai==3.57.0"]
EASEL = os.path.join(ROOT, "build", "easel")
DATA = os.path.join(os.environ.get("EASEL_TEST_DATA", os.path.join(ROOT, "tests", "data")), "sd_pipeline_tiny")


def ensure_venv():
    """Re-runs this script in the clients' venv, creating it and installing the pins when needed."""
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    have = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True).stdout.split()
    if not all(p in have for p in PINS):
        subprocess.check_call([py, "-m", "pip", "install", "-q", *PINS])
    os.execv(py, [py, *sys.argv])


def first_init_image():
    """The init image of the set's first case with one (the tests never name a file of the set)."""
    cases = json.load(open(os.path.join(DATA, "cases.json")))["cases"]
    return os.path.join(DATA, next(c["request"]["init_images"][0] for c in cases.values() if "init_images" in c["request"]))


def make_models_dir(root):
    """The set's first SD 1.x 4-channel checkpoint and its sidecar (as tests/test_server_sdapi.cpp builds it)."""
    info = json.load(open(os.path.join(DATA, "info.json")))
    ckpt_dir = os.path.join(root, "models", "Stable-diffusion")
    os.makedirs(ckpt_dir)
    for file, m in info["models"].items():
        if m["family"] != "sd1" or m["unet"]["diffusers_config"]["in_channels"] != 4 or not os.path.isfile(os.path.join(DATA, file)):
            continue
        shutil.copy(os.path.join(DATA, file), ckpt_dir)
        side = {"text_encoder_heads": m["text_encoder"]["heads"], "unet": {"norm_groups": m["unet"]["norm_groups"]},
                "vae_norm_groups": m["vae"]["norm_groups"]}
        att = m["unet"]["attention"]
        if att["num_heads"] is not None:
            side["unet"]["num_heads"] = att["num_heads"]
        else:
            side["unet"]["head_dim"] = att["head_dim"]
        json.dump(side, open(os.path.join(ckpt_dir, file + ".easel.json"), "w"))
        return file
    raise SystemExit("the set has no SD 1.x single-file checkpoint")


class Server:
    """`easel serve` on a free port; stopped by stop() (and at exit, whatever happens)."""

    def __init__(self, root, *args):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(os.path.join(root, f"serve-{self.port}.log"), "w")
        self.proc = subprocess.Popen([EASEL, "--threads", "2", "serve", "--port", str(self.port), "--models-dir", os.path.join(root, "models"),
                                      "--outputs-dir", os.path.join(root, "outputs"), "--data-dir", os.path.join(root, "data"), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"easel serve exited with {self.proc.returncode}: {open(self.log.name).read()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/sdapi/v1/progress", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("easel serve did not start in 20 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# A1111's parse_generation_parameters (modules/infotext_utils.py), the part that reads the keys back.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_generation_parameters(text):
    res = {}
    *lines, last = text.strip().split("\n")
    if len(RE_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = "", "", False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[16:].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    res["Prompt"], res["Negative prompt"] = prompt, negative
    for k, v in RE_PARAM.findall(last):
        v = v.strip()
        if v.startswith('"') and v.endswith('"'):
            v = json.loads(v)
        m = re.match(r"^(\d+)x(\d+)$", v)
        if m:
            res[k + "-1"], res[k + "-2"] = m.group(1), m.group(2)
        else:
            res[k] = v
    return res


results = []


def check(name, fn):
    t = time.time()
    try:
        fn()
        results.append((name, None))
        print(f"PASS {name} ({time.time() - t:.1f} s)", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported, the rest still runs
        results.append((name, e))
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


def main():
    ensure_venv()
    import openai, webuiapi
    from PIL import Image
    print(f"webuiapi {__import__('importlib.metadata').metadata.version('webuiapi')}, openai {openai.__version__}", flush=True)

    root = tempfile.mkdtemp(prefix="easel_clients_")
    servers = []
    try:
        make_models_dir(root)
        init = Image.open(first_init_image()).convert("RGB").resize((48, 32))
        mask = Image.new("L", (48, 32), 0)
        mask.paste(255, (0, 0, 24, 32))

        srv = Server(root)
        servers.append(srv)
        api = webuiapi.WebUIApi(port=srv.port, sampler="Euler a", steps=3)

        def txt2img():
            r = api.txt2img(prompt="a red ball", negative_prompt="blurry", width=48, height=32, steps=3, seed=11, cfg_scale=6.5,
                            sampler_name="Euler a", batch_size=2)
            assert len(r.images) == 2 and r.images[0].size == (48, 32), r.images
            assert r.info["all_seeds"] == [11, 12], r.info
            p = parse_generation_parameters(r.images[0].info["parameters"])
            want = {"Prompt": "a red ball", "Negative prompt": "blurry", "Steps": "3", "Sampler": "Euler a", "CFG scale": "6.5",
                    "Seed": "11", "Size-1": "48", "Size-2": "32"}
            assert all(p.get(k) == v for k, v in want.items()), p
            info = api.png_info(r.images[1])  # the server reads it back the same way
            assert info.parameters["Seed"] == "12" and info.parameters["Prompt"] == "a red ball", info.parameters
            assert parse_generation_parameters(info.info)["Seed"] == "12"

        def img2img():
            r = api.img2img(images=[init], prompt="a red ball", width=48, height=32, steps=3, seed=5, denoising_strength=0.5)
            assert r.images[0].size == (48, 32) and r.info["denoising_strength"] == 0.5, r.info
            p = parse_generation_parameters(r.images[0].info["parameters"])
            assert p["Denoising strength"] == "0.5" and p["Seed"] == "5", p

        def inpaint():
            r = api.img2img(images=[init], mask_image=mask, inpainting_fill=1, mask_blur=2, prompt="a red ball", width=48, height=32,
                            steps=3, seed=5, denoising_strength=1.0, inpaint_full_res=False)
            out = r.images[0].convert("RGB")
            # Outside the mask (right half) the original stays; inside it is repainted.
            diff = lambda x0, x1: sum(abs(a - b) for y in range(32) for x in range(x0, x1)
                                      for a, b in zip(out.getpixel((x, y)), init.getpixel((x, y)))) / (32 * (x1 - x0) * 3)
            assert diff(36, 48) < diff(0, 12), (diff(36, 48), diff(0, 12))
            assert parse_generation_parameters(r.images[0].info["parameters"])["Mask blur"] == "2"

        def options():
            o = api.get_options()
            assert o["sd_model_checkpoint"], o
            api.set_options({"sd_model_checkpoint": o["sd_model_checkpoint"], "easel_test_option": 7})
            assert api.get_options()["easel_test_option"] == 7

        def progress_and_interrupt():
            out = {}
            # Two images in sequence; interrupted during the second, the job returns both, as A1111 does: the
            # first finished, the second decoded from the sampler's last x0 estimate.
            t = threading.Thread(target=lambda: out.update(r=api.txt2img(prompt="x", width=48, height=32, steps=60, seed=1, n_iter=2)))
            t.start()
            deadline, seen = time.time() + 30, None
            while time.time() < deadline and seen is None:
                p = api.get_progress()
                if p["state"]["job_no"] >= 1 and p["state"]["sampling_step"] > 0:
                    seen = p
                time.sleep(0.05)
            assert seen and 0.5 < seen["progress"] <= 1 and seen["state"]["sampling_steps"] == 60, seen
            api.interrupt()
            t.join(30)
            assert not t.is_alive() and len(out["r"].images) == 2, "the interrupted job did not return its images"
            assert api.get_progress()["progress"] == 0

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="unused", max_retries=0)

        def openai_generate():
            r = client.images.generate(prompt="a red ball", n=2, size="48x32", response_format="b64_json", extra_body={"steps": 2})
            assert len(r.data) == 2 and r.created > 0
            img = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json)))
            assert img.size == (48, 32)
            assert [m.id for m in client.models.list().data], "no models"
            try:
                client.images.generate(prompt="x", size="huge")
                raise AssertionError("a bad size was accepted")
            except openai.BadRequestError as e:
                assert e.body["param"] == "size", e.body

        def openai_edit():
            rgba = init.convert("RGBA")
            m = Image.new("RGBA", (48, 32), (0, 0, 0, 255))
            m.paste((0, 0, 0, 0), (0, 0, 24, 32))  # transparent = edit
            buf = lambda im: (lambda b: (im.save(b, "PNG"), b.getvalue())[1])(io.BytesIO())
            r = client.images.edit(image=("init.png", buf(rgba), "image/png"), mask=("mask.png", buf(m), "image/png"),
                                   prompt="a red ball", n=1, size="48x32", extra_body={"steps": 2})
            out = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json))).convert("RGB")
            assert out.size == (48, 32)

        for name, fn in [("webuiapi txt2img + png-info", txt2img), ("webuiapi img2img", img2img), ("webuiapi inpaint", inpaint),
                         ("webuiapi get/set_options", options), ("webuiapi get_progress + interrupt", progress_and_interrupt),
                         ("openai images.generate", openai_generate), ("openai images.edit", openai_edit)]:
            check(name, fn)
        srv.stop()

        srv = Server(root, "--auth", "alice:pw1,bob:pw2", "--api-key", "key-1")
        servers.append(srv)

        def auth():
            anon = webuiapi.WebUIApi(port=srv.port)
            r = anon.session.get(f"http://127.0.0.1:{srv.port}/sdapi/v1/options")
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic") and "detail" in r.json()
            basic = webuiapi.WebUIApi(port=srv.port, username="bob", password="pw2")
            assert basic.get_options()["sd_model_checkpoint"]
            assert basic.txt2img(prompt="x", width=48, height=32, steps=2).images[0].size == (48, 32)
            bearer = webuiapi.WebUIApi(port=srv.port)
            bearer.session.headers["Authorization"] = "Bearer key-1"
            assert bearer.get_options()["sd_model_checkpoint"]
            wrong = webuiapi.WebUIApi(port=srv.port, username="alice", password="pw2")
            assert wrong.session.get(f"http://127.0.0.1:{srv.port}/sdapi/v1/options").status_code == 401

            base = f"http://127.0.0.1:{srv.port}/v1"
            good = openai.OpenAI(base_url=base, api_key="key-1", max_retries=0)
            assert good.images.generate(prompt="x", size="48x32", extra_body={"steps": 2}).data[0].b64_json
            try:
                openai.OpenAI(base_url=base, api_key="key-2", max_retries=0).models.list()
                raise AssertionError("a wrong key was accepted")
            except openai.AuthenticationError as e:
                assert e.status_code == 401 and "message" in e.body, e.body
            basic_header = "Basic " + base64.b64encode(b"alice:pw1").decode()
            via_basic = openai.OpenAI(base_url=base, api_key="ignored", default_headers={"Authorization": basic_header}, max_retries=0)
            assert via_basic.models.list().data

        check("--auth / --api-key with webuiapi and openai", auth)
    finally:
        for s in servers:
            s.stop()
        if any(e for _, e in results):
            for s in servers:
                print(f"--- {s.log.name}\n{open(s.log.name).read()[-4000:]}")
        shutil.rmtree(root, ignore_errors=True)

    failed = sum(1 for _, e in results if e)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())

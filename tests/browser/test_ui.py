#!/usr/bin/env python3
"""Browser test of easel's web UI, standard library only.

Starts `easel serve` on a free port with a models folder holding the first SD 1.x checkpoint of
tests/data/sd_pipeline_tiny, drives Debian's headless chromium over the DevTools protocol (its
WebSocket, spoken here in a few lines), and checks what a person does: type a prompt, set a 48x32
size and 3 steps, Generate (button, then Ctrl+Enter), watch the progress bar, find the images in the
gallery, recall one's parameters into the form. Each step is saved as a screenshot; the file names
are printed. Chromium and the server are stopped whatever happens.

    tests/browser/test_ui.py [--easel build/easel] [--data tests/data] [--out build/ui-screenshots]
"""
import argparse
import base64
import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- a minimal WebSocket client (RFC 6455: client frames masked, text messages) ----------------

class WebSocket:
    def __init__(self, url, timeout=30):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        status = bytes(self.buf[:end]).split(b"\r\n")[0]
        del self.buf[:end]
        if b" 101 " not in status:
            raise ConnectionError(f"WebSocket handshake refused: {status!r}")

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("WebSocket closed")
        self.buf += chunk

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send(self, text):
        data = text.encode()
        header = bytearray([0x81])
        if len(data) < 126:
            header.append(0x80 | len(data))
        elif len(data) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        mask = os.urandom(4)
        self.sock.sendall(bytes(header) + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(data)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("WebSocket closed by the browser")
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self):
        self.sock.close()


# ---- the DevTools protocol on one page --------------------------------------------------------

class Page:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def wait(self, expression, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.02)
        raise TimeoutError(f"timed out waiting for {what} ({expression})")

    def navigate(self, url):
        self.call("Page.navigate", url=url)
        self.wait(f"location.href === {json.dumps(url)} && document.readyState === 'complete'", f"{url} to load")

    def click(self, selector):
        """A real mouse click in the middle of the element."""
        box = self.eval(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            el.scrollIntoView({{block: "center"}}); const r = el.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def fill(self, selector, text):
        """Focuses the field, selects its contents and types text over them."""
        self.eval(f"(() => {{ const el = document.querySelector({json.dumps(selector)}); el.focus(); el.select(); }})()")
        self.call("Input.insertText", text=str(text))
        value = self.eval(f"document.querySelector({json.dumps(selector)}).value")
        assert value == str(text), f"{selector}: typed {text!r}, the field holds {value!r}"

    def ctrl_enter(self):
        for kind in ("rawKeyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                      windowsVirtualKeyCode=13, modifiers=2)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print(f"screenshot: {path}", flush=True)

    def close(self):
        self.ws.close()


# ---- processes --------------------------------------------------------------------------------

def start(cmd, pattern, what, timeout=20):
    """Starts cmd and returns (process, match of pattern in its stderr); stderr keeps being drained."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    log = []

    def drain():
        for line in proc.stderr:
            log.append(line)
            lines.put(line)
    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        m = re.search(pattern, line)
        if m:
            return proc, m
    stop(proc)
    raise RuntimeError(f"{what} did not start:\n{''.join(log[-20:])}")


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_models_dir(data_dir, models_dir):
    """The set's first SD 1.x single-file checkpoint, with the sidecar giving its head counts."""
    set_dir = os.path.join(data_dir, "sd_pipeline_tiny")
    with open(os.path.join(set_dir, "info.json")) as f:
        info = json.load(f)
    ckpt_dir = os.path.join(models_dir, "Stable-diffusion")
    os.makedirs(ckpt_dir)
    for file, model in info["models"].items():
        if (model["family"] != "sd1" or model["unet"]["diffusers_config"]["in_channels"] != 4
                or not os.path.isfile(os.path.join(set_dir, file))):
            continue
        shutil.copy(os.path.join(set_dir, file), ckpt_dir)
        sidecar = {"text_encoder_heads": model["text_encoder"]["heads"],
                   "unet": {"norm_groups": model["unet"]["norm_groups"]},
                   "vae_norm_groups": model["vae"]["norm_groups"]}
        att = model["unet"]["attention"]
        if att["num_heads"] is not None:
            sidecar["unet"]["num_heads"] = att["num_heads"]
        else:
            sidecar["unet"]["head_dim"] = att["head_dim"]
        with open(os.path.join(ckpt_dir, file + ".easel.json"), "w") as f:
            json.dump(sidecar, f)
        return file
    raise RuntimeError("the set has no SD 1.x single-file checkpoint")


# ---- the test ---------------------------------------------------------------------------------

PROMPT = "a red ball on a wooden table"

# Records every state the progress bar shows, so a generation faster than a screenshot is still seen.
WATCH_PROGRESS = """(() => {
  window.progressSeen = [];
  window.progressObserver?.disconnect();
  const el = document.getElementById("progress");
  const note = () => { if (!el.hidden) window.progressSeen.push(el.dataset.state + ": " + el.querySelector(".progress-text").textContent); };
  window.progressObserver = new MutationObserver(note);
  window.progressObserver.observe(el, {attributes: true, childList: true, subtree: true, characterData: true});
})()"""


def api(base_url, method, path, body=None, ok_codes=(200, 202)):
    """One request to the server's JSON API; returns the answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base_url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code in ok_codes:
            return None
        raise


def previews_available(base_url):
    """Whether the server makes live previews of its running job (current_image or the preview endpoint)."""
    deadline = time.monotonic() + 1.5  # a preview may come a few steps into sampling
    while time.monotonic() < deadline:
        if api(base_url, "GET", "/sdapi/v1/progress").get("current_image"):
            return True
        jobs = api(base_url, "GET", "/easel/v1/jobs?state=running&limit=1")["jobs"]
        if jobs:
            try:
                with urllib.request.urlopen(f"{base_url}/easel/v1/jobs/{jobs[0]['id']}/preview", timeout=5) as r:
                    if r.status == 200 and r.headers.get_content_type().startswith("image/"):
                        return True
            except urllib.error.HTTPError:
                pass
        time.sleep(0.2)
    return False


def run(page, base_url, restart_server, empty_url, model_file, init_png, out):
    shot = lambda name: page.screenshot(os.path.join(out, name))
    page.call("Runtime.enable")
    page.call("Emulation.setDeviceMetricsOverride", width=1100, height=820, deviceScaleFactor=1, mobile=False)
    page.call("Page.enable")
    page.navigate(base_url + "/")
    page.wait("document.querySelector('form[data-mode=txt2img] [name=sampler_name]')?.options.length > 0",
              "the samplers in the form")
    page.wait(f"document.getElementById('current-model').textContent === {json.dumps(model_file)}", "the current model")
    assert page.eval("document.getElementById('no-model').hidden"), "the no-model notice shows although a model is there"
    shot("01_loaded.png")

    form = "form[data-mode=txt2img]"
    page.fill(f"{form} [name=prompt]", PROMPT)
    page.fill(f"{form} [name=negative_prompt]", "blurry")
    page.fill(f"{form} [name=width]", 48)
    page.fill(f"{form} [name=height]", 32)
    page.fill(f"{form} [name=steps]", 3)
    page.fill(f"{form} [name=seed]", 42)
    shot("02_form.png")

    # Generate with the button: the progress bar shows at once, then the image and its infotext.
    page.eval(WATCH_PROGRESS)
    page.click(f"{form} .generate")
    page.wait("!document.getElementById('progress').hidden", "the progress bar")
    shot("03_progress.png")
    page.wait("document.getElementById('progress').dataset.state === 'done'", "the generation to finish", timeout=30)
    page.wait("document.querySelectorAll('#tab-txt2img .images img').length === 1", "the generated image")
    shot("04_result.png")
    infotext = page.eval("document.querySelector('#tab-txt2img .infotext').textContent")
    assert infotext.startswith(PROMPT) and "Seed: 42" in infotext and "Size: 48x32" in infotext, infotext
    size = page.eval("(() => { const i = document.querySelector('#tab-txt2img .images img'); return [i.naturalWidth, i.naturalHeight]; })()")
    assert size == [48, 32], size
    seen = page.eval("window.progressSeen")
    print("progress seen (button):", seen, flush=True)
    # (A job this small can finish before the page hears it run: queued, then done.)
    assert any(s.startswith(("queued", "running")) for s in seen) and seen[-1].startswith("done"), seen
    fill = page.eval("""(() => { const p = document.getElementById('progress');
        return [p.querySelector('.fill').getBoundingClientRect().width, p.querySelector('.bar').getBoundingClientRect().width]; })()""")
    assert abs(fill[0] - fill[1]) < 1, f"the progress bar is not full when the job is done: {fill}"

    # Generate again with Ctrl+Enter from the prompt.
    page.fill(f"{form} [name=seed]", 43)
    page.eval(WATCH_PROGRESS)
    page.eval(f"document.querySelector('{form} [name=prompt]').focus()")
    page.ctrl_enter()
    page.wait("window.progressSeen.some((s) => /^(queued|running)/.test(s))", "the progress bar after Ctrl+Enter")
    page.wait("document.getElementById('progress').dataset.state === 'done'", "the Ctrl+Enter generation", timeout=30)
    page.wait("document.querySelector('#tab-txt2img .infotext').textContent.includes('Seed: 43')", "the second image")
    print("progress seen (Ctrl+Enter):", page.eval("window.progressSeen"), flush=True)
    shot("05_ctrl_enter.png")

    # Both images are in the gallery, newest first; search filters them.
    page.click(".tabs [data-tab=gallery]")
    page.wait("document.querySelectorAll('#gallery .card').length === 2", "two gallery cards")
    first_meta = page.eval("document.querySelector('#gallery .card .meta').textContent")
    assert "seed 43" in first_meta and "48x32" in first_meta, first_meta
    page.wait("[...document.querySelectorAll('#gallery img')].every((i) => i.complete && i.naturalWidth === 48)",
              "the gallery images")
    shot("06_gallery.png")
    page.click("#gallery .card img")  # a click on an image shows its parameters
    page.wait("document.getElementById('pnginfo').open", "the image's parameters")
    assert "Seed: 43" in page.eval("document.querySelector('#pnginfo .infotext').textContent")
    page.click("#pnginfo button[value=close]")
    page.wait("!document.getElementById('pnginfo').open", "the dialog to close")
    page.fill("#gallery-search", "nothing-like-this")
    page.wait("document.querySelectorAll('#gallery .card').length === 0", "the search to filter the cards")
    page.fill("#gallery-search", "RED BALL")  # the server searches the prompts, ignoring case
    page.wait("document.querySelectorAll('#gallery .card').length === 2", "the search to find both images")
    shot("07_search.png")

    # Change the form, then recall the first image's parameters with one click.
    page.click(".tabs [data-tab=txt2img]")
    page.fill(f"{form} [name=prompt]", "something else")
    page.fill(f"{form} [name=width]", 64)
    page.fill(f"{form} [name=seed]", -1)
    page.click(".tabs [data-tab=gallery]")
    page.click("#gallery .card:nth-child(2) [data-action=recall]")  # the first image (seed 42)
    page.wait("!document.getElementById('tab-txt2img').hidden", "the Text→Image tab")
    values = page.eval(f"""(() => {{ const f = document.querySelector('{form}');
        return ['prompt', 'negative_prompt', 'width', 'height', 'steps', 'seed', 'sampler_name'].map((n) => f.elements[n].value); }})()""")
    assert values[:6] == [PROMPT, "blurry", "48", "32", "3", "42"], values
    shot("08_recalled.png")

    # Dropping a generated PNG anywhere shows its parameters; they can go to the form.
    page.fill(f"{form} [name=prompt]", "something else")
    page.eval("""(async () => {
      const blob = await (await fetch(document.querySelector('#gallery .card:nth-child(2) img').src)).blob();
      const data = new DataTransfer();
      data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
      document.querySelector('main').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    })()""")
    page.wait("document.getElementById('pnginfo').open", "the PNG info dialog")
    text = page.eval("document.querySelector('#pnginfo .infotext').textContent")
    assert text.startswith(PROMPT) and "Seed: 42" in text, text
    shot("09_pnginfo.png")
    page.click("#pnginfo [data-action=pnginfo-send]")
    page.wait(f"document.querySelector('{form} [name=prompt]').value === {json.dumps(PROMPT)}", "the PNG's prompt in the form")

    # Image→Image: choose the init image, paint a mask stroke, inpaint.
    page.click(".tabs [data-tab=img2img]")
    i2i = "form[data-mode=img2img]"
    doc = page.call("DOM.getDocument")["root"]["nodeId"]
    node = page.call("DOM.querySelector", nodeId=doc, selector=f"{i2i} [name=init_file]")["nodeId"]
    page.call("DOM.setFileInputFiles", nodeId=node, files=[init_png])
    page.wait(f"!document.querySelector('{i2i} .stack').hidden", "the init image")
    with open(init_png, "rb") as png:  # the form takes the image's width to a multiple of 8 (app.js setInitImage)
        init_width = struct.unpack(">I", png.read(24)[16:20])[0]
    assert page.eval(f"document.querySelector('{i2i} [name=width]').value") == str(max(8, int(init_width / 8 + 0.5) * 8))
    page.fill(f"{i2i} [name=prompt]", "a blue cube")
    page.fill(f"{i2i} [name=steps]", 3)
    page.fill(f"{i2i} [name=denoising_strength]", 0.6)
    box = page.eval(f"(() => {{ const r = document.querySelector('{i2i} .mask-layer').getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }})()")
    for kind, fx in (("mousePressed", 0.3), ("mouseMoved", 0.5), ("mouseMoved", 0.7), ("mouseReleased", 0.7)):
        page.call("Input.dispatchMouseEvent", type=kind, x=box[0] + fx * box[2], y=box[1] + box[3] / 2,
                  button="left", buttons=0 if kind == "mouseReleased" else 1, clickCount=1)
    painted = page.eval(f"""(() => {{ const c = document.querySelector('{i2i} .mask-layer');
        return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((v, i) => i % 4 === 3 && v > 0).length; }})()""")
    assert painted > 0, "the mask stroke painted nothing"
    shot("10_img2img_mask.png")
    page.click(f"{i2i} .generate")
    page.wait("document.querySelectorAll('#tab-img2img .images img').length === 1", "the inpainted image", timeout=30)
    text = page.eval("document.querySelector('#tab-img2img .infotext').textContent")
    assert text.startswith("a blue cube") and "Denoising strength: 0.6" in text and "Mask blur: 4" in text, text
    shot("11_img2img_result.png")

    # Interrupt a long generation: it ends at once with the image so far (A1111: from the sampler's
    # last estimate). While it runs, a live preview shows if the server makes them.
    page.click(".tabs [data-tab=txt2img]")
    page.fill(f"{form} [name=steps]", 150)
    page.fill(f"{form} [name=width]", 192)  # a few seconds of sampling: long enough to interrupt anywhere
    page.fill(f"{form} [name=height]", 192)
    page.eval(WATCH_PROGRESS)
    page.click(f"{form} .generate")
    page.wait("window.progressSeen.some((s) => /Step [1-9]/.test(s))", "a sampling step of the long generation")
    if previews_available(base_url):
        page.wait("!document.querySelector('#tab-txt2img .preview').hidden && document.querySelector('#tab-txt2img .preview').naturalWidth > 0",
                  "the live preview", timeout=5)
        shot("12a_preview.png")
    else:
        print("note: this server sends no live previews (no preview event or current_image yet); preview check skipped",
              flush=True)
    page.click("#interrupt")
    page.wait("document.getElementById('progress').dataset.state === 'done'", "the interrupted generation", timeout=30)
    steps_seen = [int(m) for s in page.eval("window.progressSeen") for m in re.findall(r"Step (\d+)/150", s)]
    print(f"interrupted after step {max(steps_seen)} of 150", flush=True)
    assert max(steps_seen) < 150, steps_seen
    status = page.eval("document.querySelector('#progress .progress-text').textContent")
    assert status.startswith("Interrupted: 1 image"), status
    text = page.eval("document.querySelector('#tab-txt2img .infotext').textContent")
    assert "Steps: 150" in text and "Size: 192x192" in text, text
    assert page.eval("document.getElementById('notice').hidden"), "the interrupt showed an error"
    assert page.eval("document.querySelector('#tab-txt2img .preview').hidden"), "the preview stays after the job"
    shot("12_interrupted.png")

    # The queue panel lists every client's queued and running jobs; Cancel cancels one.
    submitted = []
    try:
        for prompt in ("a long job that runs", "a job that waits in the queue"):
            submitted.append(api(base_url, "POST", "/easel/v1/jobs", {"kind": "txt2img", "request": {
                "prompt": prompt, "steps": 150, "width": 256, "height": 256, "seed": 1}})["id"])
        running, waiting = submitted
        page.wait(f"document.querySelector('#queue li[data-id=\"{waiting}\"]')?.dataset.state === 'queued' && "
                  f"document.querySelector('#queue li[data-id=\"{running}\"]')?.dataset.state === 'running'",
                  "the queue panel with a running and a queued job")
        page.wait(f"document.querySelector('#queue li[data-id=\"{waiting}\"] .prompt').textContent.includes('a job that waits')",
                  "the queued job's prompt (looked up once)")
        shot("13_queue.png")
        page.click(f'#queue li[data-id="{waiting}"] [data-action=cancel-job]')
        page.wait(f"!document.querySelector('#queue li[data-id=\"{waiting}\"]')", "the cancelled job to leave the queue")
        state = api(base_url, "GET", f"/easel/v1/jobs/{waiting}")["state"]
        assert state == "cancelled", f"the queued job is {state} after Cancel"
        page.click(f'#queue li[data-id="{running}"] [data-action=cancel-job]')  # a running job stops at its next step
        page.wait("document.getElementById('queue').hidden", "the queue panel to empty")
        state = api(base_url, "GET", f"/easel/v1/jobs/{running}")["state"]
        assert state == "cancelled", f"the running job is {state} after Cancel"
    finally:
        for job in submitted:
            api(base_url, "DELETE", f"/easel/v1/jobs/{job}", ok_codes=(200, 202, 404, 409))

    # The history comes from the server: after a page reload, and after a server restart.
    page.navigate(base_url + "/")
    page.click(".tabs [data-tab=gallery]")
    page.wait("document.querySelectorAll('#gallery .card').length === 4", "the four images after a page reload")
    stored = page.eval("JSON.stringify(Object.entries(localStorage))")
    assert "data:image" not in stored and "easel.history\"" not in stored, f"images in localStorage: {stored[:200]}"
    base_url = restart_server()
    page.navigate(base_url + "/")
    page.click(".tabs [data-tab=gallery]")
    page.wait("document.querySelectorAll('#gallery .card').length === 4", "the four images after a server restart")
    page.fill("#gallery-search", "blue cube")
    page.wait("document.querySelectorAll('#gallery .card').length === 1", "the img2img image by its prompt")
    page.wait("[...document.querySelectorAll('#gallery img')].every((i) => i.complete && i.naturalWidth > 0)", "its image")
    shot("14_history_restarted.png")
    page.fill("#gallery-search", "")
    page.wait("document.querySelectorAll('#gallery .card').length === 4", "all images again")

    # Without the event stream (a proxy that drops it, say), progress and the result come by polling.
    page.call("Network.enable")
    page.call("Network.setBlockedURLs", urls=["*/easel/v1/events*"])
    page.navigate(base_url + "/")
    page.wait("document.querySelector('form[data-mode=txt2img] [name=sampler_name]')?.options.length > 0", "the form")
    for name, value in (("prompt", "polled progress"), ("width", 48), ("height", 32), ("steps", 3), ("seed", 7)):
        page.fill(f"{form} [name={name}]", value)
    page.click(f"{form} .generate")
    page.wait("document.getElementById('progress').dataset.state === 'done'", "the generation without events", timeout=20)
    page.wait("document.querySelector('#tab-txt2img .infotext').textContent.startsWith('polled progress')", "its image")
    page.call("Network.setBlockedURLs", urls=[])

    # Models tab, then the same page in a narrow window.
    page.click(".tabs [data-tab=models]")
    page.wait(f"document.querySelector('table.models tr.current')?.dataset.title.startsWith({json.dumps(model_file)})",
              "the current model in the Models tab")
    shot("15_models.png")
    page.click(".tabs [data-tab=txt2img]")
    page.call("Emulation.setDeviceMetricsOverride", width=380, height=800, deviceScaleFactor=1, mobile=True)
    overflow = page.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a narrow window"
    shot("16_narrow.png")

    # A server without models says where to put one.
    page.call("Emulation.setDeviceMetricsOverride", width=1100, height=500, deviceScaleFactor=1, mobile=False)
    page.navigate(empty_url + "/")
    page.wait("!document.getElementById('no-model').hidden", "the no-model notice")
    notice = page.eval("document.getElementById('no-model').textContent")
    assert "no-model" in notice and "Stable-diffusion" in notice and "Refresh" in notice, notice
    shot("17_no_model.png")

    errors = [e["params"] for e in page.events if e.get("method") == "Runtime.exceptionThrown"]
    errors += [e["params"] for e in page.events
               if e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error"]
    assert not errors, f"the page logged errors: {errors}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--easel", default=os.path.join(ROOT, "build", "easel"))
    ap.add_argument("--data", default=os.environ.get("EASEL_TEST_DATA", os.path.join(ROOT, "tests", "data")))
    ap.add_argument("--out", help="screenshot folder (default: ui-screenshots beside the easel binary)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    out = os.path.abspath(args.out or os.path.join(os.path.dirname(args.easel), "ui-screenshots"))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    def on_alarm(*_):
        raise TimeoutError("the browser test ran past its 90 s limit")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed: still stop chromium and the server
    signal.alarm(90)

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="easel-ui-test-")
    servers = {}
    browser = page = None
    try:
        def serve(name):
            d = os.path.join(tmp, name)
            return start([args.easel, "--threads", "2", "serve", "--port", "0", "--models-dir", os.path.join(d, "models"),
                          "--outputs-dir", os.path.join(d, "outputs"), "--data-dir", os.path.join(d, "data")],
                         r"serving on (http://[\d.]+:\d+)", "easel serve")
        model_file = make_models_dir(args.data, os.path.join(tmp, "with-model", "models"))
        servers["with-model"], m = serve("with-model")
        base_url = m.group(1)
        servers["no-model"], m = serve("no-model")
        empty_url = m.group(1)

        def restart_server():  # the same folders and data: the job history must come back
            stop(servers.pop("with-model"))
            servers["with-model"], m = serve("with-model")
            return m.group(1)
        print(f"easel serve: {base_url}", flush=True)
        browser, m = start([args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--no-default-browser-check", "--remote-debugging-port=0",
                            f"--user-data-dir={os.path.join(tmp, 'chromium')}", "about:blank"],
                           r"DevTools listening on ws://[\d.]+:(\d+)/", "chromium")
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = Page(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"))
        set_dir = os.path.join(args.data, "sd_pipeline_tiny")
        cases = json.load(open(os.path.join(set_dir, "cases.json")))["cases"]
        init_png = os.path.join(set_dir, next(c["request"]["init_images"][0] for c in cases.values()
                                              if "init_images" in c["request"]))  # the first case's with one
        run(page, base_url, restart_server, empty_url, model_file, init_png, out)
        print(f"PASS browser UI test in {time.monotonic() - started:.1f} s; screenshots in {out}")
        return 0
    except Exception as e:
        if page is not None:
            try:
                page.screenshot(os.path.join(out, "failure.png"))
            except Exception:
                pass
        where = traceback.extract_tb(e.__traceback__)[-1]
        print(f"FAIL browser UI test (line {where.lineno}: {where.line}): {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if page is not None:
            page.close()
        stop(browser)
        for proc in servers.values():
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Load test on loopback: N visitors, each in its own process, draw digits for S seconds, with or
without a training run streaming beside them; or the capacity: the most visitors whose probabilities stay at
p95 <= 1 s with no failure.

    ALEXNET_DEMO_DATA=../shared/data python bench/load.py --clients 20 --seconds 30   (tests run a short one)
    ALEXNET_DEMO_DATA=../shared/data python bench/load.py --capacity 20,30,40,60,80 --training both \\
        --app /tmp/baseline --app .        (a baseline checkout beside this one, in one run)

Each visitor sends what the page sends for a stroke (PageVisitor: /classify_digit with the drawing, or an older
app's Sketchpad pictures and then the event, which streams the probabilities and then what the network sees and the
top channels; then the two pictures; `--client gradio_client`: the same event as an API caller sends it). Reports
failed requests, p50/p95 time to the probabilities and to the pictures, and the training run's images/s against the
same run alone. Bounded in count and time; 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

TRAIN_FORM = dict(dataset="mnist", epochs=3, batch_size=32, lr=3e-4, optimizer="adam", schedule="none", subset=3200,
                  input_size=65, augment=False, amp=False)


def connect(url: str):
    """A gradio_client visitor. ssl_verify=False: this is plain http on loopback, and otherwise gradio_client builds
    a certificate-verifying TLS context (~40 ms of CPU) for every file it uploads or downloads, seven per answer,
    which measured the client more than the app (one visitor: 590 ms a request with it, 267 ms without)."""
    from gradio_client import Client
    return Client(url, verbose=False, ssl_verify=False)


def digit_png(folder: Path, visitor: int = 0) -> str:
    """A "1" of a different stroke width for each visitor, so that no two visitors' digits are alike once cropped
    and centred, drawn as the Sketchpad sends it: black strokes on a transparent 480x480 RGBA layer. (Identical
    requests give byte-identical outputs, which gradio 6.31 writes to one cache path; see the app's note on that.)"""
    from PIL import Image
    canvas = np.zeros((480, 480, 4), np.uint8)
    canvas[70:380, 170:194 + visitor % 60] = (0, 0, 0, 255)
    path = folder / f"load-digit-{visitor}.png"
    Image.fromarray(canvas, "RGBA").save(path)
    return str(path)


def data_url(png: str) -> str:
    """The PNG file `png` as the app's drawing pad sends it (ui/pad.py; preprocessing.data_url, which would import
    torch into every visitor's process)."""
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()


def _images_per_s(outputs) -> list[float]:
    return [float(o[2].split(" images/s")[0].split("· ")[-1]) for o in outputs
            if o[2] and o[2].startswith("Step") and "images/s" in o[2]]


def training_alone(url: str, seconds: float) -> list[float]:
    job = connect(url).submit(**TRAIN_FORM, api_name="/train")
    time.sleep(seconds)
    rates = _images_per_s(job.outputs())
    job.cancel()
    return rates


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(x * 1e3 for x in seconds)
    return {"p50_ms": statistics.median(ms) if ms else None, "p95_ms": ms[int(0.95 * (len(ms) - 1))] if ms else None}


class PageVisitor:
    """What the page itself sends for one stroke, with httpx as the browser, as gradio 6.31's page was seen to
    (tests/test_browser.py). Apps with the drawing pad (ui/pad.py): the event joined to the queue with the drawing's
    PNG as a data URL, its answer read from the session's event stream (the probabilities, then the pictures), the
    two pictures fetched as <img> do. Apps before, with a Sketchpad: its three pictures (background, composite,
    layer) each POSTed to the editor's accept_blobs and uploaded for its own value, once before the stroke's event
    and twice more once it has started (9 uploads; 24 for apps whose pictures came in a chained event); the event
    joined to the queue naming the editor's blobs, its answer read from the session's event stream (the
    probabilities, then the pictures); the two pictures fetched as <img> do. gradio_client sends none of the editor's
    blobs and one upload a picture."""

    UPLOADS = 3  # each picture's uploads a stroke beside its blob, with one event a stroke (apps since 2026-12-02)

    def __init__(self, url: str, png: str):
        import io
        import uuid

        import httpx
        from PIL import Image
        self.http = httpx.Client(base_url=url.rstrip("/") + "/", timeout=60)
        config = self.http.get("config").json()
        self.api = config.get("api_prefix", "/gradio_api").strip("/") + "/"
        self.events = {d.get("api_name"): d for d in config["dependencies"]}
        self.on_load = [d for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"])]
        # apps before 2026-12-02 drew the pictures in a second event chained to the first, for which the page
        # uploaded the pictures 8 times each: 24 uploads a stroke, measured in the browser
        self.uploads = self.UPLOADS if "digit_panel" not in self.events else 8
        kinds = {c["id"]: c.get("type") for c in config["components"]}
        # apps with the drawing pad (ui/pad.py): its PNG, as a data URL, is the event's own data
        self.pad = kinds.get(self.events["classify_digit"]["inputs"][0]) == "html"
        self.session = uuid.uuid4().hex[:11]  # the page's session hash: the answer kept for the pictures lives there
        blank = io.BytesIO()
        Image.new("RGBA", (480, 480)).save(blank, "PNG")  # the editor's empty background
        drawing = Path(png).read_bytes()
        self.data_url = data_url(png)
        # (the editor's kind, the file name it sends, the PNG)
        self.pictures = [("background", "background.png", blank.getvalue()), ("composite", "composite.png", drawing),
                         ("layer", "layer_0.png", drawing)]

    def open(self) -> None:
        """What the page runs once it opens, before any stroke: the app's load events (which also make the
        visitor's session on the app: ~16 ms of its CPU each, AMD EPYC). Without them the first strokes of every
        visitor paid for their sessions inside the measured time."""
        for event in self.on_load:
            list(self._event(event, [None] * len(event["inputs"])))

    def _event(self, api_name: str | dict, data: list):
        """Yields the event's outputs (diffs applied) as they stream in; None for the page's States. `api_name`:
        the event's name, or its dependency from the config."""
        from gradio_client.utils import apply_diff
        event = self.events[api_name] if isinstance(api_name, str) else api_name
        body = {"data": data, "event_data": None, "fn_index": event["id"], "trigger_id": event["targets"][0][0],
                "session_hash": self.session}
        if event.get("queue") is False:  # an event off the queue: the page POSTs it and gets its answer back
            answered = self.http.post(f"{self.api}run/predict", json=body)
            if answered.status_code != 200:
                raise RuntimeError(f"{event.get('api_name')} failed: {answered.text[:200]}")
            yield answered.json()["data"]
            return
        joined = self.http.post(f"{self.api}queue/join", json=body)
        joined.raise_for_status()
        event_id, outputs = joined.json()["event_id"], None
        with self.http.stream("GET", f"{self.api}queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("event_id") != event_id:
                    continue
                if message.get("msg") == "process_generating":
                    data = message["output"]["data"]
                    outputs = data if outputs is None else [apply_diff(o, d) for o, d in zip(outputs, data)]
                    yield outputs
                elif message.get("msg") == "process_completed":
                    if not message.get("success"):
                        raise RuntimeError(f"{event.get('api_name')} failed: {str(message)[:200]}")
                    if outputs is None:  # not a generator: its one answer
                        yield message["output"]["data"]
                    return
        raise RuntimeError(f"{event.get('api_name')}: the event stream ended without its answer")

    def _upload(self, name: str, picture: bytes):
        self.http.post(f"{self.api}upload", files={"files": (name, picture, "image/png")}).raise_for_status()

    def stroke(self) -> tuple[dict, float, list]:
        """(the probabilities, s to them, the pictures) for one stroke."""
        import uuid
        t0 = time.perf_counter()
        blobs, sketch = uuid.uuid4().hex[:11], self.events["classify_digit"]["targets"][0][0]
        for kind, name, picture in [] if self.pad else self.pictures:
            self.http.post(f"{self.api}component_server/", files={"file": (name, picture, "image/png")}, data={
                "id": blobs, "type": kind, "index": "0" if kind == "layer" else "null", "component_id": str(sketch),
                "session_hash": self.session, "fn_name": "accept_blobs"}).raise_for_status()
            self._upload(name, picture)
        first = self.data_url if self.pad else {"id": blobs}
        inputs = [first] + [None] * (len(self.events["classify_digit"]["inputs"]) - 1)
        if len(inputs) == 3:
            inputs[2] = False  # every channel's grids: closed
        updates = self._event("classify_digit", inputs)
        first = next(updates)  # the probabilities (with the pictures too, when the event answers once)
        label = first[0]
        to_probabilities = time.perf_counter() - t0
        for _, name, picture in [] if self.pad else self.pictures:  # the editor's other uploads, once it started
            for _ in range(self.uploads - 1):
                self._upload(name, picture)
        if "digit_panel" in self.events:  # apps before 2026-12-02: the pictures in an event of their own
            pictures = list(self._event("digit_panel", [None, False]))[-1][:2]
        else:
            pictures = ([first] + list(updates))[-1][3:5]
        for picture in pictures:  # as <img> does; a picture inline in the answer (a data URL) needs no request
            if not picture["url"].startswith("data:"):
                self.http.get(picture["url"]).raise_for_status()
        return label, to_probabilities, pictures


def visitor_process(url: str, index: int, folder: str, start_at: float, deadline: float, results,
                    think: float = 0.0, client_kind: str = "page", jitter: bool = False) -> None:
    """One visitor in its own process (as real visitors are: their clients never share the bench's GIL): draws
    until the deadline, each answer as the page gets it (probabilities, then the pictures), then `think` s before
    the next stroke (0: at once, a visitor drawing flat out); reports ("ok", seconds to the probabilities, seconds
    to the pictures) or ("failed", why) for each stroke. `client_kind` "page": the page's own requests
    (PageVisitor); "gradio_client": an API caller's (lighter: one upload a stroke, no editor blobs; this bench's
    visitor until 2026-12-02)."""
    from gradio_client import handle_file

    path = digit_png(Path(folder), index)
    try:
        if client_kind == "page":
            page = PageVisitor(url, path)
            page.open()
            stroke = page.stroke
        else:
            client = connect(url)
            endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
            if endpoints["/classify_digit"]["parameters"][0]["python_type"]["type"] == "str":  # the drawing pad's
                value = data_url(path)
            else:  # apps before the drawing pad: a Sketchpad
                value = {"background": handle_file(path), "layers": [], "composite": handle_file(path)}

            def stroke():
                t0 = time.perf_counter()
                if "/digit_panel" in endpoints:  # apps before 2026-12-02: the pictures in an event of their own
                    label = client.predict(value, api_name="/classify_digit")[0]
                    to_probabilities = time.perf_counter() - t0
                    return label, to_probabilities, client.predict(False, api_name="/digit_panel")[:2]
                job = client.submit(value, False, api_name="/classify_digit")
                label = next(iter(job))[0]  # the first update: the probabilities
                to_probabilities = time.perf_counter() - t0
                return label, to_probabilities, job.result()[2:4]
    except Exception as e:  # a visitor that cannot even open the page is a failure too
        results.put(("failed", f"connect: {e!r}"))
        return
    rng = np.random.default_rng(index)
    # jitter: visitors out of step, as real ones are (each's first stroke within the first think time, each pause
    # 0.5-1.5x think); without it every visitor starts at once and, all waiting the same, they keep drawing in waves
    start_at += rng.uniform(0, think) if jitter else 0.0
    time.sleep(max(0.0, start_at - time.monotonic()))  # every visitor starts drawing at once
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_at_start = usage.ru_utime + usage.ru_stime
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            label, to_probabilities, pictures = stroke()
            ok = isinstance(label, dict) and bool(label.get("confidences")) and all(pictures)  # an answer
        except Exception as e:  # a failed request is what this test counts
            ok, label = False, repr(e)
        results.put(("ok", to_probabilities, time.perf_counter() - t0) if ok else ("failed", str(label)[:300]))
        pause = think * rng.uniform(0.5, 1.5) if jitter else think
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this visitor's own CPU: it shares the app's cores here
    results.put(("cpu", usage.ru_utime + usage.ru_stime - cpu_at_start))


def cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) process `pid` has used so far; None without a pid or /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError, ValueError, IndexError):
        return None


def settle(pid: int, quiet_s: float = 3.0, cpu_share: float = 0.05, timeout: float = 180) -> None:
    """Waits until process `pid` has used under `cpu_share` of a core for `quiet_s` s: its warm-up is over. A fixed
    10 s was not enough on a slower CPU (AMD EPYC: the number-format check still ran), and the first step then
    measured the warm-up, not the visitors (an app's first step, no run: p95 1,058 ms at 20 visitors; the same app
    held 40 once a 20 s training run had come first)."""
    deadline = time.monotonic() + timeout
    time.sleep(2)
    while time.monotonic() < deadline:
        before = cpu_s(pid)
        time.sleep(quiet_s)
        after = cpu_s(pid)
        if before is None or after is None or after - before < cpu_share * quiet_s:
            return


def run_load(url: str, clients: int, seconds: float, folder: Path, with_training: bool = True,
             think: float = 0.0, server_pid: int | None = None, client_kind: str = "page",
             jitter: bool = False) -> dict:
    """`clients` visitors, each in its own process, draw for `seconds` (after all have connected), `think` s
    between an answer and the next stroke; returns counts, both latencies (to the probabilities, to the panel)
    and the training run's rates. With `server_pid`, also the app's CPU ms per answer: the visitors' clients
    share this machine's cores with the app, so that figure says what the app itself costs."""
    import multiprocessing

    context = multiprocessing.get_context("fork")  # gradio_client is imported once here, not once per visitor
    import gradio_client  # noqa: F401
    results = context.Queue()
    start_at = time.monotonic() + 5 + 0.1 * clients  # time for every process to connect before anyone draws
    deadline = start_at + seconds
    job = connect(url).submit(**TRAIN_FORM, api_name="/train") if with_training else None
    processes = [context.Process(target=visitor_process, daemon=True,
                                 args=(url, i, str(folder), start_at, deadline, results, think, client_kind, jitter))
                 for i in range(clients)]
    for p in processes:
        p.start()
    time.sleep(max(0.0, start_at - time.monotonic()))
    server_cpu_at_start = cpu_s(server_pid)
    latencies, panels, failures, visitors_cpu = [], [], [], 0.0
    while any(p.is_alive() for p in processes) or not results.empty():
        try:
            item = results.get(timeout=0.5)
        except Exception:  # queue.Empty: check the processes again
            if time.monotonic() > deadline + 120:
                break
            continue
        if item[0] == "cpu":
            visitors_cpu += item[1]
        elif item[0] == "ok":
            latencies.append(item[1])
            panels.append(item[2])
        else:
            failures.append(item[1])
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            failures.append("a visitor still waiting 120 s after the deadline")
    server_cpu = cpu_s(server_pid) - server_cpu_at_start if server_cpu_at_start is not None else None
    rates = _images_per_s(job.outputs()) if job else []
    if job:
        job.cancel()
    to_probabilities, to_panel = percentiles(latencies), percentiles(panels)
    return {"clients": clients, "seconds": seconds, "think_s": think, "answers": len(latencies) + len(failures),
            "answers_per_s": len(latencies) / seconds,
            "failed": len(failures), "failures": failures[:5],
            "p50_ms": to_probabilities["p50_ms"], "p95_ms": to_probabilities["p95_ms"],  # to the probabilities
            "panel_p50_ms": to_panel["p50_ms"], "panel_p95_ms": to_panel["p95_ms"],  # to the full panel
            "train_images_per_s_under_load": statistics.median(rates) if rates else None,
            # the app's CPU per answer (probabilities + panel), training included when a run streams beside
            "server_cpu_ms_per_answer": server_cpu * 1e3 / len(latencies) if server_cpu and latencies else None,
            "visitors_cpu_ms_per_answer": visitors_cpu * 1e3 / len(latencies) if latencies else None}


def meets(result: dict, p95_ms: float) -> bool:
    return result["failed"] == 0 and result["p95_ms"] is not None and result["p95_ms"] <= p95_ms


def capacity(url: str, counts: list[int], seconds: float, folder: Path, with_training: bool, p95_ms: float,
             think: float = 0.0, server_pid: int | None = None, client_kind: str = "page", jitter: bool = False):
    """The largest visitor count in `counts` (ascending) whose probabilities stay at p95 <= `p95_ms` with no
    failure; stops at the first count that misses. (largest or 0, every step's result)"""
    steps, largest = [], 0
    for n in counts:
        result = run_load(url, n, seconds, folder, with_training=with_training, think=think, server_pid=server_pid,
                          client_kind=client_kind, jitter=jitter)
        steps.append(result)
        print(json.dumps({k: result[k] for k in ("clients", "failed", "p50_ms", "p95_ms", "answers_per_s",
                                                 "server_cpu_ms_per_answer", "visitors_cpu_ms_per_answer")}),
              flush=True)
        if not meets(result, p95_ms):
            break
        largest = n
        time.sleep(2)
    return largest, steps


def serve_app(timeout: float = 180, app_dir: Path = ROOT):
    """`python app.py` (of `app_dir`: this checkout, or another one to compare with) in its own process on a free
    loopback port (as deployed); (server, url, client) once it accepts a client."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    if env.get("ALEXNET_DEMO_DATA"):  # absolute: the app runs in `app_dir`, where a relative path means another place
        env["ALEXNET_DEMO_DATA"] = str(Path(env["ALEXNET_DEMO_DATA"]).resolve())
    server = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return server, url, connect(url)
        except Exception:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the app did not come up on {url} within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    from alexnet_demo.staging import cpu_name

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20, help="visitors, each in its own process")
    parser.add_argument("--capacity", default=None, metavar="N,N,...",
                        help="instead of --clients: these visitor counts in turn, up to the first whose "
                             "probabilities miss p95 <= --p95-ms or fail; reports the largest that held")
    parser.add_argument("--p95-ms", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=30, help="drawing time at each visitor count")
    parser.add_argument("--think", type=float, default=0.0,
                        help="s a visitor takes between seeing an answer and the next stroke's answer request "
                             "(drawing it); 0: flat out, the harshest load")
    parser.add_argument("--jitter", action="store_true",
                        help="visitors out of step: each starts within the first --think s and pauses 0.5-1.5x "
                             "--think (without it all start at once and keep drawing in waves)")
    parser.add_argument("--training", choices=("with", "without", "both"), default="with",
                        help="a training run streaming beside the visitors, or not, or each in turn")
    parser.add_argument("--no-training", action="store_const", const="without", dest="training")
    parser.add_argument("--app", action="append", type=Path, default=None, metavar="DIR",
                        help="checkout whose app.py to serve (repeat to compare, e.g. a baseline commit's "
                             "`git worktree`); default: this one")
    parser.add_argument("--client", choices=("page", "gradio_client"), default="page",
                        help="each visitor's requests: the page's own (the drawing in the event; an older app's "
                             "Sketchpad blobs and uploads), or an API caller's through gradio_client")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    modes = {"with": [True], "without": [False], "both": [False, True]}[args.training]
    rows = []
    for app_dir in args.app or [ROOT]:
        for with_training in modes:
            server, url, _ = serve_app(app_dir=app_dir.resolve())
            try:
                settle(server.pid)  # the app's warm-up (model loads, the number-format check) ends before visitors come
                alone = training_alone(url, min(args.seconds, 20)) if with_training else []
                time.sleep(2)
                if args.capacity:
                    counts = sorted(int(n) for n in args.capacity.split(","))
                    largest, steps = capacity(url, counts, args.seconds, args.out, with_training, args.p95_ms,
                                              args.think, server.pid, args.client, args.jitter)
                    row = {"largest_visitors": largest, "steps": steps}
                else:
                    row = run_load(url, args.clients, args.seconds, args.out, with_training=with_training,
                                   think=args.think, server_pid=server.pid, client_kind=args.client,
                                   jitter=args.jitter)
            finally:
                server.terminate()
                server.wait(timeout=30)
            row.update(app=str(app_dir), training=with_training,
                       train_images_per_s_alone=statistics.median(alone) if alone else None)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"rows": rows, "p95_target_ms": args.p95_ms, "jitter": args.jitter, "cpu": cpu_name(),
              "cores": os.cpu_count(),
              "server": "python app.py in its own process", "visitors": f"each in its own process, {args.client}"}
    (args.out / "load.json").write_text(json.dumps(result, indent=2))
    for row in rows:
        what = f"largest {row['largest_visitors']} visitors" if "largest_visitors" in row else \
            f"{row['clients']} visitors: p95 {row['p95_ms']} ms, {row['failed']} failed"
        print(f"{row['app']}, {'with' if row['training'] else 'without'} a run: {what}")
    ok = all(r.get("largest_visitors", 1) > 0 and all(s["failed"] == 0 for s in r.get("steps", [r])[:-1])
             for r in rows) if args.capacity else all(r["failed"] == 0 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

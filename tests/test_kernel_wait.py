"""`wait_while` (and so `trainer.join()`) in the installed ipykernel, with this test as the frontend: a widget click
sent while a cell waits is handled at once, also when it comes on a kernel subshell (JupyterLab 4.6 sends widget
messages there, and ipykernel 7.4 may route them back to the main shell), and a cell queued meanwhile still runs,
after the waiting one."""
import os, time
from pathlib import Path
import pytest

pytest.importorskip("ipykernel"); pytest.importorskip("ipywidgets")
from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60     # generous: the machine may be shared

@pytest.fixture
def kernel(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), IPYTHONDIR=str(tmp_path/"ipy"))
    env.pop("IN_TEST", None)
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try: yield kc
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)

def _run(kc, code) -> str:
    "Execute `code`, return its stdout; fail on an error."
    out = []
    reply = kc.execute_interactive(code, timeout=TIMEOUT, output_hook=lambda m: out.append(m["content"].get("text", "")))
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)

def _started(kc, msg_id):
    "Wait until the kernel has begun executing the request `msg_id`."
    t0 = time.time()
    while time.time() - t0 < TIMEOUT:
        m = kc.get_iopub_msg(timeout=TIMEOUT)
        if m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == msg_id: return
    raise AssertionError("the cell did not start")

def _subshell(kc):
    "A new kernel subshell's id (as JupyterLab creates one for widget messages), or None when the kernel has none."
    info = kc.kernel_info(reply=True, timeout=TIMEOUT)["content"]
    if "kernel subshells" not in info.get("supported_features", []): return None
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    while True:
        r = kc.control_channel.get_msg(timeout=TIMEOUT)
        if r["parent_header"].get("msg_id") == msg["header"]["msg_id"]: return r["content"]["subshell_id"]

@pytest.mark.parametrize("channel", ["main shell", "subshell"])
def test_click_while_waiting(kernel, channel):
    kc = kernel
    sub = _subshell(kc) if channel == "subshell" else None
    if channel == "subshell" and sub is None: pytest.skip("this ipykernel has no subshells")
    comm_id = _run(kc, """import threading, ipywidgets as W
from sage_nb.kernel_wait import wait_while
clicked, order = threading.Event(), []
b = W.Button(description="Stop"); b.on_click(lambda _: clicked.set())
b.description = "Stop!"         # the widget sends from the main shell, as a cell changing it does
print(b.comm.comm_id, end="")""").strip()
    waiting = kc.execute("wait_while(lambda: not clicked.is_set(), poll=0.05); order.append('waited')")
    _started(kc, waiting)
    queued = kc.execute("order.append('queued')")           # a cell run meanwhile: held back, not lost
    click = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}})
    if sub is not None: click["header"]["subshell_id"] = sub
    kc.shell_channel.send(click)
    replies = []
    while len(replies) < 2:    # each reply within TIMEOUT: without the click handled, the waiting cell never returns
        r = kc.get_shell_msg(timeout=TIMEOUT)
        if r["parent_header"].get("msg_id") in (waiting, queued): replies.append((r["parent_header"]["msg_id"], r["content"]["status"]))
    assert replies == [(waiting, "ok"), (queued, "ok")], replies
    assert _run(kc, "print(order, end='')") == "['waited', 'queued']"

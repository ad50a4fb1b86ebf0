"""Start the README's run command with no service URLs, wait for /readyz, stop it, check nothing is left."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil

run_cmd = sys.argv[1]
instance = tempfile.mkdtemp(prefix="aitutor-smoke-")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = {
    k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "TEST_REDIS_URL"}
}
env.update(INSTANCE_PATH=instance, PORT=str(port))
# exec: the signal reaches python app.py itself, as Ctrl-C would.
exec_cmd = run_cmd.replace("&& .venv/bin/python app.py", "&& exec .venv/bin/python app.py")
if exec_cmd == run_cmd:
    sys.exit(f"the README's run command no longer ends with '&& .venv/bin/python app.py': {run_cmd}")
proc = subprocess.Popen(["bash", "-c", exec_cmd], env=env)
seen: set[psutil.Process] = set()
url = f"http://127.0.0.1:{port}/readyz"
deadline = time.monotonic() + 300
ready = False
while time.monotonic() < deadline and proc.poll() is None:
    try:
        seen.update(psutil.Process(proc.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        pass
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                ready = True
                break
    except OSError:
        pass
    time.sleep(0.5)
seen.update(psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else [])
print(f"readyz 200: {ready}; processes under app.py: {len(seen)}")
proc.send_signal(signal.SIGINT)
try:
    proc.wait(60)
except subprocess.TimeoutExpired:
    print("app.py did not stop within 60 s")
    proc.kill()
    sys.exit(1)


def leftovers() -> list[str]:
    alive = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in psutil.process_iter(["cmdline"]):
        try:
            if instance in " ".join(p.info["cmdline"] or []):
                alive.append(p)
        except psutil.Error:
            pass
    return sorted({f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in alive if p.is_running()})


time.sleep(1)
left = leftovers()
if left:
    print("still running after stop:\n  " + "\n  ".join(left))
    sys.exit(1)
if not ready:
    print("app.py never answered /readyz with 200")
    sys.exit(1)
print(f"smoke passed: ready, stopped with exit code {proc.returncode}, nothing left running")

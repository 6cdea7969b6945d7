"""The console scripts as forks of one process that imported TensorFlow once (`spawn`, `forked`), and the tiny
export they read."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

from progan_tf import export
from test_export import TINY, tiny_generator

NO_PROXY_ENV = {**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()}, "TF_CPP_MIN_LOG_LEVEL": "3"}


def tiny_export(root):
    """The 16x16 generator of seed 3, exported as version 1 of `root`/models/tiny (5000 images seen).

    Returns:
      (the generator, the export's base directory).
    """
    gs = tiny_generator(seed=3)
    base = root / "models" / "tiny"
    export.export_generator(gs, TINY, base / "1", {"images_seen": 5000})
    return gs, base


ZYGOTE = textwrap.dedent("""
    import json, os, runpy, sys, traceback
    import progan_tf  # noqa: F401 (TensorFlow, imported once for every process forked below)

    def child(job):
        if job["new_session"]:  # as Popen's start_new_session: killpg reaches it and its workers only
            os.setsid()
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, job["out"]), (2, job["err"])):  # FIFOs: each open waits for the test to read it
            opened = os.open(path, os.O_WRONLY)
            os.dup2(opened, fd)
            os.close(opened)
        try:
            if "tool" in job:
                sys.argv = ["", *job["args"]]
                runpy.run_module("progan_tf.cli." + job["tool"], run_name="__main__", alter_sys=True)
            else:
                sys.argv = ["-c", *job["args"]]
                exec(compile(job["code"], "<string>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as e:  # as Python itself turns it into an exit code
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    for line in sys.stdin:
        request = json.loads(line)
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                child(request["spawn"])
            reply = {"pid": pid}
        else:  # poll: the exit code, or None while the process runs
            done, status = os.waitpid(request["poll"], os.WNOHANG)
            reply = {"code": os.waitstatus_to_exitcode(status) if done else None}
        print(json.dumps(reply), flush=True)
""")

_ZYGOTE = []


def _zygote(request):
    if not _ZYGOTE or _ZYGOTE[0].poll() is not None:
        _ZYGOTE[:] = [subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)]
    zygote = _ZYGOTE[0]
    zygote.stdin.write(json.dumps(request) + "\n")
    zygote.stdin.flush()
    return json.loads(zygote.stdout.readline())


class Spawned:
    """What the tests use of subprocess.Popen (text pipes, poll, wait, kill, send_signal, communicate), for a
    process forked by the zygote: it starts without TensorFlow's import (about 5 s of CPU) and exits without
    the interpreter's teardown. For runs whose start-up is not what a test is about; the CLI sets its own line
    buffering, so the lines reach the pipe as from a process of its own."""

    def __init__(self, job, env):
        self._fifos = tempfile.mkdtemp(prefix="spawn")
        out, err = os.path.join(self._fifos, "out"), os.path.join(self._fifos, "err")
        os.mkfifo(out)
        os.mkfifo(err)
        self.pid = _zygote({"spawn": {**job, "env": dict(env), "out": out, "err": err}})["pid"]
        self.stdout, self.stderr = open(out), open(err)
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            self.returncode = _zygote({"poll": self.pid})["code"]
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def communicate(self, timeout=None):
        texts = {}
        readers = [threading.Thread(target=lambda f=f: texts.__setitem__(f, f.read()), daemon=True)
                   for f in (self.stdout, self.stderr)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout)
        if any(reader.is_alive() for reader in readers):
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
        self.wait(timeout)
        self.stdout.close()
        self.stderr.close()
        shutil.rmtree(self._fifos, ignore_errors=True)
        return texts[self.stdout], texts[self.stderr]


def spawn(tool, args, cwd, env=None, new_session=False):
    """progan-<tool> with `args` in `cwd`, as a Spawned fork of the zygote (env: os.environ by default)."""
    return Spawned({"tool": tool, "args": list(map(str, args)), "cwd": str(cwd), "new_session": new_session},
                   os.environ if env is None else env)


def spawn_script(code, args, cwd, env=None):
    """`python -c code *args` in `cwd`, as a Spawned fork of the zygote."""
    return Spawned({"code": code, "args": list(map(str, args)), "cwd": str(cwd), "new_session": False},
                   os.environ if env is None else env)


def forked(jobs, cwd, timeout=180):
    """Run console scripts one after the other, each a fork of one process that imported TensorFlow once (`spawn`):
    for runs whose start-up is not what a test is about (misuse, an unusable run, a full disk, a setup). `jobs` is
    {name: (tool, [flags])}; returns {name: (exit code, stdout, stderr)}."""
    done = {}
    for name, (tool, args) in jobs.items():
        process = spawn(tool, args, cwd, env=NO_PROXY_ENV)
        out, err = process.communicate(timeout=timeout)
        done[name] = (process.returncode, out, err)
    return done

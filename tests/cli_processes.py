"""The console scripts as subprocesses (or as forks of one, `forked`), and the tiny export they read."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap

from progan_tf import export
from test_export import TINY, tiny_generator

NO_PROXY_ENV = {**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()}, "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(tool, *flags, cwd=None):
    return subprocess.Popen([sys.executable, "-m", f"progan_tf.cli.{tool}", *flags], cwd=cwd, env=NO_PROXY_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process, timeout=180):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def tiny_export(root):
    """The 16x16 generator of seed 3, exported as version 1 of `root`/models/tiny (5000 images seen).

    Returns:
      (the generator, the export's base directory).
    """
    gs = tiny_generator(seed=3)
    base = root / "models" / "tiny"
    export.export_generator(gs, TINY, base / "1", {"images_seen": 5000})
    return gs, base


FORK = textwrap.dedent("""
    import json, os, runpy, sys, traceback
    import progan_tf  # noqa: F401 (TensorFlow, imported once for every command below)

    codes = {}
    for name, job in json.load(sys.stdin).items():
        pid = os.fork()
        if pid:
            codes[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            continue
        os.chdir(job["cwd"])
        for fd, path in ((1, job["out"]), (2, job["err"])):
            opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(opened, fd)
            os.close(opened)
        sys.argv = ["", *job["args"]]  # run_module puts the module's path first, as python -m does
        try:
            runpy.run_module("progan_tf.cli." + job["tool"], run_name="__main__", alter_sys=True)
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
    print(json.dumps(codes))
""")


def forked(jobs, cwd, timeout=180):
    """Run console scripts one after the other, each a fork of one process that imported TensorFlow once (an
    import costs about 4 s of CPU): for runs whose start-up is not what a test is about (misuse, an unusable run,
    a full disk, a setup). `jobs` is {name: (tool, [flags])}; returns {name: (exit code, stdout, stderr)}."""
    with tempfile.TemporaryDirectory() as logs:
        spec = {name: {"tool": tool, "args": list(args), "cwd": str(cwd), "out": os.path.join(logs, f"{i}.out"),
                       "err": os.path.join(logs, f"{i}.err")} for i, (name, (tool, args)) in enumerate(jobs.items())}
        done = subprocess.run([sys.executable, "-c", FORK], input=json.dumps(spec), env=NO_PROXY_ENV,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        codes = json.loads(done.stdout.strip().splitlines()[-1])
        return {name: (codes[name], open(job["out"]).read(), open(job["err"]).read()) for name, job in spec.items()}

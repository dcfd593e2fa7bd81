"""runner: compare LLMs on your own tasks, by cost, latency, tokens and answers, with Hydra sweeps."""

__version__ = "0.1.0"

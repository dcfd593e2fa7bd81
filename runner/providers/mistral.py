"""Mistral's models (La Plateforme) through its OpenAI-compatible Chat Completions API, with the openai SDK."""
from __future__ import annotations

from runner.providers.openai import OpenAIProvider


class MistralProvider(OpenAIProvider):
    key_env = ("MISTRAL_API_KEY",)
    key_prefix = None  # Mistral's keys have no prefix of their own to tell them by
    key_owner = "mistral"
    own_host = "api.mistral.ai"
    price_provider = "mistral"  # genai-prices' id
    endpoint_env = None  # the openai SDK's OPENAI_BASE_URL is OpenAI's: model.base_url points it elsewhere
    default_base_url = "https://api.mistral.ai/v1"
    max_tokens_field = "max_tokens"
    seed_field = "random_seed"  # Mistral's name for the seed
    catalogue = "mistral"  # models.dev's id
    batch_limits = None  # Mistral's batch API is its own, not OpenAI's: model.batch is refused

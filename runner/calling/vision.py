"""What a call's images mean for one model: whether it takes them (when it does not, the call is skipped with
the reason, before anything is sent), and about how many input tokens they count: an estimate from each
image's size by its provider's rule (Provider.image_tokens), for the dry run and the budget's worst case. The
provider reports the real count, which is what a run records and prices.
"""
from __future__ import annotations

from runner.calls import Message, images_in
from runner.providers import provider_class
from runner.providers.capabilities import Capabilities
from runner.settings import ModelSettings


def takes_none(model: ModelSettings, caps: Capabilities) -> str | None:
    """Why `model` is sent no image at all (one line), or None when its inputs include images."""
    if "image" in caps.input_modalities:
        return None
    inputs = ", ".join(caps.input_modalities)
    said = {"config": f"its model.input_modalities is {inputs}",
            "catalogue": f"the models.dev catalogue lists its input as {inputs}"}.get(caps.source, "as far as is known")
    return (f"model {model.name} ({model.provider}/{model.id}) takes no images ({said}; set "
            f"model.input_modalities=[text,image] if it does)")


def refusal(model: ModelSettings, caps: Capabilities, messages: list[Message]) -> str | None:
    """Why `model` cannot be sent these messages' images (one line), or None: it takes them, or there are none."""
    images = images_in(messages)
    if not images:
        return None
    reason = takes_none(model, caps)
    if reason:
        return f"{reason}, and this call sends {len(images)} (task.images)"
    for image in images:
        if image.get("media_type") not in caps.image_types:
            return (f"model {model.name} ({model.provider}/{model.id}) takes no {image.get('media_type')} images "
                    f"({image.get('source')}); it takes {', '.join(caps.image_types)}")
    return None


def image_tokens(model: ModelSettings, messages: list[Message]) -> int:
    """About how many input tokens the messages' images count for `model` (0 without images)."""
    images = images_in(messages)
    if not images:
        return 0
    cls = provider_class(model).family_for(model)
    return sum(cls.image_tokens(int(image.get("width") or 1), int(image.get("height") or 1)) for image in images)

"""InsideService: the logit lens, attention and tokenizer views on the app's ModelStore.

Gradio-free. All model work happens under `store.use()` (the store's lock), so a lens pass never interleaves
with a generation or an adapter swap. Results are cached per (model revision, prompt tokens): moving the
layer / head controls re-slices the cached attention weights and never runs the model again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from playground.decode.checks import check_bool, check_int
from playground.decode.session import context_limit
from playground.inside.attention import MAX_ATTENTION_TOKENS, AttentionResult, attention_weights
from playground.inside.lens import MAX_LENS_TOKENS, LensResult, logit_lens
from playground.inside.tokens import Prompt, TokenizeResult, encode_prompt, tokenize_text
from playground.model.store import LoadedModel, ModelStore, SeenThroughViews
from playground.model.turns import Urgency

T = TypeVar("T")


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: T) -> T:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class InsideService(SeenThroughViews):
    """The Inside tab's logic on one ModelStore; `model_calls` counts forward passes (tests and the bench)."""

    def __init__(self, store: ModelStore, max_lens: int = 8, max_attention: int = 2) -> None:
        self.store = store
        self._lens = _Lru(max_lens)
        self._attention = _Lru(max_attention)  # a 256-token prompt's weights are tens of MB
        self._lock = threading.Lock()
        self.model_calls = 0

    def clear(self) -> None:
        """Forget cached results (the bench measures cold passes)."""
        with self._lock:
            self._lens.clear()
            self._attention.clear()

    def _prompt(self, lm: LoadedModel, text: Any, chat: bool, limit: int, purpose: str) -> Prompt:
        return encode_prompt(lm.tokenizer, text, check_bool("chat", chat), min(limit, context_limit(lm)), purpose)

    def lens(self, text: Any, chat: bool = False) -> LensResult:
        return self._cached(self._lens, logit_lens, text, chat, MAX_LENS_TOKENS, "the logit lens")

    def attention(self, text: Any, chat: bool = False) -> AttentionResult:
        return self._cached(self._attention, attention_weights, text, chat, MAX_ATTENTION_TOKENS,
                            "the attention view")

    def _cached(self, cache: _Lru, compute: Callable[[LoadedModel, Prompt], T], text: Any, chat: bool,
                limit: int, purpose: str) -> T:
        """One forward pass per (model revision, token ids); moving a layer/head slider re-slices the cached one."""
        with self.store.reading(Urgency.GENERATE) as lm:
            prompt = self._prompt(lm, text, chat, limit, purpose)
            key = (self.store.revision, prompt.ids)
            with self._lock:
                if key in cache:
                    return cache[key]
            result = compute(lm, prompt)
            with self._lock:
                self.model_calls += 1
                return cache.put(key, result)

    def attention_api(self, text: Any, chat: bool, layer: Any, head: Any) -> dict[str, Any]:
        """The /attention answer: layer and head are checked against the model before any forward pass."""
        layers, heads = self.shape()
        check_int("layer", layer, 1, layers)
        check_int("head", head, 0, heads, " (0 = average over heads)")
        return self.attention(text, chat).as_api(layer, head)

    def tokenize(self, text: Any) -> TokenizeResult:
        with self.store.use() as lm:
            return tokenize_text(lm.tokenizer, text)

    def shape(self) -> tuple[int, int]:
        """(layers, heads) of the loaded model, for the layer / head controls."""
        with self.store.use() as lm:
            cfg = lm.base_model.config
            cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
            layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None) or 1
            heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None) or 1
            return int(layers), int(heads)

"""Answer a question from numbered context passages, with pluggable backends.

``extractive`` (no LLM: the context sentences nearest the question), ``openai:MODEL`` (any
OpenAI-compatible chat-completions server) and ``hf:PATH`` (a local Hugging Face causal LM).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ragcun.errors import GenerationError, InvalidInputError
from ragcun.rag.config import RAGConfig
from ragcun.rag.retriever import require_text

if TYPE_CHECKING:  # the model imports torch; annotations alone need not
    from ragcun.model import GaussianEmbedder


logger = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATE = """\
Answer the question using only the numbered context below. Cite every passage you use by its \
number in square brackets, like [1]. If the context does not contain the answer, say that you \
do not know.

Context:
{context}

Question: {question}
Answer:"""

NO_CONTEXT_ANSWER = "No context found to answer this question."
DEFAULT_HF_MAX_TOKENS = 512

# Shorter fragments ("1 .", "Fig. 2.") say nothing on their own; they are used only if nothing longer exists.
MIN_SENTENCE_WORDS = 4
# A sentence joins the answer only if its distance to the question is within this factor of the nearest
# one's: the 2nd and 3rd sentences must still be about the question, not merely the next nearest.
ANSWER_DISTANCE_RATIO = 1.2
LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")


def number_context(context: Sequence[str]) -> str:
    """The passages as ``[1] …`` blocks, the numbering that citations refer to."""
    return "\n\n".join(f"[{i}] {' '.join(text.split())}" for i, text in enumerate(context, 1))


def check_template(template: str) -> str:
    """Refuse a prompt template without both ``{context}`` and ``{question}``."""
    missing = [p for p in ("{context}", "{question}") if p not in template]
    if missing:
        raise InvalidInputError(f"prompt template lacks {' and '.join(missing)}")
    return template


def render_prompt(template: str, question: str, context: Sequence[str]) -> str:
    # str.replace, not str.format: a template may hold other braces (JSON examples, for instance).
    return template.replace("{context}", number_context(context)).replace("{question}", question.strip())


@lru_cache(maxsize=1)
def _segmenter() -> Any:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage, whitespace collapsed; short fragments only when nothing else is left.

    Markdown-aware: headings are no sentences, each table row (cells joined by " | ") and each list item
    is its own, and prose is split by pysbd, which knows abbreviations ("Dr.", "e.g.", "p.m.") and decimals.
    """
    from ragcun.ingest.chunking import HEADING, TABLE_ROW, TABLE_RULE

    sentences: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        paragraph = " ".join(prose)
        prose.clear()
        if paragraph.strip():
            sentences.extend(_segmenter().segment(paragraph))

    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or HEADING.match(stripped) or TABLE_RULE.match(stripped):
            flush()
        elif TABLE_ROW.match(stripped):
            flush()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            sentences.append(" | ".join(c for c in cells if c))
        elif LIST_ITEM.match(stripped):
            flush()
            prose.append(LIST_ITEM.sub("", stripped))
            flush()
        else:
            prose.append(stripped)
    flush()
    sentences = [" ".join(s.split()) for s in sentences]
    sentences = [s for s in sentences if s]
    long_enough = [s for s in sentences if len(s.split()) >= MIN_SENTENCE_WORDS]
    return long_enough or sentences


class GeneratorBackend(Protocol):
    """What :class:`Generator` calls: the extractive, OpenAI-compatible and Hugging Face backends.

    ``prompt`` is the rendered prompt LLM backends send; ``embedder`` is the caller's model (the extractive
    backend embeds with it). ``streams``: whether :meth:`stream` yields text as it is produced.
    """

    streams: bool

    def generate(
        self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None
    ) -> str: ...

    def stream(
        self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None
    ) -> Iterator[str]: ...


class ExtractiveBackend:
    """Answers with the context sentences nearest the question in the embedding space, each cited.

    Args:
        embedder: The model to embed question and sentences; ``None`` uses the one the caller
            passes to :meth:`generate` (the pipeline passes its retriever's), else ``embedding_model``.
        embedding_model: Model directory loaded when no embedder is at hand (``None``: default model).
        max_sentences: Sentences in an answer.
    """

    streams = False

    def __init__(
        self, embedder: GaussianEmbedder | None = None, embedding_model: str | None = None, max_sentences: int = 3
    ):
        if isinstance(max_sentences, bool) or not isinstance(max_sentences, int) or max_sentences <= 0:
            raise InvalidInputError(f"max_sentences must be a positive integer, got {max_sentences!r}")
        self.embedder = embedder
        self.embedding_model = embedding_model
        self.max_sentences = max_sentences

    def _embedder(self, fallback: GaussianEmbedder | None) -> GaussianEmbedder:
        if self.embedder is not None:
            return self.embedder
        if fallback is not None:
            return fallback
        from ragcun.model import GaussianEmbedder, default_model_path

        self.embedder = GaussianEmbedder.load(self.embedding_model or default_model_path())
        return self.embedder

    def generate(self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None) -> str:
        pairs = [(n, s) for n, text in enumerate(context, 1) for s in split_sentences(text)]
        # The same sentence in two passages is one candidate, cited by its first passage.
        seen: dict[str, int] = {}
        for n, sentence in pairs:
            seen.setdefault(sentence, n)
        sentences = list(seen)
        model = self._embedder(embedder)
        vectors = model.encode(sentences, sort_by_length=False).astype(np.float64)
        # the question is a query: an adapted model maps it through its query map
        distances = np.linalg.norm(vectors - model.encode_queries([question]).astype(np.float64)[0], axis=1)
        closest = np.argsort(distances, kind="stable")[: self.max_sentences]
        nearest = [i for i in closest if distances[i] <= ANSWER_DISTANCE_RATIO * distances[closest[0]]]
        return " ".join(f"{sentences[i]} [{seen[sentences[i]]}]" for i in nearest)

    def stream(
        self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None
    ) -> Iterator[str]:
        yield self.generate(question, context, prompt, embedder)


class OpenAIBackend:
    """Any OpenAI-compatible ``POST {base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp, Ollama), through the
    ``openai`` SDK.

    The SDK retries what a retry can fix: 408, 409, 429 and 5xx answers, timeouts and failed connections,
    waiting what a ``Retry-After`` header asks (up to its limit) or else 0.5 s doubling, with jitter; never
    another 4xx, since the same request would be refused again. A stream is not retried once its body
    has started. Answers are read from the raw response, so a malformed one is named, not retried.

    Args:
        model: The model name the server knows.
        base_url: API root, usually ending in ``/v1``.
        api_key: Sent as ``Authorization: Bearer``; ``None`` sends no header (local servers).
        timeout: Seconds to wait for the connection and for each read.
        max_retries: Further attempts after a retryable failure.
        max_tokens / temperature: Sent when set.
    """

    streams = True

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ):
        import openai

        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.temperature = temperature
        # The SDK insists on a key; a server without one gets the header explicitly omitted instead.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "no-key", timeout=timeout, max_retries=max_retries
        )
        self._headers = {} if api_key else {"Authorization": openai.Omit()}

    def generate(self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None) -> str:
        response = self._create(prompt, stream=False).http_response
        return self._read_completion(response)

    def stream(
        self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None
    ) -> Iterator[str]:
        raw = self._create(prompt, stream=True)
        if raw.headers.get("content-type", "").split(";")[0].strip() == "application/json":
            # Servers that ignore "stream": true answer with one ordinary completion.
            raw.http_response.read()
            yield self._read_completion(raw.http_response)
            return
        yield from self._read_events(raw.parse())

    # ---- transport ----------------------------------------------------------------------------

    def _create(self, prompt: str, stream: bool):
        """The raw response of one chat-completions request, after the SDK's retries; one-line errors."""
        import openai

        options: dict[str, Any] = {}
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            options["temperature"] = self.temperature
        headers: dict[str, str | openai.Omit] = {**self._headers, **({"Accept": "text/event-stream"} if stream else {})}
        try:
            return self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                stream=stream,
                extra_headers=headers,
                **options,
            )
        except openai.APIStatusError as exc:
            code, detail = exc.status_code, _error_detail(exc.response)
            if code == 429:
                raise GenerationError(
                    f"{self.url}: HTTP 429 Too Many Requests{detail}: rate limited; gave up after "
                    f"{_attempts(exc.response.request)}"
                ) from None
            if code >= 500 or code in (408, 409):
                raise GenerationError(
                    f"{self.url}: server error HTTP {code}{detail}; gave up after {_attempts(exc.response.request)}"
                ) from None
            raise GenerationError(self._client_error(code, detail)) from None
        except openai.APITimeoutError as exc:
            raise GenerationError(f"{self.url}: {self._timeout()}; gave up after {_attempts(exc.request)}") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            failure = (
                f"cannot connect ({cause})"
                if type(cause).__name__ == "ConnectError"
                else f"connection failed ({cause!r})"
            )
            raise GenerationError(f"{self.url}: {failure}; gave up after {_attempts(exc.request)}") from None

    def _timeout(self) -> str:
        return f"no response within {self.timeout:g}s (OPENAI_TIMEOUT)"

    def _client_error(self, code: int, detail: str) -> str:
        if code == 401:
            return f"{self.url}: HTTP 401 Unauthorized{detail}: the API key was refused; check OPENAI_API_KEY"
        if code == 404:
            return (
                f"{self.url}: HTTP 404 Not Found{detail}: check OPENAI_BASE_URL (usually ending in /v1) "
                f"and the model name {self.model!r}"
            )
        return f"{self.url}: HTTP {code}{detail}"

    def _malformed(self, why: str) -> GenerationError:
        return GenerationError(f"{self.url}: malformed chat-completions response: {why}")

    def _read_completion(self, response) -> str:
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._malformed(f"not JSON ({exc})") from None
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise self._malformed(f"no choices[0].message.content in {_snippet(payload)}") from None
        if not isinstance(content, str):
            raise self._malformed(f"choices[0].message.content is {type(content).__name__}, not text")
        return content

    def _read_events(self, events) -> Iterator[str]:
        """Text deltas of the SDK's event stream, which ends at ``data: [DONE]``."""
        import openai

        finished = False
        try:
            for event in events:
                choices = getattr(event, "choices", None)
                if choices == []:
                    continue  # the usage-only event OpenAI sends last when asked for usage
                if not isinstance(choices, list) or not choices:
                    raise self._malformed(f"stream event without choices: {_snippet(event.to_dict())}")
                delta = getattr(choices[0].delta, "content", None) if choices[0].delta is not None else None
                if delta:
                    yield delta
                finished = finished or bool(choices[0].finish_reason)
        except GenerationError:
            raise
        except openai.APIError as exc:  # an {"error": …} event
            raise GenerationError(f"{self.url}: error in stream{_message_of({'error': exc.message})}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._malformed(f"stream event is not a JSON object ({exc})") from None
        except Exception as exc:  # the transport's read errors, whatever the HTTP library names them
            if "Timeout" in type(exc).__name__:
                raise GenerationError(f"{self.url}: stream stalled: no data within {self.timeout:g}s") from None
            raise GenerationError(f"{self.url}: stream broken ({exc!r})") from None
        if not finished:
            raise GenerationError(f"{self.url}: stream ended before `data: [DONE]`; the answer may be cut off")


def _attempts(request) -> str:
    """``N attempt(s)``, from the retry count the SDK stamps on each request it sends."""
    try:
        n = int(request.headers.get("x-stainless-retry-count", "0")) + 1
    except (AttributeError, ValueError):
        n = 1
    return f"{n} attempt{'s' * (n > 1)}"


def _snippet(value, limit: int = 120) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _message_of(payload) -> str:
    """`` (message)`` from an OpenAI-style ``{"error": {"message": …}}`` body, else ``""``."""
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return f" ({_snippet(message)})" if isinstance(message, str) and message.strip() else ""


def _error_detail(response) -> str:
    try:
        raw = response.text
    except Exception:  # a stream's body that could not be read
        return ""
    try:
        return _message_of(json.loads(raw)) or (f" ({_snippet(raw)})" if raw.strip() else "")
    except json.JSONDecodeError:
        return f" ({_snippet(raw)})" if raw.strip() else ""


class HFBackend:
    """A local Hugging Face causal LM, loaded from its folder on first use (never downloaded).

    Args:
        path: The model folder (``config.json``, weights, tokenizer files).
        max_tokens: Most new tokens per answer (default 512).
        temperature: Sampling temperature; ``None`` or 0 decodes greedily.
    """

    streams = True

    def __init__(self, path: str | Path, max_tokens: int | None = None, temperature: float | None = None):
        self.path = Path(path).expanduser()
        self.max_tokens = max_tokens or DEFAULT_HF_MAX_TOKENS
        self.temperature = temperature
        self._model: Any = None  # loaded on first use
        self._tokenizer: Any = None

    def _load(self):
        if self._model is None:
            if not (self.path / "config.json").is_file():
                raise GenerationError(
                    f"hf:{self.path}: not a Hugging Face model folder (no config.json); "
                    f"hf: takes a local path, nothing is downloaded"
                )
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True)
            except (OSError, ValueError, KeyError, ImportError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise GenerationError(f"hf:{self.path}: cannot load a causal LM: {first}") from exc
            # transformers types PreTrainedModel.to through a decorator whose signature mypy misreads
            model.to("cuda" if torch.cuda.is_available() else "cpu").eval()  # type: ignore[arg-type]
            self._model, self._tokenizer = model, tokenizer
        return self._model, self._tokenizer

    def _inputs(self, prompt: str) -> dict:
        model, tokenizer = self._load()
        templated = bool(getattr(tokenizer, "chat_template", None))
        if templated:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = prompt
        # A chat template already writes the special tokens (BOS and the like); do not add them twice.
        encoded = tokenizer(text, return_tensors="pt", add_special_tokens=not templated)
        inputs = {k: encoded[k].to(model.device) for k in ("input_ids", "attention_mask") if k in encoded}
        sampling = bool(self.temperature)
        options: dict[str, Any] = dict(max_new_tokens=self.max_tokens, do_sample=sampling)
        if sampling:
            options["temperature"] = self.temperature
        if tokenizer.pad_token_id is not None:
            options["pad_token_id"] = tokenizer.pad_token_id
        return {**inputs, **options}

    def generate(self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None) -> str:
        import torch

        model, tokenizer = self._load()
        inputs = self._inputs(prompt)
        with torch.inference_mode():
            output = model.generate(**inputs)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return tokenizer.decode(new_tokens, skip_special_tokens=True).strip()

    def stream(
        self, question: str, context: list[str], prompt: str, embedder: GaussianEmbedder | None = None
    ) -> Iterator[str]:
        import threading

        import torch
        from transformers import TextIteratorStreamer

        model, tokenizer = self._load()
        inputs = self._inputs(prompt)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    model.generate(**inputs, streamer=streamer)
            except BaseException as exc:  # surfaced in the caller's thread below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()
        if failure:
            raise GenerationError(f"hf:{self.path}: generation failed: {failure[0]!r}") from failure[0]


class Generator:
    """Answers a question from numbered context passages.

    Args:
        model_name: ``extractive``, ``openai:MODEL`` or ``hf:PATH``; ``None`` reads ``MODEL_NAME``
            (default ``extractive``).
        prompt_template: Prompt for LLM backends, with ``{context}`` (the numbered passages) and
            ``{question}``; ``None`` reads ``PROMPT_TEMPLATE_FILE``, else :data:`DEFAULT_PROMPT_TEMPLATE`.
        embedder: Model of the extractive backend (default: the caller's, else ``EMBEDDING_MODEL``).
        config: Settings; ``None`` reads the environment (never a ``.env``: see :class:`RAGConfig`).
        base_url, api_key, timeout, max_retries, max_tokens, temperature: Override the matching
            settings.
    """

    def __init__(
        self,
        model_name: str | None = None,
        *,
        prompt_template: str | None = None,
        embedder: GaussianEmbedder | None = None,
        config: RAGConfig | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ):
        overrides: dict[str, Any] = dict(
            openai_base_url=base_url,
            openai_api_key=api_key,
            openai_timeout=timeout,
            openai_max_retries=max_retries,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if config is None:
            config = RAGConfig.from_env(**overrides)
        elif overrides:
            config = replace(config, **overrides)
            config.validate()
        self.config = config
        spec = model_name if model_name is not None else config.model_name
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidInputError("generator name must be a non-empty string")
        self.model_name = spec.strip()
        if prompt_template is None and config.prompt_template_file:
            path = Path(config.prompt_template_file).expanduser()
            try:
                prompt_template = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidInputError(
                    f"{path}: cannot read the prompt template (PROMPT_TEMPLATE_FILE): "
                    f"{getattr(exc, 'strerror', None) or exc}"
                ) from None
        self.prompt_template = check_template(prompt_template or DEFAULT_PROMPT_TEMPLATE)
        self.backend: GeneratorBackend = _make_backend(self.model_name, config, embedder)

    @property
    def streams(self) -> bool:
        """Whether :meth:`stream` yields text as it is produced rather than all at once."""
        return self.backend.streams

    def prompt(self, query: str, context: Sequence[str]) -> str:
        """The prompt an LLM backend receives."""
        return render_prompt(self.prompt_template, query, context)

    def generate(self, query: str, context: Sequence[str], embedder: GaussianEmbedder | None = None) -> str:
        """The answer, citing passages as ``[n]`` (1-based positions in ``context``).

        An empty ``context`` gives :data:`NO_CONTEXT_ANSWER` without calling any model.

        Raises:
            ValueError: on an empty query.
            GenerationError: when the backend fails.
        """
        return self._call("generate", query, context, embedder)

    def stream(self, query: str, context: Sequence[str], embedder: GaussianEmbedder | None = None) -> Iterator[str]:
        """Like :meth:`generate`, yielding the answer in pieces as the backend produces them."""
        return self._call("stream", query, context, embedder)

    def _call(self, method: str, query: str, context: Sequence[str], embedder: GaussianEmbedder | None):
        from ragcun.retrieve.gaussian import check_documents  # torch and faiss: load on first use

        require_text(query, "query")
        context = check_documents(context, "context")
        if not context:
            return NO_CONTEXT_ANSWER if method == "generate" else iter([NO_CONTEXT_ANSWER])
        return getattr(self.backend, method)(query, context, self.prompt(query, context), embedder)


def _make_backend(spec: str, config: RAGConfig, embedder: GaussianEmbedder | None) -> GeneratorBackend:
    kind, _, argument = spec.partition(":")
    if spec == "extractive":
        return ExtractiveBackend(embedder=embedder, embedding_model=config.embedding_model)
    if kind == "openai" and argument.strip():
        return OpenAIBackend(
            argument.strip(),
            config.openai_base_url,
            config.openai_api_key,
            config.openai_timeout,
            config.openai_max_retries,
            config.max_tokens,
            config.temperature,
        )
    if kind == "hf" and argument.strip():
        return HFBackend(argument.strip(), config.max_tokens, config.temperature)
    raise InvalidInputError(f"unknown generator {spec!r}: use extractive, openai:MODEL or hf:PATH")

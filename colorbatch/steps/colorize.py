"""The ``colorize`` step: predict a*b* for each item and recombine with its full-resolution L*.

Items are pulled from the stream in chunks (a chunk ends early at a flush
marker, so a watched folder is served promptly); each chunk is decoded and
resized in DataLoader worker processes while the main process runs the
network on batches and recombines on the device. Sets ``item.L``, ``item.ab``
(full resolution), ``item.output`` (uint8 RGB) and ``item.meta["model"]``.
"""
from __future__ import annotations

from typing import Annotated, Iterable, Iterator, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from colorbatch.errors import ColorbatchError, ExportError, ItemError
from colorbatch.steps import Step, StepDef


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Optional[str] = Field(
        None,
        description="Checkpoint (.safetensors). Default: the checkpoint a train step of this recipe "
        "wrote, else $COLORBATCH_MODEL, else the newest model in the colorbatch cache.",
    )
    size: int = Field(256, ge=32, le=4096, description="Network resolution: the long side is resized to this (aspect kept).")
    batch_size: int = Field(8, ge=1, description="Images per forward pass (halved on CUDA out-of-memory).")
    device: str = Field("auto", description="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu).")
    workers: Optional[int] = Field(
        None, ge=0, description="Decoding worker processes (default: cores - 1, at most 4; 0 = decode in the main process)."
    )
    threads: Optional[int] = Field(
        None, ge=1,
        description="Threads of the network on CPU (default: the free cores, fewer while the machine is busy). "
                    "The count changes float summation order: give it, with batch_size, when outputs must match "
                    "another run byte for byte (the studio's Save does).",
    )
    chunk: int = Field(256, ge=1, description="Items taken from the stream per round of decoding workers (a flush marker from a watched folder ends a round early).")
    keep_arrays: Optional[bool] = Field(
        None,
        description="Set item.L and item.ab (full-resolution float arrays) for later steps. Default: "
        "yes, unless only save steps follow (saves memory and time).",
    )
    chroma: Union[Literal["auto"], Annotated[float, Field(ge=0.0, le=2.0)]] = Field(
        "auto",
        description="Colour strength: auto (the calibration stored in the model) or a number that scales "
        "the predicted a*b*: below 1 gives safer, paler colours, above 1 more vivid ones; L* is never "
        "changed. A number is recorded with the model id.",
    )
    hints: Optional[str] = Field(
        None,
        description="Folder of hint files mirroring the input tree (in/a/b.jpg -> HINTS/a/b.hints.json); "
        "sidecar NAME.hints.json files beside the images are used in any case. See docs/hints.md.",
    )
    reference: Optional[str] = Field(
        None, description="A colour photo whose colours guide every image (a global hint); a hint file's own reference wins."
    )
    reference_self: bool = Field(
        False, description="Evaluation: each colour input's own colours are its global hint (the upper bound a reference reaches)."
    )
    simulate_hints: int = Field(
        0, ge=0, le=1000, description="Evaluation: N point hints simulated from each colour input's truth, as a user would give them."
    )
    hint_seed: int = Field(0, description="Seed of simulate_hints (per image, combined with the image's id).")
    runtime: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto",
        description="What runs the network: auto (onnxruntime on the CPU where it is installed, else torch; "
        "$COLORBATCH_RUNTIME sets it), torch, or onnxruntime. A .safetensors model is exported to ONNX once, "
        "into the cache; a .onnx model always runs on onnxruntime. See docs/deploy.md and docs/speed.md.",
    )
    max_batch_pixels: int = Field(
        16_000_000, ge=1,
        description="Full-resolution pixels held at once; a batch is cut early above it (bounds memory for huge images).",
    )


def _identity(x):
    return x


def _pixels(Lq) -> int:
    """Pixels of a prepared L* (a numpy array on onnxruntime, a tensor from a worker)."""
    return int(Lq.shape[0]) * int(Lq.shape[1])


def _worker_init(_):
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the main process handles it and shuts the
    # workers down itself (SIGTERM stays: multiprocessing ends stray workers with it)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


_POOL_CHUNK: dict = {}  # the items a process pool's forked workers decode (inherited, not sent)


def _pool_init():
    import signal

    # as _worker_init, without torch: Ctrl-C is the main process's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_prepare(i: int) -> dict:
    """In a forked worker: prepare item ``i`` of the chunk as the main process would (numpy)."""
    from colorbatch.prepare import prepare_item

    c = _POOL_CHUNK
    return prepare_item(c["items"][i], c["size"], compact=True, want_rgb=c["want_rgb"], numpy=True, tensors=False)


class _ChunkDataset:
    """Map-style dataset over one chunk of items (decoded in workers)."""

    def __init__(self, items, size, want_rgb=True, numpy=False):
        self.items = items
        self.size = size
        self.want_rgb = want_rgb
        self.numpy = numpy

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from colorbatch.colorizer import prepare_item

        return prepare_item(self.items[i], self.size, compact=True, want_rgb=self.want_rgb, numpy=self.numpy)


class ColorizeStep(Step):
    def __init__(self, options: Options, ctx):
        super().__init__(options, ctx)
        from colorbatch.device import cpu_cores, default_workers

        self.cfg = ctx.current
        self.workers = default_workers() if options.workers is None else int(options.workers)
        cores = max(1, cpu_cores())
        if self.workers > cores:
            ctx.warn(f"workers {self.workers} (-j {self.workers}) is more than the {cores} CPU cores here; "
                     f"using {cores} decoding workers")
            self.workers = cores
        self.colorizer = None
        self.task = None
        # a train step earlier in this recipe provides the model once it has run
        idx = self.cfg.index if self.cfg is not None else 0
        self.after_train = options.model is None and any(
            "checkpoint" in c.stepdef.produces for c in ctx.plan.steps if c.index < idx
        )
        from colorbatch.device import pick_device_light

        # fail early on an unavailable device; the CPU is named without importing torch
        self.device = pick_device_light(options.device)
        later = [c.stepdef for c in ctx.plan.steps if c.index > idx]
        self.model_path = None
        if not self.after_train:
            # resolve now (reads only the JSON): a missing model stops the run before any
            # work, and save (also in --dry-run) can compare the model id with its manifest
            from colorbatch.models.checkpoint import discover_model
            from colorbatch.onnx_runtime import model_id, require_onnxruntime, uses_onnxruntime

            self.model_path = discover_model(options.model or ctx.state.checkpoint)
            if uses_onnxruntime(self.model_path, options.runtime, self.device):
                require_onnxruntime()  # one line naming the extra, before any work
            ctx.state.model_id = self._with_chroma(model_id(self.model_path))
            ctx.state.model = str(self.model_path)
        only_save = bool(later) and all(d.writes_outputs for d in later)
        # the CUDA path encodes JPEG outputs on the device for the save steps that follow
        self.saves = [c.options for c in ctx.plan.steps if c.index > idx and c.stepdef.name == "save"] \
            if only_save and all(d.name == "save" for d in later) else []
        self.encode_error = None  # the device's JPEG encoder failed once: the CPU encodes from then on
        self.encode_warned = False
        self.keep_arrays = options.keep_arrays if options.keep_arrays is not None else not only_save
        from colorbatch.steps.colorize_hints import StepHints

        self.hints = StepHints(options)
        self.hint_plan = ctx.state.hints = self.hints.plan
        # simulated hints and reference = self read the colour truth
        self.want_rgb = self.keep_arrays or self.hints.needs_truth
        if self.hint_plan.explicit and self.model_path is not None:
            from colorbatch.onnx_runtime import model_meta

            if not (model_meta(self.model_path).get("model") or {}).get("hints"):
                from colorbatch.errors import ColorbatchError

                raise ColorbatchError(
                    f"model {ctx.state.model_id} takes no colour hints: use a hint-aware model (the shipped "
                    "default, or one trained with hints = true), or drop --hints/--reference")

    # ---- model --------------------------------------------------------------
    def _with_chroma(self, mid: str) -> str:
        """The id outputs and manifests record: a chroma other than 1 makes other outputs."""
        from colorbatch.colorizer import chroma_model_id

        return chroma_model_id(mid, self.options.chroma)

    def _resolve(self):
        if self.colorizer is not None:
            return
        from colorbatch.colorizer import Colorizer
        from colorbatch.device import configure_threads, thread_count, torch_device, tune_malloc
        from colorbatch.onnx_runtime import resolve_runtime

        path = self.model_path or self.options.model or self.ctx.state.checkpoint
        runtime = resolve_runtime(path, self.options.runtime, self.device)
        threads = thread_count(self.device, self.workers, self.options.threads)
        if runtime == "torch":
            self.device = torch_device(self.device)
            configure_threads(self.device, self.workers, self.options.threads)
        tune_malloc()

        def make(rt):
            return Colorizer(path, self.device, self.options.size, self.options.batch_size,
                             chroma=self.options.chroma, runtime=rt, threads=threads)

        if runtime == "onnxruntime" and path is not None and not str(path).lower().endswith(".onnx"):
            from colorbatch.export import cached_export_path
            from colorbatch.models.checkpoint import discover_model

            if not cached_export_path(discover_model(path)).is_file():
                self.ctx.log("preparing the model for onnxruntime (once per model, a few seconds; "
                             "--runtime torch skips it)")
        try:
            colorizer = make(runtime)
        except ExportError as exc:
            if self.options.runtime != "auto":
                raise
            # auto: a model onnxruntime cannot take (a plugin's op) runs on torch, said once
            self.ctx.warn(f"{exc}; running the network on torch instead (runtime auto)")
            self.device = torch_device(self.device)
            configure_threads(self.device, self.workers, self.options.threads)
            colorizer = make("torch")
        if self.hint_plan.explicit:
            colorizer.check_hints()  # the run asked for hints: stop before any work
        self.colorizer = colorizer
        self.ctx.state.model_id = self.colorizer.model_id
        self.ctx.state.model = str(self.colorizer.path) if self.colorizer.path else self.colorizer.model_id
        self.ctx.state.device = str(self.device)

    # ---- stream ---------------------------------------------------------------
    def _mine(self, item, position: int) -> bool:
        ws = self.ctx.world_size
        if ws <= 1:
            return True
        index = item.meta.get("index", position)
        return int(index) % ws == self.ctx.rank

    def run(self, items: Iterable) -> Iterator:
        from colorbatch import kernels

        kernels.warm_for_pipeline()  # loads beside the model; waited for before the first image
        if not self.after_train:
            self._resolve()
        self.task = self.ctx.task("colorize", unit="images", counts_items=True)
        it = iter(items)
        position = 0
        while True:
            chunk = []
            marker = None
            ended = False
            while len(chunk) < self.options.chunk:
                try:
                    item = next(it)
                except StopIteration:
                    ended = True
                    break
                if item.is_marker:
                    marker = item
                    break
                position += 1
                if self._mine(item, position - 1):
                    chunk.append(item)
            if chunk:
                self._resolve()
                kernels.wait_warm()  # the same path for every image of every run
                yield from self._process(chunk)
            if marker is not None:
                yield marker
            if ended:
                return

    def _prepared(self, chunk, gpu: bool = True):
        """Yield (item, prepared dict) in order; decoding in workers when it helps."""
        from colorbatch.colorizer import prepare_item

        if gpu and self.device.type == "cuda":  # JPEGs decoded on the device, the rest below
            from colorbatch import gpu_pipeline

            if gpu_pipeline.wanted(self.device):
                yield from gpu_pipeline.prepared(chunk, self.options.size, self.device, self.want_rgb,
                                                 lambda items: self._prepared(items, gpu=False))
                return

        size = self.options.size
        # onnxruntime takes numpy: the same resize for every image, in a worker or not
        numpy = self.colorizer.runtime == "onnxruntime"
        todo = [i for i, item in enumerate(chunk) if item.L is None]
        workers = min(self.workers, len(todo))
        if workers <= 0 or len(todo) < 2:
            for item in chunk:
                yield item, prepare_item(item, size, compact=False, want_rgb=self.want_rgb, numpy=numpy)
            return
        from colorbatch import kernels

        kernels.wait_warm()  # forked workers inherit the kernels (the first chunk's forks before they load)
        if numpy:  # onnxruntime: decoding workers without torch (a process pool)
            yield from self._prepared_in_pool(chunk, todo, workers)
            return
        import torch
        from torch.utils.data import DataLoader

        loader = DataLoader(
            _ChunkDataset([chunk[i] for i in todo], size, want_rgb=self.want_rgb, numpy=numpy),
            batch_size=None,
            num_workers=workers,
            collate_fn=_identity,
            worker_init_fn=_worker_init,
            prefetch_factor=2,
            pin_memory=False,
        )
        results = iter(loader)
        for item in chunk:
            if item.L is not None:
                yield item, prepare_item(item, size, compact=False, want_rgb=self.want_rgb, numpy=numpy)
            else:
                yield item, next(results)

    def _ahead(self, workers: int, pixels: int) -> int:
        """Files the decoding workers prepare ahead of the network: a batch and a file per
        worker, so that the next batch is decoded while the network runs on this one (two
        per worker left the network waiting for most of every batch), but no more than
        ``max_batch_pixels`` of files the size of the latest; two per worker before the
        first file's size is known, and at least that."""
        fit = self.options.max_batch_pixels // pixels if pixels > 0 else 0
        return max(2 * workers, min(self.colorizer.batch_size + workers, fit))

    def _prepared_in_pool(self, chunk, todo, workers):
        """:meth:`_prepared` for runs on onnxruntime: forked worker processes (a
        ``ProcessPoolExecutor``) decode and resize the chunk's files, :meth:`_ahead` of them
        ahead, so the run never imports torch. The items reach the workers by the fork."""
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        from colorbatch.colorizer import prepare_item

        _POOL_CHUNK.clear()
        _POOL_CHUNK.update(items=[chunk[i] for i in todo], size=self.options.size, want_rgb=self.want_rgb)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_pool_init)
        ahead: deque = deque()
        sent = 0
        last_px = 0  # pixels of the latest prepared file: how many more fit in memory
        try:
            for item in chunk:
                if item.L is not None:
                    yield item, prepare_item(item, self.options.size, compact=False, want_rgb=self.want_rgb,
                                             numpy=True)
                    continue
                while sent < len(todo) and len(ahead) < self._ahead(workers, last_px):
                    ahead.append(pool.submit(_pool_prepare, sent))
                    sent += 1
                prep = ahead.popleft().result()
                if "Lq" in prep:
                    last_px = _pixels(prep["Lq"])
                yield item, prep
        finally:
            for f in ahead:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            _POOL_CHUNK.clear()

    def _process(self, chunk):
        """Batches through the network; recombination of batch k (in a helper
        thread) overlaps with saving batch k-1 and running the network on k+1."""
        from collections import deque

        held = []
        pixels = 0
        pending: deque = deque()  # (item, future, full-res pixels), in order
        for item, prep in self._prepared(chunk):
            if "error" in prep:
                self.ctx.fail(item, ItemError(prep["error"]))
                continue
            try:
                hints = self.hints.for_item(item, prep, self.colorizer)
            except ColorbatchError as exc:  # a bad hint file fails this item only
                self.ctx.fail(item, ItemError(str(exc)))
                continue
            held.append((item, prep, hints))
            pixels += _pixels(prep["Lq"])
            if len(held) >= self.colorizer.batch_size or pixels >= self.options.max_batch_pixels:
                self._submit(held, pending)
                held, pixels = [], 0
                yield from self._drain(pending, keep=self.colorizer.batch_size)
        if held:
            self._submit(held, pending)
        yield from self._drain(pending, keep=0)

    def _pool(self):
        if getattr(self, "_executor", None) is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="colorbatch-compose")
        return self._executor

    def _submit(self, held, pending):
        """Run the network on ``held`` and queue each item's recombination."""
        from concurrent.futures import Future

        try:
            hints = [h for _, _, h in held]
            preds = self.colorizer.predict_small([p["small"] for _, p, _ in held],
                                                 hints if any(h is not None for h in hints) else None)
        except Exception as exc:  # noqa: BLE001 - e.g. OOM at batch 1: fail these items
            if len(held) == 1:
                fut = Future()
                fut.set_result(exc)
                pending.append((held[0][0], fut, 0))
                return
            for one in held:  # retry one by one so a single bad item does not sink the batch
                self._submit([one], pending)
            return
        pool = self._pool()
        for (item, prep, _), pred in zip(held, preds):
            px = _pixels(prep["Lq"])  # before the helper thread takes it
            pending.append((item, pool.submit(self._compose, item, prep, pred), px))

    def _drain(self, pending, keep: int):
        """Yield finished items, oldest first, until at most ``keep`` remain in flight
        (and their full-resolution pixels fit ``max_batch_pixels``)."""
        while pending and (len(pending) > keep or sum(p for _, _, p in pending) > self.options.max_batch_pixels):
            item, fut, _ = pending.popleft()
            error = fut.result()
            if self.encode_error is not None and not self.encode_warned:
                self.encode_warned = True
                from colorbatch.errors import one_line

                self.ctx.warn(f"encoding JPEGs on the GPU failed ({one_line(self.encode_error)}); "
                              "the CPU encodes them for the rest of this run")
            if error is not None:
                self.ctx.fail(item, error)
                continue
            if self.task is not None:
                self.task.advance(1)
            yield item

    def _compose(self, item, prep, pred):
        """Recombine one item (runs in the helper thread); returns an exception or None."""
        import numpy as np

        from colorbatch.colorizer import L_SCALE, unpack_L, unpack_rgb

        try:
            Lq = prep.pop("Lq")
            if getattr(Lq, "is_cuda", False):  # decoded on the GPU: L* is there (gpu_pipeline)
                rgb, ab = self._compose_on_device(item, Lq, pred)
                Lq = Lq.cpu().numpy().view(np.uint16) if self.keep_arrays else None
            else:
                Lq = unpack_L(Lq)
                rgb, ab = self.colorizer.recombine(Lq, pred, want_ab=self.keep_arrays)
            if self.keep_arrays:
                item.L = Lq.astype(np.float32)
                item.L /= L_SCALE
                item.ab = ab
            del Lq, ab
            item.output = rgb
            rgb_gt = unpack_rgb(prep.pop("rgb", None))
            if rgb_gt is not None:  # sent compactly by a worker
                item.rgb = rgb_gt
            for note in prep.get("notes", []):
                if note not in item.notes:
                    item.notes.append(note)
            item.meta.update(prep.get("meta", {}))
            item.meta["model"] = self.colorizer.model_id
            item.meta["runtime"] = self.colorizer.runtime
            return None
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            return exc

    def _compose_on_device(self, item, Lq, pred):
        """:func:`colorbatch.gpu_pipeline.compose`, with the output encoded on the device
        where the save steps write it as a JPEG (until the encoder fails once)."""
        from colorbatch import gpu_pipeline
        from colorbatch.item import Encoded

        quality = None
        if self.encode_error is None and gpu_pipeline.encode_wanted():
            quality = gpu_pipeline.device_jpeg_quality(item.id, self.saves)
        rgb, ab, jpeg = gpu_pipeline.compose(Lq, pred, want_ab=self.keep_arrays, quality=quality)
        if isinstance(jpeg, Exception):
            self.encode_error = jpeg
        elif jpeg is not None:
            item.encoded = Encoded("JPEG", quality, jpeg, pixels=rgb)
        return rgb, ab

    def close(self) -> None:
        ex = getattr(self, "_executor", None)
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
            self._executor = None


STEP = StepDef(
    name="colorize",
    options=lambda: Options,
    factory=ColorizeStep,
    help="Predict colour (a*b*) from L* with a trained model; outputs keep the input's full-resolution L*.",
    path_options=("model", "hints", "reference"),
)

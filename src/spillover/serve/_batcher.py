"""Request batching: one asyncio task groups jobs and runs each group as one `generate` call in a
single worker thread, so exactly one torch job runs at a time and the event loop stays free.

Each decoding step calls back into the batcher (in the worker thread): streamed choices get their
new text, and the call stops as soon as no job in the group still wants tokens (every client went
away, or every streamed choice reached a stop string).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from spillover._io import derive_seed
from spillover.models import Generation, LoadedModel, generate

from ._protocol import first_stop


@dataclass(frozen=True)
class Sampling:
    """Requests with equal sampling parameters share one `generate` call."""

    temperature: float
    top_p: float
    max_tokens: int


@dataclass
class ServerStats:
    """Counters for monitoring (and for tests that check batching, streaming and cancellation)."""

    requests: int = 0
    generate_calls: int = 0
    sequences: int = 0
    decode_steps: int = 0  # across all generate calls; a cancelled request stops adding to it
    abandoned: int = 0  # requests whose client went away before the whole answer
    prompt_tokens: int = 0
    completion_tokens: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class ChoiceText:
    """One streamed choice's text as its tokens arrive, and how much of it may be sent yet.

    Tokens are decoded incrementally (tokenizers' DecodeStream, which holds back incomplete UTF-8).
    Text waits until it is final: leading and trailing whitespace (a whole answer is stripped) and
    the last characters that could begin a stop string. The streamed pieces join to the answer a
    non-streamed request gets.
    """

    def __init__(self, lm: LoadedModel, stops: list[str], end_ids: set[int]):
        from tokenizers.decoders import DecodeStream

        self.backend = lm.tokenizer.backend_tokenizer
        self.decoder = DecodeStream(skip_special_tokens=True)
        self.stops, self.end_ids = stops, end_ids
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""  # decoded so far
        self.sent = ""  # the part of it a client has been sent
        self.ended = False  # an end-of-turn token or a stop string: nothing more to send

    def push(self, token: int) -> str:
        """Take the next token; returns the text that may now be sent ("" when none)."""
        if self.ended:
            return ""
        if token in self.end_ids:
            self.ended = True
            return ""
        self.text += self.decoder.step(self.backend, token) or ""
        visible = self.text.lstrip()
        cut = first_stop(visible, self.stops)
        if cut >= 0:
            visible, self.ended = visible[:cut], True
        else:
            visible = visible.rstrip()
            visible = visible[: len(visible) - self.hold]
        return self._send(visible)

    def finish(self, answer: str) -> str:
        """The rest of `answer` (the finished choice's text, cut at stop strings) to send."""
        return self._send(answer)

    def _send(self, visible: str) -> str:
        if len(visible) <= len(self.sent) or not visible.startswith(self.sent):
            return ""
        delta, self.sent = visible[len(self.sent) :], visible
        return delta


@dataclass
class Job:
    conversation: list[dict]
    sampling: Sampling
    seed: int
    n: int
    future: asyncio.Future  # its n Generations
    texts: list[ChoiceText] | None = None  # streamed choices; None: answered at the end only
    deltas: asyncio.Queue | None = None  # batches of (choice index, new text); None ends them
    cancelled: bool = False  # set on the event loop when the client goes away; read by the worker

    def settled(self) -> bool:
        """Nothing more is wanted from the model for this job."""
        return self.cancelled or (self.texts is not None and all(t.ended for t in self.texts))

    def resolve(self, generations: list[Generation] | None, error: Exception | None = None) -> None:
        if self.cancelled:  # no one is waiting for the answer
            self.future.cancel()
        elif not self.future.done():
            if error is None:
                self.future.set_result(generations)
            else:
                self.future.set_exception(error)
        if self.deltas is not None:
            self.deltas.put_nowait(None)


class Batcher:
    """Collects jobs for `window_s`, then runs them grouped by sampling parameters, one group per call."""

    def __init__(self, lm: LoadedModel, stats: ServerStats, *, max_batch: int, window_s: float):
        self.lm, self.stats, self.max_batch, self.window_s = lm, stats, max_batch, window_s
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spillover-generate")
        self.task: asyncio.Task | None = None
        self.running: list[Job] = []

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        for job in self.running:  # the worker thread stops at its next decoding step
            job.cancelled = True
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    def submit(self, job: Job) -> None:
        self.queue.put_nowait(job)

    async def _collect(self) -> list[Job]:
        # Wait for one job, give concurrent requests a short window to join it, then take what fits.
        jobs = [await self.queue.get()]
        await asyncio.sleep(self.window_s)
        while sum(j.n for j in jobs) < self.max_batch and not self.queue.empty():
            jobs.append(self.queue.get_nowait())
        return [job for job in jobs if not job.cancelled]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            groups: dict[Sampling, list[Job]] = defaultdict(list)
            for job in await self._collect():
                groups[job.sampling].append(job)
            for sampling, group in groups.items():
                group = [job for job in group if not job.cancelled]  # clients that left while an earlier group ran
                if not group:
                    continue
                self.running = group
                try:
                    generations = await loop.run_in_executor(self.executor, self._generate, group, sampling, loop)
                except Exception as e:  # noqa: BLE001 -- a failed batch answers its requests with 500; the server lives on
                    for job in group:
                        job.resolve(None, e)
                    continue
                finally:
                    self.running = []
                start = 0
                for job in group:
                    job.resolve(generations[start : start + job.n])
                    start += job.n

    def _generate(self, group: list[Job], sampling: Sampling, loop: asyncio.AbstractEventLoop) -> list[Generation]:
        """Runs in the worker thread."""
        owners = [(job, k) for job in group for k in range(job.n)]  # the job and choice of each row

        def on_step(rows: list[int], tokens: list[int]) -> bool:
            self.stats.decode_steps += 1
            new_text: dict[int, list[tuple[int, str]]] = defaultdict(list)
            for row, token in zip(rows, tokens):
                job, k = owners[row]
                if job.texts is not None and (delta := job.texts[k].push(token)):
                    new_text[id(job)].append((k, delta))
            for job in group:
                if new_text.get(id(job)):
                    loop.call_soon_threadsafe(job.deltas.put_nowait, new_text[id(job)])
            return all(job.settled() for job in group)

        self.stats.generate_calls += 1
        self.stats.sequences += len(owners)
        self.stats.batch_sizes.append(len(owners))
        return generate(
            self.lm,
            [job.conversation for job, _ in owners],
            max_new_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=_batch_seed(group),
            batch_size=self.max_batch,
            on_step=on_step,
        )


def _batch_seed(group: list[Job]) -> int:
    """`generate` takes one seed per batch: a request's own seed when it runs alone (or all agree),
    else one derived from every member's, so the same batch always samples the same answers."""
    seeds = sorted({job.seed for job in group})
    return seeds[0] if len(seeds) == 1 else derive_seed(0, *seeds)

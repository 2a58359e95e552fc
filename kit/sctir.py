"""SC-TIR: self-consistency over tool-integrated reasoning, for one problem.

N candidates each loop independently: generate until the tool-call format's stop (the output
fence, a ``code_end`` tag, Harmony's ``<|call|>``), the end of the answer, or a token limit (per
step, per candidate, the context); run the code the format finds in the candidate's own
persistent interpreter session; append the format's reply (the truncated output); continue, up
to M code rounds (formats: ``kit.toolcalls``). A candidate ends with the answer in its last
``\\boxed{}`` (Harmony: in its final channel) or is pruned. With ``logprobs`` on, each
candidate's token entropy is recorded as it goes (mean over all tokens, and over its last
``vote.tail_tokens``), for the entropy-weighted votes. The problem ends
when every candidate has ended, an early-stop rule fires, or its deadline passes; the
remaining candidates are cancelled (their vLLM requests aborted) and the vote is taken
over what finished: every candidate that had ended by then, also one still closing its code
session. Early-stop rules see the answers in finish order (equal finish times by candidate
index). Every problem gets an answer: the profile's fallback if none voted.

``mode="async"`` lets a candidate run its code while the others keep generating;
``mode="lockstep"`` is Numina's baseline (all generate, then all execute, then the next
round), kept for benchmarks. Both share this code: lockstep is a barrier between phases.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kit import genselect
from kit.answers import AnswerProfile, last_boxed, last_number
from kit.confidence import EntropyTrace
from kit.config import KitConfig
from kit.engine import Engine
from kit.sandbox.pool import ExecutorPool, Session
from kit.toolcalls import Finish, KeepWriting, ToolFormat, make_format
from kit.voting import Vote, VoteResult, cast_vote, first_firing_rule

if TYPE_CHECKING:  # kit.reward imports vLLM when it builds its engine; the loop only calls it
    from kit.reward import RewardScorer

log = logging.getLogger(__name__)


@dataclass
class Cell:
    """One executed code round, as the model saw it."""

    code: str
    output: str  # the reply appended to the trace: the truncated output in the format's markup (kit.toolcalls)
    error: str | None
    timed_out: bool
    state_reset: bool
    duration_s: float


@dataclass
class Candidate:
    """One sample's trace and statistics, recorded as it goes."""

    index: int
    text: str = ""  # completion (everything after the prompt), tool outputs included
    token_ids: list[int] = field(default_factory=list)
    generated_tokens: int = 0
    mean_entropy: float | None = None  # mean token entropy so far (logprobs on), kit/confidence.py
    tail_entropy: float | None = None  # ... over the last vote.tail_tokens tokens
    cells: list[Cell] = field(default_factory=list)
    status: str = "running"  # running -> answered | pruned | cancelled
    reason: str = ""  # why it ended: answer, no_answer, invalid_answer, length, context_full, token_budget, ...
    boxed: str | None = None
    answer: str | None = None  # set only when answered: the vote it casts
    answer_source: str | None = None  # when answered: boxed, or code_output (KitConfig.answer_from_code_output)
    generation_s: float = 0.0
    execution_s: float = 0.0
    finished_at_s: float | None = None  # since the problem started
    reward_score: float | None = None  # the outcome reward model's score of its trace (vote.method rm)

    def graded_answer(self, profile: AnswerProfile) -> str | None:
        """The text a grader judges against the gold answer, None when the candidate did not
        answer. Under an integer profile, the answer the kit submits (modulus and range applied:
        ``\\boxed{1234}`` is 234 under aimo2); under the free-form profile, the boxed text as
        written, since that profile's normalization groups votes and is no equivalence check."""
        if self.status != "answered":
            return None
        return self.boxed if self.answer_source == "boxed" and not profile.integer else self.answer


@dataclass
class ProblemResult:
    problem_id: str
    answer: str
    vote: VoteResult
    candidates: list[Candidate]
    elapsed_s: float
    time_limit_s: float
    stop_reason: str  # all_finished | early_stop:<rule> | deadline | error
    used_fallback: bool
    selected_by: str = "vote"  # what picked the answer: vote (vote.method says how) or genselect
    genselect_judgment: str | None = None  # GenSelect's reply, when it ran


def votes_in_finish_order(candidates: list[Candidate], until_s: float | None = None) -> list[Vote]:
    """The valid answers of the candidates that have ended (by ``until_s``, when given), in
    finish order, ties by candidate index: the order the early-stop windows count (here, and
    in eval's replay of them). Taken from the candidates rather than from finished tasks,
    since a candidate that has ended may still be closing its session."""
    ended = [c for c in candidates if c.status == "answered" and (until_s is None or c.finished_at_s <= until_s)]
    return [Vote(c.index, c.answer, c.mean_entropy, c.tail_entropy, c.reward_score)
            for c in sorted(ended, key=lambda c: (c.finished_at_s, c.index))]


class PhaseBarrier:
    """A reusable barrier that members may leave: lockstep rounds for the candidates still
    running. ``wait`` returns once every remaining member has arrived."""

    def __init__(self, members: int):
        self._members = members
        self._arrived = 0
        self._released = asyncio.Event()

    async def wait(self) -> None:
        released = self._released
        self._arrived += 1
        self._release_if_complete()
        await released.wait()

    def leave(self) -> None:
        self._members -= 1
        self._release_if_complete()

    def _release_if_complete(self) -> None:
        if self._arrived and self._arrived >= self._members:
            self._arrived = 0
            self._released.set()
            self._released = asyncio.Event()


class ProblemRun:
    """The state of one problem being solved, under ``cfg`` (its answer rule and early-stop
    rules included). ``clock`` times the candidates and the deadline (injectable so that tests
    can give candidates equal finish times). The deadline and how it caps a cell's timeout:
    the timers in kit/solver.py's docstring."""

    def __init__(self, problem_id: str, prompt_ids: list[int], cfg: KitConfig, engine: Engine,
                 pool: ExecutorPool, time_limit_s: float, clock: Callable[[], float] = time.monotonic,
                 problem: str = "", reward: RewardScorer | None = None):
        """``problem``: its text, which the reward model and GenSelect read; ``reward``: the scorer
        of ``vote.method: rm`` (kit/reward.py)."""
        self.problem_id = problem_id
        self.problem = problem
        self.reward = reward
        self.format: ToolFormat = make_format(cfg, engine.encode)
        self.prompt_ids = prompt_ids
        self.cfg = cfg
        self.profile = cfg.answer_profile()
        self.engine = engine
        self.pool = pool
        self.rules = cfg.stop_rules()
        self.time_limit_s = time_limit_s
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + time_limit_s
        self.barrier = PhaseBarrier(cfg.num_samples) if cfg.mode == "lockstep" else None
        self.stopping = False  # set when the problem ends: candidates must not start another step

    def remaining_s(self) -> float:
        return self.deadline - self.clock()

    async def _sync(self) -> None:
        if self.barrier is not None:
            await self.barrier.wait()

    async def run_candidate(self, c: Candidate) -> Candidate:
        try:
            await self._generate_and_execute(c)
        except asyncio.CancelledError:
            # A candidate that ended and was closing its session when the problem stopped keeps its answer.
            if c.status == "running":
                c.status, c.reason = "cancelled", "cancelled"
            raise
        finally:
            if self.barrier is not None:
                self.barrier.leave()
            if c.finished_at_s is None:
                c.finished_at_s = self.clock() - self.started
        return c

    def _step_budget(self, c: Candidate) -> tuple[int, str]:
        """Tokens the next step may generate, and what limits it when that is none."""
        cfg = self.cfg
        context = cfg.max_model_len - len(self.prompt_ids) - len(c.token_ids)
        budget, limit = min((cfg.max_new_tokens, "step"), (context, "context_full"))
        if cfg.max_candidate_tokens:
            budget, limit = min((budget, limit), (cfg.max_candidate_tokens - c.generated_tokens, "token_budget"))
        return budget, limit

    async def _generate_and_execute(self, c: Candidate) -> None:
        cfg = self.cfg
        session: Session | None = None
        entropy = EntropyTrace(cfg.vote.tail_tokens)
        try:
            for step_no in itertools.count():
                if self.stopping:  # a cancellation lost inside a library call must not keep us going
                    raise asyncio.CancelledError
                budget, limit = self._step_budget(c)
                if budget <= 0:
                    return self._end(c, Finish(limit))
                await self._sync()
                t0 = self.clock()
                step = await self.engine.generate(self.prompt_ids + c.token_ids, budget,
                                                  f"{self.problem_id}-{c.index}-{step_no}")
                c.generation_s += self.clock() - t0
                c.text += step.text
                c.token_ids += step.token_ids
                c.generated_tokens += len(step.token_ids)
                if step.entropies:
                    entropy.add(step.entropies)
                    c.mean_entropy, c.tail_entropy = entropy.mean(), entropy.tail_mean()
                action = self.format.after_step(c.text, step)
                if isinstance(action, Finish):
                    if action.reason == "length" and limit != "step" and len(step.token_ids) >= budget:
                        action = Finish(limit)  # cut by the candidate's budget or the context, not the step's
                    return self._end(c, action)
                if isinstance(action, KeepWriting):
                    continue
                if len(c.cells) >= cfg.max_code_rounds:
                    return self._end(c, Finish("code_round_limit"))
                await self._sync()
                # The session opens at the first cell, so answer-only candidates cost no process.
                session = session or await self.pool.open_session()
                timeout = max(0.1, min(cfg.executor.cell_timeout_s, self.remaining_s()))
                result = await session.run(action.code, timeout_s=timeout)
                reply = self.format.reply(result.output)
                c.cells.append(Cell(action.code, reply.text, result.error, result.timed_out, result.state_reset,
                                    result.duration_s))
                c.execution_s += result.duration_s
                c.text += reply.text
                c.token_ids += reply.token_ids
        finally:
            if session is not None:
                await asyncio.shield(session.close())

    def _end(self, c: Candidate, how: Finish) -> None:
        """Record how ``c`` ended: answered (its boxed answer, in ``how.answer_text`` when the
        format says where, valid under the profile) or pruned with the reason."""
        c.finished_at_s = self.clock() - self.started
        c.boxed = last_boxed(c.text if how.answer_text is None else how.answer_text)
        answer, source = self.profile.parse(c.boxed), "boxed"
        if how.reason == "eos" and c.boxed is None and self.cfg.answer_from_code_output and c.cells \
                and c.cells[-1].error is None:
            answer, source = self.profile.parse(last_number(c.cells[-1].output)), "code_output"
        if how.reason in ("length", "token_budget", "context_full"):
            c.status, c.reason = "pruned", how.reason  # a truncated solution is not trusted
        elif answer is not None and how.reason in ("eos", "answer"):
            c.status, c.reason, c.answer, c.answer_source = "answered", "answer", answer, source
        elif how.reason not in ("eos", "answer"):
            c.status, c.reason = "pruned", how.reason
        else:
            c.status = "pruned"
            c.reason = "invalid_answer" if c.boxed is not None or source == "code_output" else "no_answer"

    def _failed(self, task: asyncio.Task, c: Candidate) -> None:
        """Record a candidate task that raised; one that had already ended keeps its result."""
        log.error("problem %s candidate %d failed: %r", self.problem_id, c.index, task.exception())
        if c.status == "running":
            c.status, c.reason = "pruned", f"error: {task.exception()!r}"[:200]

    async def solve(self) -> ProblemResult:
        candidates = [Candidate(i) for i in range(self.cfg.num_samples)]
        tasks = {asyncio.create_task(self.run_candidate(c)): c for c in candidates}
        pending = set(tasks)
        stop_reason = "all_finished"
        while pending:
            done, pending = await asyncio.wait(pending, timeout=max(0.0, self.remaining_s()),
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                stop_reason = "deadline"
                break
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    self._failed(task, tasks[task])
            running = sum(c.status == "running" for c in candidates)
            rule = first_firing_rule(self.rules, [v.answer for v in votes_in_finish_order(candidates)], running) if running else None
            if rule is not None:
                stop_reason = f"early_stop:{rule}"
                break
        stopped_at_s = self.clock() - self.started
        self.stopping = True
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            if not task.cancelled() and task.exception() is not None:
                self._failed(task, tasks[task])
        # Candidates that ended before the stop vote, also those still closing their session then.
        voters = [c for c in candidates if c.status == "answered" and c.finished_at_s <= stopped_at_s]
        if self.reward is not None and voters:
            await self._within_deadline(self._score(voters), "the reward model")
        vote = cast_vote(votes_in_finish_order(candidates, until_s=stopped_at_s), self.cfg.vote)
        answer, selected_by, judgment = vote.answer, "vote", None
        gs = self.cfg.genselect
        if gs.enabled and genselect.applies(vote, gs) and self.remaining_s() >= gs.reserve_s:
            picked = await self._within_deadline(self._genselect(vote, voters), "GenSelect")
            if picked is not None:
                judgment, chosen = picked
                if chosen is not None:
                    answer, selected_by = chosen, "genselect"
        return ProblemResult(
            problem_id=self.problem_id,
            answer=answer if answer is not None else self.profile.fallback,
            vote=vote,
            candidates=candidates,
            elapsed_s=self.clock() - self.started,
            time_limit_s=self.time_limit_s,
            stop_reason=stop_reason,
            used_fallback=answer is None,
            selected_by=selected_by,
            genselect_judgment=judgment,
        )

    async def _within_deadline(self, work, what: str):
        """``work``'s result, or None (logged) when it fails or the problem's deadline passes first:
        selection that needs a model is optional, the vote stands without it."""
        try:
            async with asyncio.timeout(max(0.0, self.remaining_s())):
                return await work
        except TimeoutError:
            log.warning("problem %s: %s did not finish before the deadline; the vote stands", self.problem_id, what)
        except Exception as exc:  # a failing selector must not cost the problem its answer
            log.error("problem %s: %s failed (%r); the vote stands", self.problem_id, what, exc)
        return None

    async def _score(self, voters: list[Candidate]) -> None:
        scores = await self.reward.score(self.problem, [c.text for c in voters], f"{self.problem_id}-rm")
        for c, score in zip(voters, scores):
            c.reward_score = score

    async def _genselect(self, vote: VoteResult, voters: list[Candidate]) -> tuple[str, str | None] | None:
        """(GenSelect's reply, the answer it makes or None), None when the prompt does not fit."""
        gs = self.cfg.genselect
        solutions: dict[str, list[tuple[int, int, str]]] = {}
        for c in voters:
            solutions.setdefault(c.answer, []).append((c.generated_tokens, c.index, c.text))
        options = genselect.choices(vote, solutions, gs.solution_chars)
        ids = self.engine.chat_ids(genselect.prompt(self.problem, options))
        budget = min(gs.max_tokens, self.cfg.max_model_len - len(ids))
        if budget <= 0:
            log.warning("problem %s: GenSelect's prompt (%d tokens) does not fit the context", self.problem_id, len(ids))
            return None
        # The selector's request takes the candidate index after the last (request ids are problem-candidate-step).
        step = await self.engine.generate(ids, budget, f"{self.problem_id}-{self.cfg.num_samples}-0")
        return step.text, genselect.decide(vote, options, genselect.parse_judgment(step.text, len(options)), gs)

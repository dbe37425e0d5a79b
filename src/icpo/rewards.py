"""Verifiable rewards: extract a final answer from a completion and check it against the gold answer.

Four graders, one per answer kind, each ``grade(completion, gold) -> Verdict``:

- ``math``:   the last ``\\boxed{}`` (or ``\\fbox{}``/``\\framebox{}``; fallbacks "#### x", "the answer is x",
              "Answer: x"), checked against the gold by math-verify (gold first: ``verify(gold, answer)``);
- ``number``: GSM8K's final number ("#### 72", else the last boxed value, else the last number), compared
              numerically after dropping thousands separators, currency signs and units (whole numbers
              exactly, others within 1e-6 relative);
- ``choice``: a multiple-choice letter A-J ("The answer is (C)", "Answer: C", ``\\boxed{C}``, a bare "C");
- ``boolean``: true/false/yes/no in the final answer (TheoremQA's true/false questions).

and TRL reward functions over them, ``func(prompts, completions, **columns) -> list[float | None]``:
``math_reward``, ``number_reward``, ``choice_reward`` (gold in the ``answer`` column) and
``boxed_format_reward`` (1 when the completion ends with one extractable boxed answer). ``gold_answer``
lists the gold formats each grader reads (GSM8K's raw "... #### 18" included); a gold it cannot read
makes the row unscorable (None), never a silent 0.

Bounded cost. Extraction is linear-time string scanning done here, and an extracted answer longer than
``MAX_ANSWER_CHARS`` is rejected (graded wrong) before any parser sees it. math-verify then runs in a
small pool of worker processes (math-verify's own timeouts use ``signal.alarm``, which raises off the
main thread and cannot interrupt C code such as a huge integer power), forked from a server that imported
it once: inside a worker a soft alarm after ``soft_timeout_s`` of CPU time aborts slow sympy work; the parent kills and
replaces a worker whose answer takes longer than ``hard_timeout_s``; and each call has a wall-time budget
for the whole batch (``MathVerifier``: about ``min_budget_s`` once every worker is stuck, more only while
pairs keep finishing), past which whatever is unfinished is ``None`` ("cannot be scored"), which TRL turns into NaN and a zero advantage. Nothing here raises for a bad completion.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from multiprocessing import reduction
from multiprocessing.connection import Connection, wait
from typing import Any

MAX_ANSWER_CHARS = 1000
GRADERS: tuple[str, ...] = ("math", "number", "choice", "boolean")
CHOICE_LETTERS = "ABCDEFGHIJ"

_BOX_COMMANDS = ("\\boxed", "\\fbox", "\\framebox")
_ANSWER_PHRASES = re.compile(
    rf"(?:####|final answer is|answer is|final answer:|answer:)\s*(?P<rest>[^\n]{{1,{MAX_ANSWER_CHARS}}})",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


@dataclass(frozen=True)
class Verdict:
    """One graded completion: the answer we read (None: none found) and whether it matches the gold
    (None: could not be decided in the time bound)."""

    extracted: str | None
    correct: bool | None


# --- completion text -------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or TRL's conversational form (a list of
    ``{"role", "content"}`` messages, content a string or a list of ``{"type": "text", "text"}`` parts),
    of which the assistant messages are joined. Anything else gives ""."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return ""
    texts = []
    for message in completion:
        if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
    return "\n".join(texts)


# --- extraction (linear time) ----------------------------------------------------------------------


def _braced_argument(text: str, start: int) -> str | None:
    """The contents of the ``{...}`` group opening at ``text[start]``, matching nested braces; None if
    unbalanced or longer than MAX_ANSWER_CHARS."""
    depth = 0
    for index in range(start, min(len(text), start + MAX_ANSWER_CHARS + 2)):
        char = text[index]
        if char == "{" and text[index - 1] != "\\":
            depth += 1
        elif char == "}" and text[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index]
    return None


def last_boxed(text: str) -> str | None:
    """The argument of the last ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\framebox{...}`` (also
    ``\\boxed 5``), braces matched; None when there is none or it is unbalanced or too long."""
    position = max(text.rfind(command) for command in _BOX_COMMANDS)
    if position < 0:
        return None
    command = next(c for c in _BOX_COMMANDS if text.startswith(c, position))
    cursor = position + len(command)
    if text.startswith("[", cursor):  # \framebox[width]{...}
        closing = text.find("]", cursor, cursor + 64)
        cursor = closing + 1 if closing > 0 else cursor
    if text.startswith("{", cursor):
        return _braced_argument(text, cursor)
    bare = re.match(rf" +([^\s$]{{1,{MAX_ANSWER_CHARS}}})", text[cursor : cursor + MAX_ANSWER_CHARS + 2])
    return bare.group(1) if bare else None


def _strip_answer(answer: str) -> str:
    """Drop the decoration around an answer: surrounding $ and \\( \\), a trailing period, \\textbf{}."""
    answer = answer.strip()
    for opening, closing in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if answer.startswith(opening) and answer.endswith(closing) and len(answer) >= len(opening) + 1:
            answer = answer[len(opening) : len(answer) - len(closing)].strip()
    answer = answer.rstrip(".").strip()
    styled = re.fullmatch(r"\\(?:textbf|mathbf|text|mathrm)\{\s*\(?([^{}()]*?)\)?\s*\}", answer)
    return styled.group(1).strip() if styled else answer


def extract_math_answer(text: str) -> str | None:
    """The final answer of a math completion: the last boxed expression, else the last
    "#### x" / "the answer is x" / "Answer: x" phrase (rest of that line, up to a period that ends it)."""
    # Not math-verify's parse(): its extraction regexes run on the whole untrusted completion, in the worker,
    # where a long text costs budget; here extraction is linear, bounded, and done before any parser runs.
    boxed = last_boxed(text)
    if boxed is not None:
        return _strip_answer(boxed)
    phrases = list(_ANSWER_PHRASES.finditer(text[-20 * MAX_ANSWER_CHARS :]))
    if not phrases:
        return None
    rest = phrases[-1].group("rest").strip()
    rest = re.split(r"(?<=[^\d\\])\.\s|\.$", rest)[0] if not rest.startswith("$") else rest
    answer = _strip_answer(rest)
    return answer or None


def _parse_number(text: str) -> Decimal | None:
    match = _NUMBER.search(text.replace("\\!", "").replace("{,}", ","))
    if match is None:
        return None
    try:
        return Decimal(match.group().replace(",", ""))
    except InvalidOperation:
        return None


def extract_final_number(text: str) -> str | None:
    """GSM8K's final number: after the last "####", else in the last boxed answer, else the last number
    in the text. Returned as written, thousands separators dropped."""
    marker = text.rfind("####")
    candidates = [text[marker + 4 : marker + 4 + MAX_ANSWER_CHARS]] if marker >= 0 else []
    boxed = last_boxed(text)
    if boxed is not None:
        candidates.append(boxed)
    for candidate in candidates:
        number = _parse_number(candidate)
        if number is not None:
            return str(number)
    tail_numbers = _NUMBER.findall(text[-20 * MAX_ANSWER_CHARS :])
    return tail_numbers[-1].replace(",", "") if tail_numbers else None


# In priority order; a letter is read case-blind only inside parentheses or at the end of a line, so that
# "the answer is a prime" does not read as choice A.
_CHOICE_PATTERNS = tuple(
    re.compile(pattern, re.MULTILINE)
    for pattern in (
        r"(?i:answer)\s*(?i:is|:)?\s*(?i:option|choice)?\s*[:\[{*]*\s*"
        r"(?:\(([A-Ja-j])\)|([A-J])\b|([a-j])(?=[.)]?\s*$))",
        r"\A\s*\(?([A-Ja-j])\)?[.:)]?\s*\Z",
        r"\(([A-J])\)",
    )
)


def extract_choice(text: str, num_choices: int = len(CHOICE_LETTERS)) -> str | None:
    """The chosen letter among the first ``num_choices`` of A-J: a boxed letter, else the last
    "answer is (C)" / "Answer: C" phrase, else a reply that is only a letter, else the last "(C)"."""
    valid = CHOICE_LETTERS[:num_choices]
    boxed = last_boxed(text)
    if boxed is not None:
        letter = re.fullmatch(r"\s*\(?([A-J])\)?\s*", _strip_answer(boxed))
        if letter and letter.group(1) in valid:
            return letter.group(1)
    tail = text[-20 * MAX_ANSWER_CHARS :]
    for pattern in _CHOICE_PATTERNS:
        letters = [next(g for g in m.groups() if g).upper() for m in pattern.finditer(tail)]
        letters = [letter for letter in letters if letter in valid]
        if letters:
            return letters[-1]
    return None


_BOOLEAN_WORD = re.compile(r"\b(true|false|yes|no)\b", re.IGNORECASE)


def extract_boolean(text: str) -> str | None:
    """ "True" or "False": the last true/false/yes/no in the final answer (boxed or "the answer is"),
    else in the last 200 characters."""
    source = extract_math_answer(text) or text[-200:]
    words = _BOOLEAN_WORD.findall(source)
    return None if not words else "True" if words[-1].lower() in ("true", "yes") else "False"


def choice_letter(gold: Any) -> str:
    """A gold choice as a letter: an int index (0 = A), a letter, or "(c)"."""
    if isinstance(gold, bool) or not isinstance(gold, (int, str)):
        raise ValueError(f"a choice gold must be a letter A-J or a 0-based index, got {gold!r}.")
    if isinstance(gold, int):
        if not 0 <= gold < len(CHOICE_LETTERS):
            raise ValueError(f"a choice index must be in 0..9, got {gold}.")
        return CHOICE_LETTERS[gold]
    letter = gold.strip().strip("()").upper()
    if len(letter) != 1 or letter not in CHOICE_LETTERS:
        raise ValueError(f"a choice gold must be a letter A-J, got {gold!r}.")
    return letter


def gold_text(gold: Any) -> str:
    """A gold answer as text: floats that are whole numbers lose their ".0" (AMC stores 27.0)."""
    if isinstance(gold, float) and math.isfinite(gold) and gold.is_integer():
        return str(int(gold))
    return str(gold).strip()


# A gold that is one number: sign, thousands separators, decimals; an optional currency sign before it and
# a percent sign or a parenthesised unit after it ("9 (apples)", ASDiv).
_GOLD_NUMBER = re.compile(
    r"\\?[$€£]?\s*(?P<number>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+)\s*(?:%|\([^()]*\))?"
)


def _final_part(text: str) -> str:
    """The final answer inside a worked solution: after its last "####" (GSM8K), else its last boxed
    answer (MATH), else the whole text."""
    marker = text.rfind("####")
    if marker >= 0:
        return text[marker + 4 :].strip()
    boxed = last_boxed(text)
    return boxed.strip() if boxed is not None else text


def gold_answer(grader: str, gold: Any) -> str | None:
    """The gold answer as ``grader`` compares it, or None when it cannot be read (the row is unscorable).

    Formats read, per grader:

    - ``number``: an int or float (27.0 -> "27"); a number written as text ("18", "-3.5", "1,234",
      "$18", "75%", "9 (apples)"); GSM8K's worked solution ending "#### 18"; a MATH-style solution whose
      last ``\\boxed{}`` holds a number. Anything else (words, "3/4", an expression) is None.
    - ``math``: any non-empty text or number, the final part of a worked solution taken as above
      ("#### x", else the last boxed answer); math-verify then decides equality. Empty text is None.
    - ``boolean``: True/False, or text whose last true/false/yes/no word gives the value.
    - ``choice``: a letter A-J, "(c)", or a 0-based int index; anything else is None.
    """
    if gold is None:
        return None
    if grader == "choice":
        try:
            return choice_letter(gold)
        except ValueError:
            return None
    if grader == "boolean":
        return extract_boolean(gold_text(gold))
    text = _final_part(gold_text(gold))
    if grader == "math":
        return text or None
    match = _GOLD_NUMBER.fullmatch(_strip_answer(text))
    return str(Decimal(match.group("number").replace(",", ""))) if match else None


# --- math-verify in a pool of bounded worker processes -------------------------------------------


class _SoftTimeout(BaseException):
    """Raised by the worker's alarm; a BaseException so math-verify's ``except Exception`` lets it pass."""


_READY = "ready"


def _serve_math_verify(read_fd: int, write_fd: int, soft_timeout_s: float) -> None:
    """Worker loop (its own process): say "ready" once math-verify is imported, then receive (gold, answer)
    and reply True / False, or None when the soft alarm fired. Here math-verify runs on a main thread, so
    the alarm can interrupt Python-level work."""
    import resource

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)

    def on_alarm(signum, frame):
        raise _SoftTimeout

    signal.signal(signal.SIGPROF, on_alarm)
    requests, replies = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    replies.send(_READY)
    while True:
        try:
            gold, answer = requests.recv()
        except EOFError:
            return
        # Past the hard bound the parent kills us; should the parent be gone, a CPU limit still ends a
        # pair stuck in C code (SIGXCPU terminates the process).
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_limit = int(usage.ru_utime + usage.ru_stime + 4 * soft_timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, resource.RLIM_INFINITY))
        signal.setitimer(
            signal.ITIMER_PROF, soft_timeout_s
        )  # CPU time: waiting for a busy core is not charged
        try:
            gold_parsed = parse(f"${gold}$", parsing_timeout=None) or parse(
                f"$\\boxed{{{gold}}}$", parsing_timeout=None
            )
            answer_parsed = parse(f"$\\boxed{{{answer}}}$", parsing_timeout=None)
            result = bool(
                gold_parsed and answer_parsed and verify(gold_parsed, answer_parsed, timeout_seconds=None)
            )
        except _SoftTimeout:
            result = None
        except Exception:  # a parser bug on odd input is a wrong answer, not a crash
            result = False
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        replies.send(result)


def _serve_forks(control_fd: int, soft_timeout_s: float) -> None:
    """Fork server (its own ``python -c`` process, so the caller's main module is never re-imported):
    import math-verify once, then for each pair of pipe ends received over the control socket fork a
    worker serving them and reply with its PID. A replacement worker thus starts in milliseconds
    instead of re-importing sympy (seconds)."""
    from math_verify import parse, verify

    verify(
        parse("$\\frac{1}{2}$"), parse("$0.5$")
    )  # warm: lazy imports and parser set-up, done once for all forks

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exited workers are reaped by the kernel
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            read_fd, write_fd = reduction.recvfds(control, 2)
        except (EOFError, OSError):
            return
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _serve_math_verify(read_fd, write_fd, soft_timeout_s)
            os._exit(0)
        os.close(read_fd)
        os.close(write_fd)
        control.sendall(pid.to_bytes(8, "little"))


class _ForkServer:
    """The parent's handle on ``_serve_forks``."""

    def __init__(self, soft_timeout_s: float, startup_timeout_s: float) -> None:
        self.control, theirs = socket.socketpair()
        code = f"from icpo.rewards import _serve_forks; _serve_forks({theirs.fileno()}, {soft_timeout_s!r})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
        )
        theirs.close()
        self.control.settimeout(startup_timeout_s)  # the first fork waits for the import

    def fork(self, read_fd: int, write_fd: int) -> int:
        """Fork a worker on these pipe ends; its PID. Raises OSError when the server is gone."""
        reduction.sendfds(self.control, [read_fd, write_fd])
        reply = b""
        while len(reply) < 8:
            chunk = self.control.recv(8 - len(reply))
            if not chunk:
                raise ConnectionError("the math-verify fork server exited")
            reply += chunk
        return int.from_bytes(reply, "little")

    def stop(self) -> None:
        self.control.close()
        self.process.kill()
        self.process.wait()


class _Worker:
    """One forked math-verify process and its two pipes."""

    def __init__(self, server: _ForkServer) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            self.pid = server.fork(request_read, reply_write)
        finally:
            os.close(request_read)
            os.close(reply_write)
        self.requests = Connection(request_write, readable=False)
        self.replies = Connection(reply_read, writable=False)
        self.ready = False
        self.job: int | None = None  # index of the pair it is checking
        self.sent_at = 0.0

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.requests.close()
        self.replies.close()


def _expected_cost(pair: tuple[str, str]) -> tuple[int, int]:
    """Dispatch order: answers with fewer powers and fewer characters first, so that a batch's ordinary
    answers are checked before its pathological ones (power towers) can use up the call's budget."""
    return pair[1].count("^"), len(pair[1])


class MathVerifier:
    """math-verify in a small pool of worker processes, bounded per call; safe to call from any thread.

    ``check(pairs)`` returns, per (gold, answer) pair, True / False, or None when it could not be decided
    in time. Bounds: a pair gets ``soft_timeout_s`` of CPU time (an alarm inside the worker) and ``hard_timeout_s``
    (then its worker is killed and replaced). The whole call ends, every unfinished pair None and its
    worker replaced, once ``min_budget_s`` has passed and no pair has finished for ``patience_s`` (every
    worker is stuck), and at ``budget_s(len(pairs)) = max(min_budget_s, budget_per_pair_s * len(pairs))``
    at the latest: a batch of ordinary answers keeps finishing pairs and is never cut short by its size,
    while pairs that stall every worker cost at most about ``min_budget_s``. Workers are forked from a server process that imported math-verify
    once, so a replacement is ready in milliseconds; only the first call waits (up to
    ``startup_timeout_s``, not charged to its budget) for that import.
    """

    def __init__(
        self,
        workers: int = 3,
        soft_timeout_s: float = 3.0,
        hard_timeout_s: float = 6.0,
        min_budget_s: float = 3.0,
        patience_s: float = 1.5,
        budget_per_pair_s: float = 0.25,
        startup_timeout_s: float = 120.0,
    ):
        if not 0 < soft_timeout_s <= hard_timeout_s:
            raise ValueError(
                f"need 0 < soft_timeout_s <= hard_timeout_s, got {soft_timeout_s} and {hard_timeout_s}."
            )
        if workers < 1 or min_budget_s <= 0 or patience_s <= 0 or budget_per_pair_s < 0:
            raise ValueError(
                f"need workers >= 1, min_budget_s > 0, patience_s > 0 and budget_per_pair_s >= 0, got "
                f"{workers}, {min_budget_s}, {patience_s} and {budget_per_pair_s}."
            )
        self.workers = workers
        self.soft_timeout_s = soft_timeout_s
        self.hard_timeout_s = hard_timeout_s
        self.min_budget_s = min_budget_s
        self.patience_s = patience_s
        self.budget_per_pair_s = budget_per_pair_s
        self.startup_timeout_s = startup_timeout_s  # importing sympy can be slow on a busy machine
        self._lock = threading.Lock()
        self._server: _ForkServer | None = None
        self._pool: list[_Worker] = []

    def budget_s(self, pairs: int) -> float:
        """The longest one ``check`` call over ``pairs`` pairs may take (startup aside)."""
        return max(self.min_budget_s, self.budget_per_pair_s * pairs)

    def close(self) -> None:
        with self._lock:
            self._stop_all()

    def _stop_all(self) -> None:
        for worker in self._pool:
            worker.stop()
        self._pool = []
        if self._server is not None:
            self._server.stop()
        self._server = None

    def _new_worker(self) -> _Worker:
        """A worker forked from the (re)started fork server."""
        for _attempt in range(2):
            if self._server is None or self._server.process.poll() is not None:
                self._server = _ForkServer(self.soft_timeout_s, self.startup_timeout_s)
            try:
                return _Worker(self._server)
            except OSError:  # the server died (e.g. killed for memory); start it again once
                self._server.stop()
                self._server = None
        self._stop_all()
        raise RuntimeError(
            "the math-verify worker processes did not start (exited or hung at start-up); run "
            f"`{sys.executable} -c 'import math_verify'` to see why."
        )

    def _replace(self, worker: _Worker) -> None:
        worker.stop()
        self._pool[self._pool.index(worker)] = self._new_worker()

    def _start_pool(self) -> None:
        """Fork missing workers (the first call waits for the fork server's import, outside any budget)."""
        while len(self._pool) < self.workers:
            self._pool.append(self._new_worker())

    def check(self, pairs: Sequence[tuple[str, str]]) -> list[bool | None]:
        results: list[bool | None] = [None] * len(pairs)
        if not pairs:
            return results
        with self._lock:
            self._start_pool()
            queue = sorted(range(len(pairs)), key=lambda i: _expected_cost(pairs[i]))[::-1]
            started = last_progress = time.monotonic()
            latest = started + self.budget_s(len(pairs))
            while True:
                now = time.monotonic()
                deadline = min(latest, max(started + self.min_budget_s, last_progress + self.patience_s))
                for worker in list(self._pool):
                    if worker.ready and worker.job is None and queue and now < deadline:
                        try:
                            worker.requests.send(pairs[queue[-1]])
                        except OSError:  # it died while idle: the pair waits for its replacement
                            self._replace(worker)
                            continue
                        worker.job, worker.sent_at = queue.pop(), now
                busy = [w for w in self._pool if w.job is not None]
                starting = queue and now < deadline and any(not w.ready for w in self._pool)
                if not busy and not starting:
                    break
                limit = min([deadline] + [w.sent_at + self.hard_timeout_s for w in busy])
                listening = [w.replies for w in self._pool if w.job is not None or not w.ready]
                for connection in wait(listening, timeout=max(0.0, limit - time.monotonic())):
                    worker = next(w for w in self._pool if w.replies is connection)
                    try:
                        reply = worker.replies.recv()
                    except (EOFError, OSError):  # the worker died (e.g. out of memory): replace it
                        self._replace(worker)
                        continue
                    if reply == _READY:
                        worker.ready = True
                    else:
                        results[worker.job], worker.job = reply, None
                        last_progress = time.monotonic()
                now = time.monotonic()
                deadline = min(latest, max(started + self.min_budget_s, last_progress + self.patience_s))
                for worker in list(self._pool):  # past a bound: the worker may still be busy; replace it
                    if worker.job is not None and (
                        now >= deadline or now >= worker.sent_at + self.hard_timeout_s
                    ):
                        self._replace(worker)
        return results


_VERIFIER: MathVerifier | None = None
_VERIFIER_LOCK = threading.Lock()


def math_verifier() -> MathVerifier:
    """The process-wide verifier (started on first use, stopped at exit)."""
    global _VERIFIER
    with _VERIFIER_LOCK:
        if _VERIFIER is None:
            _VERIFIER = MathVerifier()
            atexit.register(_VERIFIER.close)
        return _VERIFIER


# --- graders --------------------------------------------------------------------------------------


def _numbers_equal(answer: str, gold: str) -> bool:
    """Exactly equal when both are whole numbers (1000001 is not 1000000), else within 1e-6 relative."""
    left, right = _parse_number(answer), _parse_number(gold)
    if left is None or right is None:
        return False
    if left == left.to_integral_value() and right == right.to_integral_value():
        return left == right
    return abs(left - right) <= Decimal("1e-6") * max(Decimal(1), abs(right))


def grade_many(
    grader: str,
    completions: Sequence[str],
    golds: Sequence[Any],
    num_choices: Sequence[int | None] | None = None,
) -> list[Verdict]:
    """Grade completion i against gold i with one grader ("math", "number", "choice" or "boolean").

    ``num_choices`` (choice grader) limits the letters a completion may pick per row. A completion with
    no answer, or with an answer longer than MAX_ANSWER_CHARS, is wrong; a gold that is None or that
    ``gold_answer`` cannot read, and a math check that times out, give ``correct=None``.
    """
    if grader not in GRADERS:
        raise ValueError(f"grader={grader!r} is not supported; choose one of {GRADERS}.")
    if len(completions) != len(golds):
        raise ValueError(f"{len(completions)} completions but {len(golds)} gold answers; pass one per row.")
    golds_text = [gold_answer(grader, gold) for gold in golds]
    if grader == "choice":
        limits = num_choices or [None] * len(golds)
        verdicts = []
        for text, gold, limit in zip(completions, golds_text, limits, strict=True):
            letter = extract_choice(text, limit or len(CHOICE_LETTERS))
            verdicts.append(Verdict(letter, None if gold is None else letter == gold))
        return verdicts
    extract = {"number": extract_final_number, "boolean": extract_boolean}.get(grader, extract_math_answer)
    answers = [extract(text) for text in completions]
    if grader in ("number", "boolean"):
        same = _numbers_equal if grader == "number" else str.__eq__
        return [
            Verdict(answer, None if gold is None else answer is not None and same(answer, gold))
            for answer, gold in zip(answers, golds_text, strict=True)
        ]
    to_check = [
        i
        for i, (a, g) in enumerate(zip(answers, golds_text, strict=True))
        if a and g is not None and len(a) <= MAX_ANSWER_CHARS
    ]
    checked = dict(
        zip(to_check, math_verifier().check([(golds_text[i], answers[i]) for i in to_check]), strict=True)
    )
    return [
        Verdict(answer, None if gold is None else checked.get(i, False))
        for i, (answer, gold) in enumerate(zip(answers, golds_text, strict=True))
    ]


def grade(grader: str, completion: str, gold: Any, num_choices: int | None = None) -> Verdict:
    """Grade one completion; see ``grade_many``."""
    return grade_many(grader, [completion], [gold], [num_choices])[0]


# --- TRL reward functions -------------------------------------------------------------------------


def _gold_column(columns: dict[str, Any], name: str, rows: int) -> list[Any]:
    if name not in columns:
        raise ValueError(
            f"the reward needs the gold answers in a dataset column named {name!r}; the columns passed were "
            f"{sorted(columns)}. Rename it, or use make_reward(..., gold_column=...)."
        )
    golds = list(columns[name])
    if len(golds) != rows:
        raise ValueError(f"column {name!r} has {len(golds)} values for {rows} completions.")
    return golds


def make_reward(grader: str, gold_column: str = "answer") -> Callable[..., list[float | None]]:
    """A TRL reward function ``func(prompts, completions, **columns) -> list[float | None]`` giving 1.0
    for a correct answer, 0.0 for a wrong or missing one, None when a row cannot be scored (no gold, a
    gold the grader cannot read, a check that timed out). The gold formats each grader reads are listed
    in ``gold_answer`` (GSM8K's raw ``answer`` column, "... #### 18", included). For ``choice``, an
    ``options`` or ``choices`` column (the list of options per row) limits the letters that count."""
    if grader not in GRADERS:
        raise ValueError(f"grader={grader!r} is not supported; choose one of {GRADERS}.")

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        golds = _gold_column(columns, gold_column, len(completions))
        options = columns.get("options", columns.get("choices"))
        limits = [len(o) if isinstance(o, (list, tuple)) else None for o in options] if options else None
        for i, gold in enumerate(golds):
            if gold is not None and gold_answer(grader, gold) is None:
                logging.getLogger(__name__).warning("row %d: unreadable gold answer %r; reward None", i, gold)
        verdicts = grade_many(grader, [completion_text(c) for c in completions], golds, limits)
        return [None if verdict.correct is None else float(verdict.correct) for verdict in verdicts]

    reward.__name__ = f"{grader}_reward"
    return reward


math_reward = make_reward("math")
number_reward = make_reward("number")
choice_reward = make_reward("choice")


def boxed_format_reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
    """1.0 when the completion's last boxed answer is balanced, at most MAX_ANSWER_CHARS long and only
    whitespace or a closing "$", "." or "\\]" follows it; else 0.0. Needs no gold answer."""
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        boxed = last_boxed(text)
        if boxed is None:
            rewards.append(0.0)
            continue
        after = text[text.rfind(boxed) + len(boxed) + 1 :]
        rewards.append(1.0 if re.fullmatch(r"[\s$.\\\]]*", after[:64]) and len(after) < 64 else 0.0)
    return rewards

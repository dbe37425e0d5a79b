"""Synthetic verifiable tasks: generators with a difficulty knob, exact checkers, datasets, rewards.

Two task families, each a ``Task`` with three parts:

- ``generate(rng, difficulty) -> Problem``: a prompt, the gold ``answer`` the checker needs, and a
  correct ``solution`` string (the SFT target);
- ``check(prompt, completion, answer) -> bool``: exact verification of a model completion;
- ``mistake(problem, rng) -> str | None``: a systematically wrong solution (a plausible slip), used by the
  deliberately imperfect warm-up to plant confident errors for RL to fix; ``None`` when the slip does not
  apply to this problem.

``addition``: ``"47+85="`` -> ``"132"``; difficulty = digits per operand; the slip drops every carry.
``countdown``: ``"3 5 7>22:"`` -> ``"3*5+7"`` (reach the target with +, -, * using each number at most
once); difficulty = how many numbers (at least 2); the slip swaps the last operator.

Rows are plain-text prompts (no chat template). Reward functions follow TRL's signature
``f(prompts, completions, answer, **kwargs) -> list[float]``; ``with_reward_noise`` flips them with
probability p, reproducibly.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

RewardFunction = Callable[..., list[float | None]]
ANSWER_FIELD = "answer"


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str
    solution: str


@dataclass(frozen=True)
class Task:
    name: str
    generate: Callable[[random.Random, int], Problem]
    check: Callable[[str, str, str], bool]
    mistake: Callable[[Problem, random.Random], str | None]
    max_difficulty: int


def first_line(completion: str) -> str:
    """The model's answer: the completion up to its first newline, surrounding spaces removed."""
    return completion.split("\n", 1)[0].strip()


# --- addition --------------------------------------------------------------------------------------


def _addition_generate(rng: random.Random, difficulty: int) -> Problem:
    low, high = 10 ** (difficulty - 1) if difficulty > 1 else 0, 10**difficulty - 1
    a, b = rng.randint(low, high), rng.randint(low, high)
    return Problem(prompt=f"{a}+{b}=", answer=str(a + b), solution=str(a + b))


def _addition_check(prompt: str, completion: str, answer: str) -> bool:
    return first_line(completion) == answer


def _addition_mistake(problem: Problem, rng: random.Random) -> str | None:
    """Column-wise sum with every carry dropped (47+85 -> 22): wrong exactly when a column carries."""
    a, b = problem.prompt.rstrip("=").split("+")
    width = max(len(a), len(b))
    digits = [(int(x) + int(y)) % 10 for x, y in zip(a.zfill(width), b.zfill(width), strict=True)]
    slip = str(int("".join(map(str, digits))))
    return slip if slip != problem.answer else None


# --- countdown -------------------------------------------------------------------------------------

_COUNTDOWN_PROMPT = re.compile(r"^((?:\d+ )*\d+)>(-?\d+):$")
_EXPRESSION_CHARACTERS = re.compile(r"^[\d+\-*() ]+$")


def _countdown_generate(rng: random.Random, difficulty: int) -> Problem:
    count = max(2, difficulty)
    numbers = [rng.randint(1, 9) for _ in range(count)]
    order = rng.sample(numbers, k=count)
    expression = str(order[0])
    for number in order[1:]:
        expression += rng.choice("+-*") + str(number)
    target = _evaluate(expression)
    return Problem(prompt=f"{' '.join(map(str, numbers))}>{target}:", answer=str(target), solution=expression)


def _evaluate(expression: str) -> int | None:
    """Value of an integer +, -, * expression (parentheses allowed); None if it is anything else."""
    if not _EXPRESSION_CHARACTERS.match(expression) or len(expression) > 64:
        return None
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return None
    allowed = (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Constant)
    if not all(isinstance(node, allowed) for node in ast.walk(tree)):
        return None
    return eval(compile(tree, "<countdown>", "eval"), {"__builtins__": {}})  # only ints and + - * remain


def _countdown_check(prompt: str, completion: str, answer: str) -> bool:
    parsed = _COUNTDOWN_PROMPT.match(prompt)
    if parsed is None:
        raise ValueError(f"not a countdown prompt: {prompt!r} (expected like '3 5 7>22:').")
    expression = first_line(completion)
    used = Counter(re.findall(r"\d+", expression))
    available = Counter(parsed.group(1).split())
    return bool(used) and not (used - available) and _evaluate(expression) == int(answer)


def _countdown_mistake(problem: Problem, rng: random.Random) -> str | None:
    """The right numbers with the last operator swapped for another: reaches the wrong value."""
    position = max(problem.solution.rfind(op) for op in "+-*")
    if position <= 0:
        return None
    swapped = rng.choice([op for op in "+-*" if op != problem.solution[position]])
    slip = problem.solution[:position] + swapped + problem.solution[position + 1 :]
    return slip if _evaluate(slip) != int(problem.answer) else None


TASKS: dict[str, Task] = {
    "addition": Task("addition", _addition_generate, _addition_check, _addition_mistake, max_difficulty=6),
    "countdown": Task(
        "countdown", _countdown_generate, _countdown_check, _countdown_mistake, max_difficulty=5
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}.")
    return TASKS[name]


def check_difficulty(task: Task, difficulty: int) -> None:
    if not 1 <= difficulty <= task.max_difficulty:
        raise ValueError(
            f"difficulty {difficulty} is out of range for task {task.name!r}; use 1..{task.max_difficulty}."
        )


# --- datasets --------------------------------------------------------------------------------------


def generate_problems(
    task_name: str, count: int, seed: int, difficulty: int, exclude: set[str] | None = None
) -> list[Problem]:
    """``count`` problems with distinct prompts from ``random.Random(seed)``, none of whose prompt is in
    ``exclude``. Raises if the difficulty leaves too few distinct prompts."""
    task = get_task(task_name)
    check_difficulty(task, difficulty)
    rng, exclude = random.Random(seed), exclude or set()
    problems: dict[str, Problem] = {}
    for _ in range(50 * count + 1000):
        if len(problems) == count:
            return list(problems.values())
        problem = task.generate(rng, difficulty)
        if problem.prompt not in exclude:
            problems.setdefault(problem.prompt, problem)
    raise ValueError(
        f"task {task_name!r} at difficulty {difficulty} has too few distinct prompts for {count} problems "
        f"(found {len(problems)}); raise the difficulty or ask for fewer."
    )


def train_test_problems(
    task_name: str, num_train: int, num_test: int, seed: int, difficulty: int
) -> tuple[list[Problem], list[Problem]]:
    """Train and held-out test problems from different seeds, with no prompt in both."""
    train = generate_problems(task_name, num_train, seed, difficulty)
    test = generate_problems(
        task_name, num_test, seed + 1_000_003, difficulty, exclude={p.prompt for p in train}
    )
    return train, test


def rl_rows(problems: list[Problem]) -> list[dict[str, str]]:
    """Rows for GRPO: a plain-text ``prompt`` and the gold ``answer`` the reward function receives."""
    return [{"prompt": p.prompt, ANSWER_FIELD: p.answer} for p in problems]


# --- rewards ---------------------------------------------------------------------------------------


def make_reward_function(task_name: str) -> RewardFunction:
    """A TRL reward function: 1.0 for a completion the task's checker accepts, else 0.0."""
    task = get_task(task_name)

    def reward(prompts: list[str], completions: list[str], **columns) -> list[float | None]:
        if ANSWER_FIELD not in columns:
            raise ValueError(
                f"the dataset has no {ANSWER_FIELD!r} column (got {sorted(columns)}); "
                f"each row needs the gold answer for the {task.name} checker."
            )
        answers = columns[ANSWER_FIELD]
        return [
            float(task.check(prompt, completion, str(answer)))
            for prompt, completion, answer in zip(prompts, completions, answers, strict=True)
        ]

    reward.__name__ = f"{task.name}_correct"
    return reward


def with_reward_noise(reward_function: RewardFunction, probability: float, seed: int) -> RewardFunction:
    """Flip each reward r -> 1 - r with the given probability (rewards in [0, 1]; None stays None).

    The flips come from ``random.Random(seed)``, one draw per row in call order, so the same sequence of
    calls gets the same flips. ``probability == 0`` returns ``reward_function`` itself.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"reward noise must be a probability in [0, 1], got {probability!r}.")
    if probability == 0:
        return reward_function
    rng = random.Random(seed)

    def noisy(*args, **kwargs) -> list[float | None]:
        rewards = reward_function(*args, **kwargs)
        flips = [rng.random() < probability for _ in rewards]
        return [
            None if r is None else (1.0 - r if flip else r) for r, flip in zip(rewards, flips, strict=True)
        ]

    noisy.__name__ = getattr(reward_function, "__name__", "reward")
    return noisy


def correctness(task_name: str, problems: list[Problem], completions: list[str]) -> list[bool]:
    """Whether the task's checker accepts each completion (one completion per problem)."""
    task = get_task(task_name)
    return [task.check(p.prompt, c, p.answer) for p, c in zip(problems, completions, strict=True)]

"""The study built on the library: GRPO against ICPO and its peers, on the tiny policy and on real LMs.

- ``engine``: a study folder (every method x seed from one start, resumable) and its report;
- ``rl_run``: one RL run from a start policy, evaluated on held-out problems;
- ``heldout``: the held-out evaluator of the synthetic tasks;
- ``report``: tables with paired-difference intervals and plots;
- ``cli``: ``icpo demo`` and ``icpo compare``.

Nothing in ``icpo.core``, ``icpo.trl``, ``icpo.verl``, ``icpo.rewards`` or ``icpo.eval`` imports from here.
"""

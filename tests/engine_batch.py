"""One batch that both engine suites (tests/test_trl.py in .venv, tests/verl in .venv-verl) feed to their
engine's metric path, with the metrics computed by hand: the engines must log the same numbers.

One group of 4: rewards [1, 0, NaN, 0] (row 2 unscorable), confidences [-3, -1, -0.5, -2].
Scored rows 0, 1, 3: confidence mean -2, std 1 (Bessel). The right answer (-3) is less confident than
both scored wrong ones (-1, -2): overconfident-error rate 2/2 = 1, within-group AUROC 0/2 = 0; the
group is mixed.
"""

import math

REWARDS = [1.0, 0.0, math.nan, 0.0]
CONFIDENCE = [-3.0, -1.0, -0.5, -2.0]
GROUP_SIZE = 4
ALPHA = 0.5
EXPECTED_METRICS = {
    "icpo/alpha": 0.5,
    "icpo/confidence_mean": -2.0,
    "icpo/confidence_std": 1.0,
    "icpo/overconfident_error_rate": 1.0,
    "icpo/within_group_auroc": 0.0,
    "icpo/mixed_group_share": 1.0,
}

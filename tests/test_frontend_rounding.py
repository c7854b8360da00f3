"""Frame sizes round halves up exactly as python_speech_features' ``decimal`` rounding does, without
``decimal`` (the runtime does not import it), and non-finite sizes are contract errors."""

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from edge_ser.errors import ContractError
from edge_ser.frontend import FrontEnd, _round_half_up


def reference(x: float) -> int:
    return int(Decimal(repr(x)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def test_rounding_equals_decimal_half_up():
    rates = range(8000, 96001, 50)
    values = [seconds * rate for seconds in (0.001, 0.01, 0.0125, 0.02, 0.025, 0.032, 0.05, 0.1) for rate in rates]
    halves = np.arange(2000) + 0.5
    values += [*halves, *np.nextafter(halves, 0), *np.nextafter(halves, np.inf), 0.49999999999999994, 0.0]
    values += list(np.random.default_rng(0).random(20000) * 1e5)
    assert [_round_half_up(float(v)) for v in values] == [reference(float(v)) for v in values]


@pytest.mark.parametrize("length", [float("inf"), float("nan")])
def test_non_finite_window_is_a_contract_error(length):
    with pytest.raises(ContractError):
        FrontEnd("mfcc", win_length=length)

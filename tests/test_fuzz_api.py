"""Property tests of the Python API (Hypothesis): any array of any dtype, shape and values gives
finite answers or a typed one-line error; NaN/inf and negative values are always refused."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from mnistkit.runtime import Classifier  # noqa: E402
from mnistkit.runtime.cli import DEFAULT_MODEL  # noqa: E402
from mnistkit.runtime.errors import MnistkitError, UsageError  # noqa: E402

CLF = Classifier.load(DEFAULT_MODEL)
DTYPES = st.sampled_from([np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.float16,
                          np.float32, np.float64, np.bool_])
SHAPES = st.one_of(
    st.just((28, 28)),
    st.tuples(st.integers(0, 3), st.just(28), st.just(28)),
    st.tuples(st.integers(1, 80), st.integers(1, 80)),
    st.tuples(st.integers(1, 60), st.integers(1, 60), st.integers(1, 4)),
    st.tuples(st.integers(0, 2), st.integers(1, 40), st.integers(1, 40)),
)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def arrays(draw):
    dtype = draw(DTYPES)
    shape = draw(SHAPES)
    kind = np.dtype(dtype).kind
    if kind == "f":
        width = np.dtype(dtype).itemsize * 8
        elements = st.one_of(st.floats(-2.0, 300.0, width=width), st.floats(0.0, 1.0, width=width),
                             st.sampled_from([np.nan, np.inf, -np.inf]).map(lambda v: np.dtype(dtype).type(v)))
    elif kind == "b":
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        elements = st.integers(max(info.min, -5), min(info.max, 70_000))
    fill = draw(elements)
    return draw(hnp.arrays(dtype, shape, elements=elements, fill=st.just(fill)))


def _check(call, x):
    try:
        out = call(x)
    except MnistkitError as exc:
        assert "\n" not in str(exc), str(exc)
        return exc
    proba = out if isinstance(out, np.ndarray) else np.array([p.probabilities for p in out]).reshape(-1, 10)
    assert np.isfinite(proba).all()
    if not isinstance(out, np.ndarray):
        assert all(0 <= p.label <= 9 for p in out)
    return None


def _bad_values(x: np.ndarray) -> bool:
    if x.dtype.kind == "b" or x.size == 0:
        return False
    f = x.astype(np.float64)
    return bool(not np.isfinite(f).all() or (f < 0).any())


@given(arrays())
@SETTINGS
def test_classify_any_array(x):
    err = _check(CLF.classify, x)
    if _bad_values(x) and not (x.ndim == 3 and 0 in x.shape[1:]):
        assert isinstance(err, UsageError), (x.dtype, x.shape, err)


@given(arrays())
@SETTINGS
def test_predict_proba_any_array(x):
    err = _check(CLF.predict_proba, x)
    if _bad_values(x):
        assert isinstance(err, UsageError), (x.dtype, x.shape, err)
